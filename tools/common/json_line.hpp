#pragma once

// Builds one JSON object on one line, for the tools' --json output.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace sluice::tools {

class JsonLine {
 public:
  JsonLine& add(std::string_view key, std::string_view value) {
    key_(key);
    text_ += '"';
    for (char c : value) {
      switch (c) {
        case '"': text_ += "\\\""; break;
        case '\\': text_ += "\\\\"; break;
        case '\n': text_ += "\\n"; break;
        case '\t': text_ += "\\t"; break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
            text_ += escaped;
          } else {
            text_ += c;
          }
      }
    }
    text_ += '"';
    return *this;
  }
  JsonLine& add(std::string_view key, const char* value) {
    return add(key, std::string_view(value));
  }
  JsonLine& add(std::string_view key, std::uint64_t value) {
    key_(key);
    text_ += std::to_string(value);
    return *this;
  }
  JsonLine& add(std::string_view key, std::int64_t value) {
    key_(key);
    text_ += std::to_string(value);
    return *this;
  }
  JsonLine& add(std::string_view key, int value) {
    return add(key, static_cast<std::int64_t>(value));
  }
  JsonLine& add(std::string_view key, double value) {
    key_(key);
    if (!std::isfinite(value)) {
      text_ += "null";
    } else {
      char number[64];
      std::snprintf(number, sizeof(number), "%.6g", value);
      text_ += number;
    }
    return *this;
  }
  JsonLine& add(std::string_view key, bool value) {
    key_(key);
    text_ += value ? "true" : "false";
    return *this;
  }
  JsonLine& add_null(std::string_view key) {
    key_(key);
    text_ += "null";
    return *this;
  }
  // `json` must already be a valid JSON value (an array or object built elsewhere).
  JsonLine& add_raw(std::string_view key, std::string_view json) {
    key_(key);
    text_ += json;
    return *this;
  }
  [[nodiscard]] std::string str() const { return text_ + "}"; }

 private:
  void key_(std::string_view key) {
    text_ += text_.size() == 1 ? "\"" : ",\"";
    text_ += key;
    text_ += "\":";
  }
  std::string text_ = "{";
};

}  // namespace sluice::tools
