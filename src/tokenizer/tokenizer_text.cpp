// Normalizers and pre-tokenizers: the text-to-pieces stages before the BPE
// model. Each follows the HF tokenizers type of the same name (normalizers/*.rs,
// pre_tokenizers/*.rs); only the string results matter here, so the offset
// bookkeeping of HF's NormalizedString is left out.
#include <algorithm>

#include "tokenizer/tokenizer_internal.h"

namespace strata::tokenizer_detail {
namespace {

std::string replace_all(std::string_view text, std::string_view pattern, std::string_view with) {
  if (pattern.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(pattern, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(with);
    pos = hit + pattern.size();
  }
  out.append(text.substr(pos));
  return out;
}

std::string strip_whitespace(std::string_view text, bool left, bool right) {
  const auto chars = utf8_chars(text);
  size_t first = 0, last = chars.size();
  auto space = [&](size_t k) {
    return is_unicode_whitespace(utf8_decode(chars[k], 0, chars[k].size()));
  };
  if (left)
    while (first < last && space(first)) ++first;
  if (right)
    while (last > first && space(last - 1)) --last;
  if (first == last) return {};
  const size_t begin = static_cast<size_t>(chars[first].data() - text.data());
  const size_t end = static_cast<size_t>(chars[last - 1].data() - text.data()) + chars[last - 1].size();
  return std::string(text.substr(begin, end - begin));
}

// A split of one piece into (range, is_match) parts covering it, as HF's
// Pattern::find_matches returns them.
using Parts = std::vector<std::pair<std::pair<size_t, size_t>, bool>>;

Parts parts_from_matches(size_t length, const std::vector<std::pair<size_t, size_t>>& matches) {
  Parts parts;
  size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    if (prev != begin) parts.push_back({{prev, begin}, false});
    parts.push_back({{begin, end}, true});
    prev = end;
  }
  if (prev != length) parts.push_back({{prev, length}, false});
  return parts;
}

// HF NormalizedString::split: applies the delimiter behavior to the parts and
// drops empty pieces.
std::vector<Piece> split_piece(const Piece& piece, Parts parts, SplitBehavior behavior, bool invert) {
  if (invert)
    for (auto& part : parts) part.second = !part.second;

  std::vector<std::pair<size_t, size_t>> ranges;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const auto& part : parts) ranges.push_back(part.first);
      break;
    case SplitBehavior::Removed:
      for (const auto& part : parts)
        if (!part.second) ranges.push_back(part.first);
      break;
    case SplitBehavior::Contiguous:
      for (const auto& [range, is_match] : parts) {
        if (is_match == previous_match && !ranges.empty()) ranges.back().second = range.second;
        else ranges.push_back(range);
        previous_match = is_match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const auto& [range, is_match] : parts) {
        if (is_match && !previous_match && !ranges.empty()) ranges.back().second = range.second;
        else ranges.push_back(range);
        previous_match = is_match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      // HF folds from the right: a delimiter joins the piece after it.
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        const auto& [range, is_match] = *it;
        if (is_match && !previous_match && !ranges.empty()) ranges.back().first = range.first;
        else ranges.push_back(range);
        previous_match = is_match;
      }
      std::reverse(ranges.begin(), ranges.end());
      break;
  }

  std::vector<Piece> out;
  for (const auto& [begin, end] : ranges) {
    if (begin == end) continue;
    out.push_back({piece.text.substr(begin, end - begin), piece.at_start && begin == 0});
  }
  return out;
}

std::vector<std::pair<size_t, size_t>> literal_matches(std::string_view text, std::string_view what) {
  std::vector<std::pair<size_t, size_t>> matches;
  if (what.empty()) return matches;
  for (size_t pos = text.find(what); pos != std::string_view::npos; pos = text.find(what, pos + what.size()))
    matches.emplace_back(pos, pos + what.size());
  return matches;
}

// Each ASCII digit as its own match (individual) or runs of them.
std::vector<std::pair<size_t, size_t>> digit_matches(std::string_view text, bool individual) {
  std::vector<std::pair<size_t, size_t>> matches;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') continue;
    if (!individual && !matches.empty() && matches.back().second == i) matches.back().second = i + 1;
    else matches.emplace_back(i, i + 1);
  }
  return matches;
}

