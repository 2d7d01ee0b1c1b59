// Split patterns from tokenizer.json, run with PCRE2.
//
// HF tokenizers compiles these patterns with Oniguruma (utils/onig.rs), and the
// slow transformers tokenizers with Python's `regex` module. PCRE2 with UTF and
// UCP reads the same syntax (\p{L}, \p{N}, (?i:…), lookahead) with one gap
// that matters for these patterns: its \s is "property Z or \t\n\v\f\r",
// which leaves out U+0085 (NEXT LINE, a Cc that is White_Space). Oniguruma and
// `regex` both include it, so \s and \S are widened before compiling.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "tokenizer/tokenizer_internal.h"
#include "strata/error.h"

namespace strata::tokenizer_detail {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof buffer) < 0) return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buffer);
}

// Rewrites \s to also match U+0085, inside and outside character classes.
// Everything else is copied as is; escapes are copied whole so that "\\s" (a
// backslash then s) is left alone.
std::string widen_whitespace(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size() + 16);
  int class_depth = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      ++i;
      if (e == 's') {
        out += class_depth > 0 ? R"(\s\x{85})" : R"([\s\x{85}])";
      } else if (e == 'S' && class_depth == 0) {
        out += R"([^\s\x{85}])";
      } else {
        out += '\\';
        out += e;
      }
      continue;
    }
    if (c == '[') {
      // A "]" right after "[" or "[^" is a literal, not the end of the class.
      out += c;
      ++class_depth;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && class_depth > 0) --class_depth;
    out += c;
  }
  return out;
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* md) const { pcre2_match_data_free(md); }
};

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& file) : file_(file) {
  const std::string translated = widen_whitespace(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                        PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code_ == nullptr)
    throw Error("cannot compile pre-tokenizer regex '" + pattern + "': " + pcre2_message(error) +
                    " at offset " + std::to_string(offset),
                file, {}, "a regex feature PCRE2 does not support?");
  // JIT is an optimization only: when unavailable (no JIT support on this
  // platform), pcre2_match falls back to the interpreter by itself.
  (void)pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() { pcre2_code_free(code_); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(
      pcre2_match_data_create_from_pattern(code_, nullptr));
  if (!md) throw Error("out of memory creating regex match data", file_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    // The text was made valid UTF-8 before it got here, so skip PCRE2's check
    // (it would rescan the rest of the text on every call).
    const int rc = pcre2_match(code_, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md.get(),
                               nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0)
      throw Error("pre-tokenizer regex failed on the input: " + pcre2_message(rc), file_, {},
                  "input too long for the regex engine?");
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    const size_t begin = ov[0], end = ov[1];
    matches.emplace_back(begin, end);
    if (end > begin) {
      start = end;
    } else {
      // An empty match: step over one character so the scan always advances.
      if (end >= text.size()) break;
      const size_t len = utf8_sequence_length(text, end);
      start = end + (len ? len : 1);
    }
  }
  return matches;
}

}  // namespace strata::tokenizer_detail
