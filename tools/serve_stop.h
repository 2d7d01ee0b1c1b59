// strata serve: stop strings that may span token boundaries. Text comes in
// as the stream decoder releases it; what could still be the beginning of a
// stop string is held back until the next piece says whether it is, so a
// stop string split over several tokens ("\n\nUs" + "er:") is found and never
// reaches the client, in part or whole.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace strata::cli::serve {

// The longest suffix of `text` that is a proper prefix of `pattern` (the
// part of `text` that could still grow into `pattern`), in bytes.
size_t partial_match_length(std::string_view text, std::string_view pattern);

// Thread-safety: one instance belongs to one sequence and one thread.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  // Adds text; returns the text that is now certainly not part of a stop
  // string. After a stop string completes, returns the text before it and
  // stopped() is true; later pushes return nothing.
  std::string push(std::string_view text);
  // At the end of the sequence: the text still held back (no stop string completed).
  std::string flush();
  bool stopped() const { return stopped_; }
  // The stop string that matched (empty while none has).
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace strata::cli::serve