void apply_step(const PreTokenizerStep& step, const ByteLevelMap& bytes, std::vector<Piece>& pieces) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  auto append = [&out](std::vector<Piece> more) {
    for (auto& p : more) out.push_back(std::move(p));
  };
  for (Piece& piece : pieces) {
    switch (step.kind) {
      case PreTokenizerStep::Kind::Split: {
        auto matches = step.regex ? step.regex->find_all(piece.text) : literal_matches(piece.text, step.literal);
        append(split_piece(piece, parts_from_matches(piece.text.size(), matches), step.behavior, step.invert));
        break;
      }
      case PreTokenizerStep::Kind::Digits: {
        const auto behavior = step.individual_digits ? SplitBehavior::Isolated : SplitBehavior::Contiguous;
        append(split_piece(piece, parts_from_matches(piece.text.size(), digit_matches(piece.text, step.individual_digits)),
                           behavior, false));
        break;
      }
      case PreTokenizerStep::Kind::ByteLevel: {
        // pre_tokenizers/byte_level.rs: optional prefix space, the GPT-2 split,
        // then every byte becomes its printable stand-in character.
        if (step.add_prefix_space && (piece.text.empty() || piece.text[0] != ' '))
          piece.text.insert(0, 1, ' ');
        std::vector<Piece> split;
        if (step.regex)
          split = split_piece(piece, parts_from_matches(piece.text.size(), step.regex->find_all(piece.text)),
                              SplitBehavior::Isolated, false);
        else if (!piece.text.empty())
          split.push_back(std::move(piece));
        for (Piece& p : split) {
          std::string mapped;
          mapped.reserve(p.text.size() * 2);
          for (char c : p.text) mapped += bytes.encode(static_cast<uint8_t>(c));
          out.push_back({std::move(mapped), p.at_start});
        }
        break;
      }
      case PreTokenizerStep::Kind::Metaspace: {
        // pre_tokenizers/metaspace.rs: spaces become "▁", one is prepended per
        // the scheme, then the text splits before each "▁".
        Piece p{replace_all(piece.text, " ", step.replacement), piece.at_start};
        const bool starts = p.text.compare(0, step.replacement.size(), step.replacement) == 0;
        const bool prepend = !starts && (step.prepend_scheme == PrependScheme::Always ||
                                         (step.prepend_scheme == PrependScheme::First && p.at_start));
        if (prepend) p.text.insert(0, step.replacement);
        if (step.split)
          append(split_piece(p, parts_from_matches(p.text.size(), literal_matches(p.text, step.replacement)),
                             SplitBehavior::MergedWithNext, false));
        else if (!p.text.empty())
          out.push_back(std::move(p));
        break;
      }
    }
  }
  pieces = std::move(out);
}

}  // namespace

std::string run_normalizers(const std::vector<NormalizerStep>& steps, std::string text) {
  for (const NormalizerStep& step : steps) {
    switch (step.kind) {
      case NormalizerStep::Kind::Unicode:
        text = unicode_normalize(text, step.form);
        break;
      case NormalizerStep::Kind::Prepend:
        // normalizers/prepend.rs: only non-empty text gets the prefix.
        if (!text.empty()) text.insert(0, step.text);
        break;
      case NormalizerStep::Kind::Replace:
        if (step.regex) {
          std::string out;
          size_t prev = 0;
          for (const auto& [begin, end] : step.regex->find_all(text)) {
            out.append(text, prev, begin - prev);
            out += step.content;
            prev = end;
          }
          out.append(text, prev, std::string::npos);
          text = std::move(out);
        } else {
          text = replace_all(text, step.text, step.content);
        }
        break;
      case NormalizerStep::Kind::Lowercase:
        text = unicode_lowercase(text);
        break;
      case NormalizerStep::Kind::Strip:
        text = strip_whitespace(text, step.strip_left, step.strip_right);
        break;
    }
  }
  return text;
}

std::vector<Piece> run_pre_tokenizers(const std::vector<PreTokenizerStep>& steps,
                                      const ByteLevelMap& bytes, Piece input) {
  std::vector<Piece> pieces;
  if (input.text.empty()) return pieces;
  pieces.push_back(std::move(input));
  for (const PreTokenizerStep& step : steps) apply_step(step, bytes, pieces);
  return pieces;
}

}  // namespace strata::tokenizer_detail
