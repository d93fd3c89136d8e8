// sluice top: a live view of every channel on the host, refreshed about once
// a second. In a terminal it redraws in place, follows resizes and quits on
// q; when stdout is not a terminal it prints plain lines per refresh.

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../../common/bridge_status.hpp"
#include "commands.hpp"
#include "pipeline.hpp"
#include "sluice/shm/segment.hpp"
#include "sluice/transport/channel_metrics.hpp"

namespace st = sluice::transport;

namespace sluice::tools {

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_stop_signal(int /*signal*/) {
  g_stop = 1;
}
void on_resize_signal(int /*signal*/) {}  // interrupts poll(): redraw at the new size

// Puts the terminal in non-canonical, no-echo mode for single-key input and
// restores it (and the cursor) on destruction.
class TerminalMode {
 public:
  TerminalMode() {
    if (tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    std::fputs("\x1b[?25l", stdout);  // hide cursor
  }
  ~TerminalMode() {
    if (active_) {
      tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
    }
    std::fputs("\x1b[?25h\n", stdout);
    std::fflush(stdout);
  }
  TerminalMode(const TerminalMode&) = delete;
  TerminalMode& operator=(const TerminalMode&) = delete;

 private:
  termios saved_{};
  bool active_ = false;
};

struct Watched {
  std::unique_ptr<st::ChannelObserver> observer;
  std::optional<st::ChannelSnapshot> last;
  st::ChannelRates rates;
  bool have_rates = false;
};

std::string pool_bar(double usage, int width) {
  const int filled = static_cast<int>(usage * width + 0.5);
  std::string bar = "[";
  for (int i = 0; i < width; ++i) {
    bar += i < filled ? '#' : '.';
  }
  return bar + "]";
}

std::string human_rate(double value) {
  char text[32];
  if (value >= 1e9) {
    std::snprintf(text, sizeof(text), "%.2fG", value / 1e9);
  } else if (value >= 1e6) {
    std::snprintf(text, sizeof(text), "%.2fM", value / 1e6);
  } else if (value >= 1e3) {
    std::snprintf(text, sizeof(text), "%.1fk", value / 1e3);
  } else {
    std::snprintf(text, sizeof(text), "%.0f", value);
  }
  return text;
}

void refresh(std::map<std::string, Watched>& watched) {
  std::map<std::string, Watched> next;
  for (const std::string& name : sluice::shm::Segment::list()) {
    auto found = watched.find(name);
    Watched entry = found != watched.end() ? std::move(found->second) : Watched{};
    if (!entry.observer) {
      try {
        entry.observer = std::make_unique<st::ChannelObserver>(name);
      } catch (const std::exception&) {
        continue;  // not (yet) a readable channel
      }
    }
    const st::ChannelSnapshot now = entry.observer->snapshot();
    if (entry.last) {
      entry.rates = st::derive_rates(*entry.last, now, entry.observer->config());
      entry.have_rates = true;
    }
    entry.last = now;
    next.emplace(name, std::move(entry));
  }
  watched = std::move(next);
}

std::vector<std::string> render(const std::map<std::string, Watched>& watched) {
  std::vector<std::string> lines;
  char line[512];
  std::snprintf(line, sizeof(line), "%-20s %9s %9s %9s %-14s %5s %7s %7s %7s %-5s %-12s %-12s",
                "CHANNEL", "OUT rec/s", "IN rec/s", "MB/s", "POOL", "USE", "BP ms/s", "IDLE/s",
                "BUSY/s", "LEVEL", "PRODUCER", "CONSUMER");
  lines.emplace_back(line);
  for (const auto& [name, w] : watched) {
    const st::ChannelSnapshot& s = *w.last;
    if (!w.have_rates) {
      std::snprintf(line, sizeof(line), "%-20.20s (measuring)", name.c_str());
      lines.emplace_back(line);
      continue;
    }
    const st::ChannelRates& r = w.rates;
    std::snprintf(line, sizeof(line),
                  "%-20.20s %9s %9s %9.1f %-14s %4.0f%% %7.0f %7.0f %7.0f %-5s %-12s %-12s",
                  name.c_str(), human_rate(r.records_out_per_sec).c_str(),
                  human_rate(r.records_in_per_sec).c_str(), r.bytes_in_per_sec / 1e6,
                  pool_bar(r.out_pool_usage, 12).c_str(), 100.0 * r.out_pool_usage,
                  r.backpressured_ms_per_sec, r.idle_ms_per_sec, r.producer_busy_ms_per_sec,
                  std::string(st::to_string(r.level)).c_str(), endpoint_text(s.producer).c_str(),
                  endpoint_text(s.consumer).c_str());
    lines.emplace_back(line);
    for (const StatusPairs& bridge : running_bridges(name)) {
      lines.push_back("  " + bridge_text(bridge));  // its stream, acknowledged, pending, lag
    }
  }
  if (watched.empty()) {
    lines.emplace_back("(no channels)");
    return lines;
  }
  std::vector<ChannelView> measured;
  for (const auto& [name, w] : watched) {
    if (w.have_rates) {
      measured.push_back({name, *w.last, w.rates});
    }
  }
  lines.emplace_back("");
  for (std::string& stage_line : pipeline_text_lines(analyse_pipeline(measured))) {
    lines.push_back(std::move(stage_line));
  }
  return lines;
}

int terminal_width() {
  winsize size{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) {
    return size.ws_col;
  }
  return 200;
}

enum class Event { kTick, kResize, kQuit };

// Waits until `deadline`, a q key (when reading keys) or a signal.
Event wait_for_event(std::chrono::steady_clock::time_point deadline, bool keys) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return Event::kTick;
    }
    pollfd input{STDIN_FILENO, POLLIN, 0};
    const int ready = poll(keys ? &input : nullptr, keys ? 1 : 0, static_cast<int>(left.count()));
    if (ready < 0) {
      return g_stop != 0 ? Event::kQuit : Event::kResize;
    }
    if (ready > 0) {
      char key = 0;
      if (read(STDIN_FILENO, &key, 1) == 1 && (key == 'q' || key == 'Q')) {
        return Event::kQuit;
      }
    }
  }
}

