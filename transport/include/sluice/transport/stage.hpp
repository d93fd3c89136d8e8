#pragma once

// Helpers for a pipeline stage: a process that reads records from one or
// more channels (an InputGate) and writes records into another channel (a
// RecordWriter), so that backpressure passes through it: when its output's
// pool is empty its writes block, it stops reading, and its inputs' pools
// empty in turn.

#include "sluice/transport/record_reader.hpp"
#include "sluice/transport/record_writer.hpp"

namespace sluice::transport {

// A release hook (RecordReaderOptions::before_release, GateOptions::reader)
// that flushes `writer`: every record read from an input buffer is committed
// downstream before that buffer goes back to its producer. If the stage
// dies, its successor (Consumer::open takes over) receives every unreleased
// input buffer again, so nothing is lost; records of those buffers that had
// already been committed downstream arrive there twice (at-least-once
// across a stage's crash). `writer` must outlive the readers using the hook.
inline ReleaseHook flush_before_release(RecordWriter& writer) noexcept {
  return {
      .call = [](void* context) noexcept { (void)static_cast<RecordWriter*>(context)->flush(); },
      .context = &writer};
}

}  // namespace sluice::transport
