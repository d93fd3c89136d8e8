#include "prometheus.hpp"

#include <cstdio>
#include <functional>

namespace st = sluice::transport;

namespace sluice::tools {

namespace {

// Label values escape backslash, double quote and newline; nothing else.
std::string label_value(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string value_text(double value) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.9g", value);
  return text;
}

class Exposition {
 public:
  // Every family is declared once, its samples follow together.
  void family(const char* name, const char* type, const char* help) {
    name_ = name;
    text_ += std::string("# HELP ") + name + " " + help + "\n";
    text_ += std::string("# TYPE ") + name + " " + type + "\n";
  }
  void sample(const std::vector<std::pair<const char*, std::string>>& labels, double value) {
    text_ += name_;
    char separator = '{';
    for (const auto& [key, text] : labels) {
      text_ += separator;
      text_ += std::string(key) + "=\"" + label_value(text) + "\"";
      separator = ',';
    }
    text_ += (labels.empty() ? " " : "} ") + value_text(value) + "\n";
  }
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  std::string name_;
  std::string text_;
};

using Labels = std::vector<std::pair<const char*, std::string>>;

Labels endpoint_labels(const ChannelView& channel, bool producer) {
  const st::EndpointInfo& endpoint =
      producer ? channel.snapshot.producer : channel.snapshot.consumer;
  return {{"channel", channel.name},
          {"role", producer ? "producer" : "consumer"},
          {"pid", std::to_string(endpoint.pid)}};
}

void per_side(Exposition& out, const std::vector<ChannelView>& channels, const char* name,
              const char* help, const std::function<double(const st::CounterSnapshot&)>& value) {
  out.family(name, "counter", help);
  for (const ChannelView& channel : channels) {
    out.sample(endpoint_labels(channel, true), value(channel.snapshot.produced));
    out.sample(endpoint_labels(channel, false), value(channel.snapshot.consumed));
  }
}

Labels stage_labels(const Stage& stage) {
  return {{"pid", std::to_string(stage.id.pid)}, {"command", stage.command}};
}

}  // namespace

std::string prometheus_text(const std::vector<ChannelView>& channels,
                            const PipelineReport& report) {
  Exposition out;
  per_side(out, channels, "sluice_records_total",
           "Records committed (producer) or read (consumer) on the channel.",
           [](const st::CounterSnapshot& c) { return static_cast<double>(c.records); });
  per_side(out, channels, "sluice_bytes_total",
           "Buffer bytes handed over (producer) or received (consumer), framing included.",
           [](const st::CounterSnapshot& c) { return static_cast<double>(c.bytes); });
  per_side(out, channels, "sluice_buffers_total",
           "Buffers handed over (producer) or received (consumer).",
           [](const st::CounterSnapshot& c) { return static_cast<double>(c.buffers); });
  out.family("sluice_blocked_seconds_total", "counter",
             "Time the producer waited for a free buffer (backpressure).");
  for (const ChannelView& channel : channels) {
    out.sample(endpoint_labels(channel, true),
               static_cast<double>(channel.snapshot.produced.waited_ns) / 1e9);
  }
  out.family("sluice_idle_seconds_total", "counter", "Time the consumer waited for data.");
  for (const ChannelView& channel : channels) {
    out.sample(endpoint_labels(channel, false),
               static_cast<double>(channel.snapshot.consumed.waited_ns) / 1e9);
  }
  out.family("sluice_pool_usage_ratio", "gauge",
             "Buffers not free in the pool, as a fraction of all (Flink's outPoolUsage).");
  for (const ChannelView& channel : channels) {
    out.sample({{"channel", channel.name}}, channel.rates.out_pool_usage);
  }
  out.family("sluice_endpoint_alive", "gauge",
             "1 while the endpoint's process holds its liveness lock, else 0.");
  for (const ChannelView& channel : channels) {
    out.sample(endpoint_labels(channel, true), channel.snapshot.producer.alive ? 1 : 0);
    out.sample(endpoint_labels(channel, false), channel.snapshot.consumer.alive ? 1 : 0);
  }
  out.family("sluice_stage_backpressured_ratio", "gauge",
             "Fraction of the last interval the stage was blocked writing its channels.");
  for (const Stage& stage : report.stages) {
    out.sample(stage_labels(stage), stage.backpressured_ms_per_sec / 1000.0);
  }
  out.family("sluice_stage_idle_ratio", "gauge",
             "Fraction of the last interval the stage waited for input.");
  for (const Stage& stage : report.stages) {
    out.sample(stage_labels(stage), stage.idle_ms_per_sec / 1000.0);
  }
  out.family("sluice_stage_busy_ratio", "gauge",
             "Fraction of the last interval the stage was neither backpressured nor idle.");
  for (const Stage& stage : report.stages) {
    out.sample(stage_labels(stage), stage.busy_ms_per_sec / 1000.0);
  }
  out.family("sluice_stage_bottleneck", "gauge",
             "1 for the stage named its pipeline's bottleneck, else 0.");
  for (const Stage& stage : report.stages) {
    out.sample(stage_labels(stage), stage.bottleneck ? 1 : 0);
  }
  return out.text();
}

}  // namespace sluice::tools
