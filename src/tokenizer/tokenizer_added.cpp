// Splitting added tokens (<|endoftext|>, <s>, <|im_start|>, …) out of text.
//
// HF tokenizers tokenizer/added_vocabulary.rs, find_matches: an Aho-Corasick
// automaton with MatchKind::LeftmostLongest yields non-overlapping matches;
// each is then checked and widened by the token's flags:
//  * single_word: dropped unless neither neighbour character is a word
//    character (regex \w);
//  * lstrip: swallows the whitespace before it (not past the previous match);
//  * rstrip: swallows the whitespace after it.
// A dropped single_word match is not searched again for shorter tokens, as
// with the automaton. Models have a handful of added tokens (a few hundred at
// most), so a first-byte index with the candidates longest first finds the
// same leftmost-longest match without building an automaton.
#include <algorithm>

#include "tokenizer/tokenizer_internal.h"

namespace strata::tokenizer_detail {
namespace {

// The character that ends just before `pos`, or that starts at `pos`.
char32_t char_before(std::string_view s, size_t pos) {
  size_t start = pos;
  do {
    --start;
  } while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80);
  const size_t len = utf8_sequence_length(s, start);
  return len ? utf8_decode(s, start, len) : 0xFFFD;
}

char32_t char_at(std::string_view s, size_t pos) {
  const size_t len = utf8_sequence_length(s, pos);
  return len ? utf8_decode(s, pos, len) : 0xFFFD;
}

size_t char_length_before(std::string_view s, size_t pos) {
  size_t start = pos;
  do {
    --start;
  } while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80);
  return pos - start;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<std::string> patterns, std::vector<AddedToken> tokens)
    : patterns_(std::move(patterns)), tokens_(std::move(tokens)) {
  for (uint32_t i = 0; i < patterns_.size(); ++i) {
    // HF skips empty tokens: they would match everywhere.
    if (patterns_[i].empty()) continue;
    by_first_byte_[static_cast<uint8_t>(patterns_[i][0])].push_back(i);
  }
  for (auto& list : by_first_byte_)
    std::stable_sort(list.begin(), list.end(),
                     [this](uint32_t a, uint32_t b) { return patterns_[a].size() > patterns_[b].size(); });
}

std::vector<Segment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Segment> segments;
  size_t emitted = 0;  // start_offset in HF: text before it is already in segments
  size_t pos = 0;
  while (pos < text.size()) {
    // The longest pattern starting here, if any.
    const uint32_t* found = nullptr;
    for (const uint32_t& k : by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      if (text.compare(pos, patterns_[k].size(), patterns_[k]) == 0) {
        found = &k;
        break;
      }
    }
    if (!found) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[*found];
    size_t start = pos, stop = pos + patterns_[*found].size();
    pos = stop;  // the automaton resumes after this match whether or not it is kept

    if (token.single_word) {
      const bool word_before = start > 0 && is_word_char(char_before(text, start));
      const bool word_after = stop < text.size() && is_word_char(char_at(text, stop));
      if (word_before || word_after) continue;
    }
    if (token.lstrip) {
      size_t s = start;
      while (s > emitted && is_unicode_whitespace(char_before(text, s))) s -= char_length_before(text, s);
      start = std::max(s, emitted);
    }
    if (token.rstrip) {
      while (stop < text.size() && is_unicode_whitespace(char_at(text, stop))) {
        const size_t len = utf8_sequence_length(text, stop);
        stop += len ? len : 1;
      }
      pos = stop;
    }
    if (emitted < start) segments.push_back({emitted, start, -1});
    segments.push_back({start, stop, token.id});
    emitted = stop;
  }
  if (emitted < text.size()) segments.push_back({emitted, text.size(), -1});
  return segments;
}

}  // namespace strata::tokenizer_detail
