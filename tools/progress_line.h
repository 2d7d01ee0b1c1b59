// A progress line on stderr for long work (writing a checkpoint, loading
// weights): rewritten in place on a terminal, a line every few seconds
// otherwise, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace strata::cli {

class ProgressLine {
 public:
  explicit ProgressLine(std::string what);
  // Ends a line left open on a terminal (the work failed midway), so that
  // what is printed next starts on a line of its own.
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  // done == 0 (re)starts the clock; done == total ends the line.
  void update(uint64_t done, uint64_t total);

 private:
  using Clock = std::chrono::steady_clock;
  std::string what_;
  bool tty_;
  bool line_open_ = false;  // a terminal line was written and not ended
  Clock::time_point start_, last_;
};

// Work below this many bytes is over before a progress line would help.
inline constexpr uint64_t kProgressAbove = 200'000'000;

// A callback that shows a ProgressLine for `what` once the total is above
// kProgressAbove, and stays silent below it.
std::function<void(uint64_t done, uint64_t total)> progress_callback(const std::string& what);

}  // namespace strata::cli
