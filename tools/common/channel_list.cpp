#include "channel_list.hpp"

#include "arguments.hpp"
#include "sluice/transport/channel_config.hpp"

namespace sluice::tools {

std::vector<sluice::transport::GateInput> parse_channel_list(const std::string& flag,
                                                             const std::string& text) {
  std::vector<sluice::transport::GateInput> inputs;
  for (std::size_t start = 0;;) {
    const std::size_t comma = text.find(',', start);
    const std::string entry = text.substr(start, comma - start);
    sluice::transport::GateInput input;
    const std::size_t colon = entry.find(':');
    input.channel = entry.substr(0, colon);
    if (input.channel.empty()) {
      throw UsageError(flag + " has an empty channel name in \"" + text + "\"");
    }
    if (colon != std::string::npos) {
      const std::string digits = entry.substr(colon + 1);
      const bool numeric = !digits.empty() && digits.size() <= 2 &&
                           digits.find_first_not_of("0123456789") == std::string::npos;
      if (!numeric || std::stoul(digits) >= sluice::transport::ChannelConfig::kMaxSubpartitions) {
        throw UsageError(flag + ": \"" + entry + "\" must be NAME or NAME:I with I from 0 to " +
                         std::to_string(sluice::transport::ChannelConfig::kMaxSubpartitions - 1));
      }
      input.subpartition = static_cast<std::uint32_t>(std::stoul(digits));
    }
    inputs.push_back(std::move(input));
    if (comma == std::string::npos) {
      return inputs;
    }
    start = comma + 1;
  }
}

}  // namespace sluice::tools