void draw(const std::vector<std::string>& lines, bool interactive, double interval,
          std::size_t channels) {
  if (interactive) {
    const auto width = static_cast<std::size_t>(terminal_width());
    std::fputs("\x1b[H\x1b[2J", stdout);
    std::printf("sluice top - %zu channel%s - refresh %.1f s - q quits\n\n", channels,
                channels == 1 ? "" : "s", interval);
    for (const std::string& line : lines) {
      std::printf("%s\n", line.substr(0, width).c_str());
    }
  } else {
    for (const std::string& line : lines) {
      std::printf("%s\n", line.c_str());
    }
    std::printf("\n");
  }
  std::fflush(stdout);
}

}  // namespace

int run_top(int argc, char** argv) {
  const Arguments args(argc, argv, 2, {"--interval", "--iterations"}, {});
  if (!args.positional().empty()) {
    throw UsageError("top takes no names");
  }
  const double interval = args.has("--interval") ? args.real_number("--interval", 0.05, 3600) : 1.0;
  const auto iterations = args.optional_unsigned("--iterations", 1, UINT64_MAX);
  const bool interactive = isatty(STDOUT_FILENO) != 0;
  const bool keys = interactive && isatty(STDIN_FILENO) != 0;

  struct sigaction stop {};
  stop.sa_handler = on_stop_signal;
  sigaction(SIGINT, &stop, nullptr);
  sigaction(SIGTERM, &stop, nullptr);
  struct sigaction resize {};
  resize.sa_handler = on_resize_signal;  // no SA_RESTART: poll returns EINTR
  sigaction(SIGWINCH, &resize, nullptr);

  std::optional<TerminalMode> terminal;
  if (interactive) {
    terminal.emplace();
  }
  std::map<std::string, Watched> watched;
  refresh(watched);  // first snapshots; rates need a second one
  std::vector<std::string> lines = render(watched);
  std::uint64_t shown = 0;
  const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(interval));
  auto next_refresh = std::chrono::steady_clock::now() + period;
  while (g_stop == 0) {
    const Event event = wait_for_event(next_refresh, keys);
    if (event == Event::kQuit || g_stop != 0) {
      break;
    }
    if (event == Event::kTick) {
      refresh(watched);
      lines = render(watched);
      ++shown;
      next_refresh += period;
    } else if (!interactive) {
      continue;  // a resize means nothing to plain output
    }
    draw(lines, interactive, interval, watched.size());
    if (iterations && shown >= *iterations) {
      break;
    }
  }
  return 0;
}

}  // namespace sluice::tools
