// Internal pieces of strata::Tokenizer (include/strata/tokenizer.h).
//
// The pipeline mirrors Hugging Face `tokenizers` (tokenizer/mod.rs,
// `encode_single_sequence` and `decode`):
//   raw text → added-token split (added_vocabulary.rs) → normalizer →
//   added-token split on the normalized text → pre-tokenizer → BPE model →
//   post-processor (BOS/EOS);
//   ids → token strings → decoder chain → text.
// Each stage is a small value type here; tokenizer_load.cpp builds them from
// tokenizer.json and tokenizer.cpp runs them. Everything in this header is
// immutable after loading, so a loaded tokenizer may be used from several
// threads at once (encode/decode keep their scratch space on the stack).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "strata/tokenizer.h"

struct pcre2_real_code_8;  // pcre2.h stays out of headers: it needs a width macro first.

namespace strata::tokenizer_detail {

// ---------------------------------------------------------------- UTF-8 (tokenizer_unicode.cpp)

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 if the bytes
// there are not one (Unicode 15, table 3-7: no overlongs, no surrogates).
size_t utf8_sequence_length(std::string_view s, size_t i);
// The code point of the well-formed sequence of `len` bytes at s[i].
char32_t utf8_decode(std::string_view s, size_t i, size_t len);
void append_utf8(std::string& out, char32_t cp);
bool is_valid_utf8(std::string_view s);
// Replaces each maximal ill-formed subsequence with U+FFFD, the policy of both
// Rust's String::from_utf8_lossy (what HF's ByteLevel decoder uses) and
// Python's bytes.decode(errors="replace").
std::string to_valid_utf8(std::string_view bytes);
// Splits valid UTF-8 into its characters (views into `s`).
std::vector<std::string_view> utf8_chars(std::string_view s);

enum class UnicodeForm { NFC, NFD, NFKC, NFKD };
// Unicode normalization of valid UTF-8 through utf8proc.
std::string unicode_normalize(std::string_view text, UnicodeForm form);
// Simple (one code point to one code point) lowercase mapping, for the
// Lowercase normalizer.
std::string unicode_lowercase(std::string_view text);
// Rust's char::is_whitespace / regex \s: the Unicode White_Space property.
bool is_unicode_whitespace(char32_t cp);
// Rust regex \w: letters, marks, decimal and letter numbers, connector punctuation.
bool is_word_char(char32_t cp);

// GPT-2's bytes_to_unicode() table (openai/gpt-2 encoder.py; HF
// pre_tokenizers/byte_level.rs): every byte gets a printable character, the
// printable ASCII and Latin-1 bytes themselves, the rest U+0100 and up.
class ByteLevelMap {
 public:
  ByteLevelMap();
  // The UTF-8 of the character standing for byte b.
  const std::string& encode(uint8_t b) const { return to_chars_[b]; }
  // The byte a character stands for, or -1 if it is not in the table.
  int decode(char32_t cp) const { return cp < to_byte_.size() ? to_byte_[cp] : -1; }

 private:
  std::array<std::string, 256> to_chars_;
  std::array<int16_t, 324> to_byte_;
};

// ---------------------------------------------------------------- regex (tokenizer_regex.cpp)

// A pattern from tokenizer.json, written for Oniguruma (what HF uses), run by
// PCRE2 with UTF + UCP and JIT when available. Immutable; find_all may run
// concurrently because each call owns its match data.
class Regex {
 public:
  // Throws strata::Error naming `file` when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& file);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All leftmost non-overlapping matches in valid UTF-8 text, as byte ranges.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
  std::string file_;
};

// The regex HF's ByteLevel pre-tokenizer uses when use_regex is true
// (pre_tokenizers/byte_level.rs); tokenizer.json does not spell it out.
inline constexpr const char* kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// ---------------------------------------------------------------- normalizers (tokenizer_text.cpp)

struct NormalizerStep {
  enum class Kind { Unicode, Prepend, Replace, Lowercase, Strip };
  Kind kind = Kind::Unicode;
  UnicodeForm form = UnicodeForm::NFC;  // Unicode
  std::string text;                     // Prepend: the prefix; Replace: the literal pattern
  std::string content;                  // Replace: the replacement
  std::shared_ptr<const Regex> regex;   // Replace with a Regex pattern
  bool strip_left = false, strip_right = false;  // Strip
};

std::string run_normalizers(const std::vector<NormalizerStep>& steps, std::string text);

// ---------------------------------------------------------------- pre-tokenizers (tokenizer_text.cpp)

// HF SplitDelimiterBehavior (tokenizer/normalizer.rs).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
// HF Metaspace PrependScheme (pre_tokenizers/metaspace.rs).
enum class PrependScheme { Always, First, Never };

struct PreTokenizerStep {
  enum class Kind { Split, ByteLevel, Metaspace, Digits };
  Kind kind = Kind::Split;
  // Split: a regex, or a literal string when regex is null.
  std::shared_ptr<const Regex> regex;
  std::string literal;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  // ByteLevel (regex holds the GPT-2 pattern when use_regex is true).
  bool add_prefix_space = false;
  // Metaspace.
  std::string replacement = "\xE2\x96\x81";  // U+2581 "▁"
  PrependScheme prepend_scheme = PrependScheme::Always;
  bool split = true;
  // Digits.
  bool individual_digits = false;
};

// One pre-tokenized piece. at_start marks the piece that begins the whole
// input, which Metaspace's prepend_scheme "first" needs (HF checks
// offsets_original().0 == 0).
struct Piece {
  std::string text;
  bool at_start = false;
};

std::vector<Piece> run_pre_tokenizers(const std::vector<PreTokenizerStep>& steps,
                                      const ByteLevelMap& bytes, Piece input);

// ---------------------------------------------------------------- BPE model (tokenizer_bpe.cpp)

// Hash that lets unordered_map<std::string, …> be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeModel {
  StringIdMap vocab;
  // (left id, right id) packed in 64 bits → (rank, merged id).
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;
  std::optional<int32_t> unk_id;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  // <0xNN> ids for byte fallback, -1 where the vocab lacks one.
  std::array<int32_t, 256> byte_ids{};

