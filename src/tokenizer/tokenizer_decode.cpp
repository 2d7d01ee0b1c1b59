// Decoders: token strings back to text.
//
// HF tokenizers decoders/*.rs: each decoder maps the list of token strings to
// a new list (decode_chain), a Sequence runs them in order, and the final list
// is concatenated (Decoder::decode).
#include "tokenizer/tokenizer_internal.h"

namespace strata::tokenizer_detail {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

std::string replace_literal(const std::string& text, const std::string& pattern,
                            const std::string& with) {
  if (pattern.empty()) return text;
  std::string out;
  size_t pos = 0;
  for (size_t hit = text.find(pattern); hit != std::string::npos; hit = text.find(pattern, pos)) {
    out.append(text, pos, hit - pos);
    out += with;
    pos = hit + pattern.size();
  }
  out.append(text, pos, std::string::npos);
  return out;
}

std::string replace_regex(const std::string& text, const Regex& regex, const std::string& with) {
  std::string out;
  size_t pos = 0;
  for (const auto& [begin, end] : regex.find_all(text)) {
    out.append(text, pos, begin - pos);
    out += with;
    pos = end;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

// decoders/byte_level.rs: every character maps back to its byte; a token with
// a character outside the table keeps its own UTF-8 bytes. All tokens become
// one string, with invalid UTF-8 replaced (String::from_utf8_lossy).
std::vector<std::string> byte_level(const ByteLevelMap& map, const std::vector<std::string>& tokens) {
  std::string bytes;
  for (const std::string& token : tokens) {
    const size_t mark = bytes.size();
    bool mapped = true;
    for (size_t i = 0; i < token.size() && mapped;) {
      size_t len = utf8_sequence_length(token, i);
      if (len == 0) len = 1;
      const int b = map.decode(utf8_decode(token, i, len));
      if (b < 0) mapped = false;
      else bytes += static_cast<char>(b);
      i += len;
    }
    if (!mapped) {
      bytes.resize(mark);
      bytes += token;
    }
  }
  return {to_valid_utf8(bytes)};
}

// The byte of a "<0xNN>" token, or -1.
int byte_token_value(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  int value = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = token[k];
    int digit;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else return -1;
    value = value * 16 + digit;
  }
  return value;
}

// decoders/byte_fallback.rs: runs of <0xNN> tokens become the text of their
// bytes when that is valid UTF-8, else one U+FFFD per byte.
std::vector<std::string> byte_fallback(const std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  std::string run;
  size_t run_tokens = 0;
  auto flush = [&] {
    if (run_tokens == 0) return;
    if (is_valid_utf8(run)) {
      out.push_back(run);
    } else {
      for (size_t k = 0; k < run_tokens; ++k) out.emplace_back(kReplacementChar);
    }
    run.clear();
    run_tokens = 0;
  };
  for (const std::string& token : tokens) {
    const int b = byte_token_value(token);
    if (b >= 0) {
      run += static_cast<char>(b);
      ++run_tokens;
    } else {
      flush();
      out.push_back(token);
    }
  }
  flush();
  return out;
}

// decoders/strip.rs: removes up to `start` leading and `stop` trailing copies
// of one character from each token.
std::string strip(const std::string& token, const std::string& ch, size_t start, size_t stop) {
  if (ch.empty()) return token;
  size_t begin = 0, end = token.size();
  for (size_t k = 0; k < start && begin < end && token.compare(begin, ch.size(), ch) == 0; ++k)
    begin += ch.size();
  for (size_t k = 0; k < stop && end >= begin + ch.size() &&
                     token.compare(end - ch.size(), ch.size(), ch) == 0;
       ++k)
    end -= ch.size();
  return token.substr(begin, end - begin);
}

}  // namespace

std::string run_decoders(const std::vector<DecoderStep>& steps, const ByteLevelMap& bytes,
                         std::vector<std::string> tokens) {
  for (const DecoderStep& step : steps) {
    switch (step.kind) {
      case DecoderStep::Kind::ByteLevel:
        tokens = byte_level(bytes, tokens);
        break;
      case DecoderStep::Kind::Replace:
        for (std::string& t : tokens)
          t = step.regex ? replace_regex(t, *step.regex, step.content)
                         : replace_literal(t, step.pattern, step.content);
        break;
      case DecoderStep::Kind::ByteFallback:
        tokens = byte_fallback(tokens);
        break;
      case DecoderStep::Kind::Fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case DecoderStep::Kind::Strip:
        for (std::string& t : tokens) t = strip(t, step.strip_char, step.start, step.stop);
        break;
      case DecoderStep::Kind::Metaspace:
        // decoders of pre_tokenizers/metaspace.rs: "▁" is a space, except in
        // the first token, where it is dropped (it was the prepended one)
        // unless nothing was prepended (prepend_scheme "never").
        for (size_t i = 0; i < tokens.size(); ++i)
          tokens[i] = replace_literal(tokens[i], step.replacement,
                                      i == 0 && step.strip_first ? std::string() : std::string(" "));
        break;
    }
  }
  std::string text;
  for (const std::string& t : tokens) text += t;
  return text;
}

}  // namespace strata::tokenizer_detail
