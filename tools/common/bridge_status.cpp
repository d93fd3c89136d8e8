#include "bridge_status.hpp"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "sluice/shm/segment.hpp"

namespace sluice::tools {

std::string status_path(std::string_view channel, std::string_view direction) {
  // Hidden, so that tools listing channels in /dev/shm pass it by.
  return "/dev/shm/.sluice-bridge-" + std::string(direction) + "." + std::string(channel) +
         ".status";
}

namespace {

// Characters a status string may hold: no quote, backslash or control byte,
// so that no escaping is needed and parse_status can be strict.
bool plain(char c) {
  return c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20;
}

}  // namespace

void StatusLine::key(std::string_view key) {
  text_ += text_.size() == 1 ? "\"" : ",\"";
  text_ += key;
  text_ += "\":";
}

StatusLine& StatusLine::add(std::string_view key_name, std::string_view value) {
  key(key_name);
  text_ += '"';
  for (char c : value) {
    text_ += plain(c) ? c : '?';
  }
  text_ += '"';
  return *this;
}

StatusLine& StatusLine::add(std::string_view key_name, std::uint64_t value) {
  key(key_name);
  text_ += std::to_string(value);
  return *this;
}

void write_status(const std::string& path, const std::string& line) {
  if (path.empty()) {
    return;
  }
  const std::string temporary = path + ".tmp" + std::to_string(getpid());
  if (FILE* file = std::fopen(temporary.c_str(), "w")) {
    const bool written = std::fputs((line + "\n").c_str(), file) >= 0;
    if (std::fclose(file) == 0 && written) {
      (void)std::rename(temporary.c_str(), path.c_str());
      return;
    }
  }
  (void)std::remove(temporary.c_str());
}

std::string read_status(const std::string& path) {
  std::string line;
  if (FILE* file = std::fopen(path.c_str(), "r")) {
    char chunk[1024];
    if (std::fgets(chunk, sizeof(chunk), file) != nullptr) {
      line = chunk;
    }
    std::fclose(file);
  }
  return line;
}

bool parse_status(std::string_view line, std::vector<std::pair<std::string, std::string>>& out) {
  out.clear();
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  if (line.size() < 2 || line.front() != '{' || line.back() != '}') {
    return false;
  }
  std::size_t at = 1;
  const std::size_t end = line.size() - 1;
  while (at < end) {
    if (line[at] != '"') {
      return false;
    }
    std::size_t key_end = at + 1;
    while (key_end < end &&
           (std::islower(static_cast<unsigned char>(line[key_end])) != 0 || line[key_end] == '_')) {
      ++key_end;
    }
    if (key_end == at + 1 || key_end + 1 >= end || line[key_end] != '"' ||
        line[key_end + 1] != ':') {
      return false;
    }
    std::string key(line.substr(at + 1, key_end - at - 1));
    std::size_t value_start = key_end + 2;
    std::size_t value_end = value_start;
    if (value_start < end && line[value_start] == '"') {
      value_end = value_start + 1;
      while (value_end < end && plain(line[value_end])) {
        ++value_end;
      }
      if (value_end >= end || line[value_end] != '"') {
        return false;
      }
      ++value_end;
    } else {
      while (value_end < end && std::isdigit(static_cast<unsigned char>(line[value_end])) != 0) {
        ++value_end;
      }
      if (value_end == value_start || value_end - value_start > 20) {
        return false;
      }
    }
    out.emplace_back(std::move(key),
                     std::string(line.substr(value_start, value_end - value_start)));
    at = value_end;
    if (at < end) {
      if (line[at] != ',' || at + 1 >= end) {
        return false;  // pairs are separated by one comma, none trails
      }
      ++at;
    }
  }
  return !out.empty();
}

std::vector<StatusPairs> running_bridges(const std::string& channel) {
  std::vector<StatusPairs> bridges;
  for (const char* direction : {"out", "in"}) {
    StatusPairs pairs;
    if (!parse_status(read_status(status_path(channel, direction)), pairs)) {
      continue;
    }
    for (const auto& [key, value] : pairs) {
      const bool number = !value.empty() && value.size() < 10 &&
                          value.find_first_not_of("0123456789") == std::string::npos;
      if (key == "pid" && number && std::stoi(value) > 0 && kill(std::stoi(value), 0) == 0) {
        bridges.push_back(pairs);
      }
    }
  }
  return bridges;
}

std::string bridge_text(const StatusPairs& pairs) {
  std::string line = "bridge  ";
  for (const auto& [key, value] : pairs) {
    line += " " + key + "=" + value;
  }
  return line;
}

namespace {

constexpr std::string_view kShmDir = "/dev/shm/";
constexpr std::string_view kBridgePrefixes[] = {".sluice-bridge-in.", ".sluice-bridge-out."};

// The channel a bridge file belongs to: NAME of .sluice-bridge-in.NAME,
// .sluice-bridge-(in|out).NAME.status and .status.tmpN (a replacement cut
// short); empty for any other file.
std::string channel_of_bridge_file(std::string_view file) {
  for (const std::string_view prefix : kBridgePrefixes) {
    if (file.substr(0, prefix.size()) != prefix) {
      continue;
    }
    std::string_view rest = file.substr(prefix.size());
    if (const std::size_t status = rest.rfind(".status"); status != std::string_view::npos) {
      rest = rest.substr(0, status);
    } else if (prefix != kBridgePrefixes[0]) {
      return {};  // out keeps nothing but its status
    }
    return std::string(rest);
  }
  return {};
}

}  // namespace

int remove_bridge_files(std::string_view channel) {
  int removed = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(kShmDir, error)) {
    if (channel_of_bridge_file(entry.path().filename().string()) == channel &&
        std::filesystem::remove(entry.path(), error)) {
      ++removed;
    }
  }
  return removed;
}

std::vector<std::string> remove_orphaned_bridge_files() {
  std::vector<std::string> removed;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(kShmDir, error)) {
    const std::string file = entry.path().filename().string();
    const std::string channel = channel_of_bridge_file(file);
    if (channel.empty() || sluice::shm::Segment::exists(channel)) {
      continue;
    }
    if (std::filesystem::remove(entry.path(), error)) {
      removed.push_back(entry.path().string());
    }
  }
  return removed;
}

}  // namespace sluice::tools