  static uint64_t pair_key(int32_t a, int32_t b) {
    return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  }
  // Tokenizes one pre-tokenized word and appends its ids to out.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
};

// ---------------------------------------------------------------- added tokens (tokenizer_added.cpp)

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = true;
};

// A stretch of text, or one added token (id >= 0).
struct Segment {
  size_t begin = 0, end = 0;
  int32_t id = -1;
};

// Finds added tokens in text the way HF's AddedVocabulary::find_matches does:
// leftmost-longest matches (an Aho-Corasick automaton there, a first-byte
// index here since there are few added tokens), then single_word, lstrip and
// rstrip applied to each match.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // patterns[i] is what to look for (the token content, normalized for the
  // normalized set); tokens[i] says how.
  AddedTokenMatcher(std::vector<std::string> patterns, std::vector<AddedToken> tokens);
  bool empty() const { return patterns_.empty(); }
  // Segments covering all of text, in order.
  std::vector<Segment> split(std::string_view text) const;

 private:
  std::vector<std::string> patterns_;
  std::vector<AddedToken> tokens_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // longest first
};

// ---------------------------------------------------------------- decoders (tokenizer_decode.cpp)

struct DecoderStep {
  enum class Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace };
  Kind kind = Kind::ByteLevel;
  std::string pattern, content;  // Replace: literal pattern (or regex) → content
  std::shared_ptr<const Regex> regex;
  std::string strip_char;        // Strip: one UTF-8 character
  size_t start = 0, stop = 0;    // Strip
  std::string replacement;       // Metaspace
  bool strip_first = true;       // Metaspace: prepend_scheme != never
};

// Runs HF's decode_chain for each step, then joins the pieces.
std::string run_decoders(const std::vector<DecoderStep>& steps, const ByteLevelMap& bytes,
                         std::vector<std::string> tokens);

}  // namespace strata::tokenizer_detail

namespace strata {

struct Tokenizer::Impl {
  std::string file;  // tokenizer.json, for error messages

  tokenizer_detail::BpeModel model;
  std::vector<tokenizer_detail::AddedToken> added;
  tokenizer_detail::AddedTokenMatcher raw_matcher;         // normalized == false
  tokenizer_detail::AddedTokenMatcher normalized_matcher;  // normalized == true
  std::vector<tokenizer_detail::NormalizerStep> normalizers;
  std::vector<tokenizer_detail::PreTokenizerStep> pre_tokenizers;
  std::vector<tokenizer_detail::DecoderStep> decoders;
  bool has_decoder = false;  // without one HF joins tokens with spaces
  tokenizer_detail::ByteLevelMap byte_map;

  // id → token string (added tokens override the model vocab), and which ids
  // are special added tokens. Ids with no token have an empty string.
  std::vector<std::string> id_to_token;
  std::vector<uint8_t> has_token;
  std::vector<uint8_t> special;
  tokenizer_detail::StringIdMap added_ids;

  // What add_special puts around the ids.
  std::vector<int32_t> prefix_ids, suffix_ids;
  std::optional<int32_t> bos, eos;

  std::vector<int32_t> encode(std::string_view text, bool add_special) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special) const;
  std::optional<int32_t> lookup(std::string_view token) const;
  // Whether the decoded text may be cut just before this id: decoding the ids
  // from here on gives the same text as the tail of decoding everything. False
  // for byte-fallback tokens and byte-level tokens that start inside a UTF-8
  // character, whose text depends on the ids before them, and for tokens
  // that may decode to nothing (special ones).
  bool clean_cut_before(int32_t id) const;
  // Where the trailing run of ids whose text may still change starts: with a
  // ByteFallback decoder, a run of <0xNN> tokens decodes as a whole (all of it
  // becomes U+FFFDs if it is not valid UTF-8), so a valid "<0x41>" may turn
  // into U+FFFD when an invalid byte follows. ids that decode to nothing
  // (skipped special tokens, unknown ids) do not end a run. Returns
  // ids.size() when there is no such run.
  size_t unstable_tail(std::span<const int32_t> ids, bool skip_special) const;
};

// Reads tokenizer.json (+ tokenizer_config.json from `config`, if given).
std::unique_ptr<Tokenizer::Impl> load_tokenizer(const std::filesystem::path& tokenizer_json,
                                                const std::filesystem::path& config);

}  // namespace strata
