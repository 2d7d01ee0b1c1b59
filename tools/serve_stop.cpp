#include "serve_stop.h"

#include <algorithm>

namespace strata::cli::serve {

size_t partial_match_length(std::string_view text, std::string_view pattern) {
  const size_t longest = std::min(text.size(), pattern.empty() ? size_t{0} : pattern.size() - 1);
  for (size_t n = longest; n > 0; --n)
    if (text.substr(text.size() - n) == pattern.substr(0, n)) return n;
  return 0;
}

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string StopMatcher::push(std::string_view text) {
  if (stopped_) return {};
  if (stops_.empty()) return std::string(text);
  held_.append(text);

  // The earliest stop string in the held text ends the sequence there.
  size_t first = std::string::npos;
  for (const std::string& stop : stops_) {
    const size_t at = held_.find(stop);
    if (at < first) {
      first = at;
      matched_ = stop;
    }
  }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }

  // Release everything but the longest tail that could begin a stop string.
  size_t keep = 0;
  for (const std::string& stop : stops_) keep = std::max(keep, partial_match_length(held_, stop));
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::flush() {
  std::string out;
  out.swap(held_);
  return stopped_ ? std::string() : out;
}

}  // namespace strata::cli::serve
