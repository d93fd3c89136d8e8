#pragma once

// A bridge's status, kept in a small file beside its channel so that
// `sluice stat` can show the bridge as a stage together with its stream: one
// line of flat JSON (string and whole-number values only), replaced whole
// (write, then rename) a few times a second and at the end.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::tools {

// "out" for the bridge that reads channel NAME, "in" for the one that writes it.
std::string status_path(std::string_view channel, std::string_view direction);

class StatusLine {
 public:
  StatusLine& add(std::string_view key, std::string_view value);
  StatusLine& add(std::string_view key, std::uint64_t value);
  [[nodiscard]] std::string str() const { return text_ + "}"; }

 private:
  void key(std::string_view key);
  std::string text_ = "{";
};

// Replaces the file at `path` with `line` (no effect if `path` is empty;
// failures are ignored: the status is for display only).
void write_status(const std::string& path, const std::string& line);

// The file's first line (empty if there is none).
std::string read_status(const std::string& path);

// Parses a line written by StatusLine: the key/value pairs in order, values
// as their JSON text (strings quoted). False for anything else: the file is
// another process's, so it is checked, not trusted.
bool parse_status(std::string_view line, std::vector<std::pair<std::string, std::string>>& out);

using StatusPairs = std::vector<std::pair<std::string, std::string>>;

// The sluice-bridge processes attached to channel NAME that are running
// (their pid alive), from the status files they keep beside it (out reads
// the channel, in writes it).
std::vector<StatusPairs> running_bridges(const std::string& channel);

// One line for a bridge: "bridge  key=value ..." in the file's order.
std::string bridge_text(const StatusPairs& pairs);

// Removes what sluice-bridge keeps beside channel NAME: `in`'s resume state
// (meaningless once the channel is gone; the same path as
// sluice::nats::default_state_path) and both status files. Returns how many
// files went.
int remove_bridge_files(std::string_view channel);

// Removes the bridge files in /dev/shm whose channel no longer exists (left
// by a bridge that was stopped or killed, its channel removed since), and
// returns their paths.
std::vector<std::string> remove_orphaned_bridge_files();

}  // namespace sluice::tools
