#include "progress_line.h"

#include <unistd.h>

#include <cstdio>

#include "core/byte_size.h"

namespace strata::cli {

ProgressLine::ProgressLine(std::string what)
    : what_(std::move(what)), tty_(::isatty(STDERR_FILENO) != 0), start_(Clock::now()), last_(start_) {}

ProgressLine::~ProgressLine() {
  if (line_open_) std::fprintf(stderr, "\n");
}

void ProgressLine::update(uint64_t done, uint64_t total) {
  const auto now = Clock::now();
  if (done == 0) {  // the work starts now; what came before is not counted
    start_ = last_ = now;
    return;
  }
  const double since_last = std::chrono::duration<double>(now - last_).count();
  if (done < total && since_last < (tty_ ? 0.25 : 2.0)) return;
  last_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  std::fprintf(stderr, "%s%s: %s / %s (%3.0f%%), %s/s%s", tty_ ? "\r" : "", what_.c_str(),
               format_bytes(done, ByteUnits::decimal).c_str(), format_bytes(total, ByteUnits::decimal).c_str(),
               total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0,
               format_bytes(static_cast<uint64_t>(rate), ByteUnits::decimal).c_str(), tty_ ? "   " : "\n");
  line_open_ = tty_ && done < total;
  if (tty_ && done >= total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

std::function<void(uint64_t, uint64_t)> progress_callback(const std::string& what) {
  auto line = std::make_shared<ProgressLine>(what);
  return [line](uint64_t done, uint64_t total) {
    if (total > kProgressAbove) line->update(done, total);
  };
}

}  // namespace strata::cli
