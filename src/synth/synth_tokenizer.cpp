#include "synth/synth_tokenizer.h"

#include <array>
#include <climits>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "strata/error.h"

namespace strata {
namespace {

using ordered_json = nlohmann::ordered_json;

constexpr const char* kSpecialTokens[] = {"<unk>", "<s>", "</s>"};

// GPT-2's bytes_to_unicode() (openai/gpt-2 encoder.py): printable ASCII and
// Latin-1 bytes stand for themselves, the other 68 bytes for U+0100 onwards
// in byte order. The result is the UTF-8 of each byte's character.
std::array<std::string, 256> byte_level_chars() {
  std::array<std::string, 256> out;
  int next_extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const int cp = printable ? b : 256 + next_extra++;
    std::string& s = out[static_cast<size_t>(b)];
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return out;
}

// A small deterministic generator (splitmix64); the tokenizer must not depend
// on the platform's std:: distributions.
class SplitMix {
 public:
  explicit SplitMix(uint64_t state) : state_(state) {}
  // Uniform in [0, 1).
  double unit() { return unit_interval(splitmix64(state_)); }
  // An index in [0, n) skewed towards 0, so early (short, common) tokens are
  // combined far more often than late ones, roughly as in a real vocabulary.
  size_t skewed(size_t n) {
    const double u = unit();
    const size_t i = static_cast<size_t>(static_cast<double>(n) * u * u);
    return i < n ? i : n - 1;
  }

 private:
  uint64_t state_;
};

bool is_vowel(char c) {
  switch (c) {
    case 'a': case 'e': case 'i': case 'o': case 'u': case 'y':
    case 'A': case 'E': case 'I': case 'O': case 'U': case 'Y':
      return true;
    default:
      return false;
  }
}
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Lowercase letters only (a piece that may continue a word), or a space then
// letters, the first maybe a capital (a word start).
bool is_lower_piece(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < 'a' || c > 'z') return false;
  return true;
}
bool is_start(std::string_view s) {
  return s.size() >= 2 && s[0] == ' ' && is_letter(s[1]) && (s.size() == 2 || is_lower_piece(s.substr(2)));
}

// Whether a + b reads like a syllable sequence at the join: no more than two
// consonants or two vowels in a row across it.
bool pronounceable_join(std::string_view a, std::string_view b) {
  const auto run = [](std::string_view s, bool from_end, bool vowel) {
    size_t n = 0;
    for (size_t k = 0; k < s.size(); ++k) {
      const char c = from_end ? s[s.size() - 1 - k] : s[k];
      if (!is_letter(c) || is_vowel(c) != vowel) break;
      ++n;
    }
    return n;
  };
  return run(a, true, false) + run(b, false, false) <= 2 && run(a, true, true) + run(b, false, true) <= 2;
}

// The vocabulary under construction: raw byte strings by id and their merges.
// Every merged token is made reachable: BPE run on its own text (with the
// merges so far, by rank) ends in exactly that token, as in a trained
// vocabulary, so encoding text uses the whole vocabulary.
class VocabBuilder {
 public:
  explicit VocabBuilder(size_t target) : target_(target) {
    tokens_.reserve(target);
    for (const char* special : kSpecialTokens) add(special);
    for (int b = 0; b < 256; ++b) add(std::string(1, static_cast<char>(b)));
  }

  bool full() const { return tokens_.size() >= target_; }
  const std::vector<std::string>& tokens() const { return tokens_; }
  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }

  // BPE with the merges so far: start from byte tokens, apply the lowest-rank
  // merge everywhere it occurs (left to right), repeat (HF models/bpe/word.rs).
  std::vector<int32_t> encode(std::string_view text) const {
    std::vector<int32_t> ids;
    ids.reserve(text.size());
    for (unsigned char c : text) ids.push_back(static_cast<int32_t>(std::size(kSpecialTokens)) + c);
    for (;;) {
      int32_t best_rank = INT32_MAX, best_id = -1;
      uint64_t best_pair = 0;
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        const auto it = merge_ranks_.find(pair_key(ids[i], ids[i + 1]));
        if (it != merge_ranks_.end() && it->second.first < best_rank) {
          best_rank = it->second.first;
          best_id = it->second.second;
          best_pair = it->first;
        }
      }
      if (best_id < 0) return ids;
      size_t out = 0;
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i + 1 < ids.size() && pair_key(ids[i], ids[i + 1]) == best_pair) {
          ids[out++] = best_id;
          ++i;
        } else {
          ids[out++] = ids[i];
        }
      }
      ids.resize(out);
    }
  }

  // Adds a + b as a merged token when BPE on a + b gives exactly [a, b] now
  // (so the new merge completes it); false when it would be unreachable,
  // exists already, or the vocabulary is full.
  bool merge_if_reachable(int32_t a, int32_t b) {
    if (full()) return false;
    std::string joined = tokens_[static_cast<size_t>(a)] + tokens_[static_cast<size_t>(b)];
    if (ids_.count(joined)) return false;
    const std::vector<int32_t> now = encode(joined);
    if (now.size() != 2 || now[0] != a || now[1] != b) return false;
    merge_ranks_.emplace(pair_key(a, b), std::make_pair(static_cast<int32_t>(merges_.size()),
                                                        static_cast<int32_t>(tokens_.size())));
    merges_.emplace_back(a, b);
    add(std::move(joined));
    return true;
  }

  // Makes `word` a token by merging, left to right, the pieces BPE splits it
  // into now. Gives up (leaving a prefix) if that would repeat a token.
  void ensure(std::string_view word) {
    while (!full()) {
      const std::vector<int32_t> pieces = encode(word);
      if (pieces.size() < 2 || !merge_if_reachable(pieces[0], pieces[1])) return;
    }
  }

 private:
  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  void add(std::string token) {
    ids_.emplace(token, static_cast<int32_t>(tokens_.size()));
    tokens_.push_back(std::move(token));
  }

  size_t target_;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> ids_;
  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merge_ranks_;  // pair → (rank, merged id)
};

// Hand-picked first merges: word starts by letter frequency, the commonest
// English bigrams and words. They make small vocabularies look like text.
void add_common_tokens(VocabBuilder& vocab) {
  for (char c : std::string_view("etaoinshrdlcumwfgypbvkjxqz")) vocab.ensure(std::string(" ") + c);
  for (std::string_view bigram :
       {"th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of", "ed", "is",
        "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou", "io", "le", "ve", "co", "me", "de",
        "hi", "ri", "ro", "ic", "ne", "ea", "ra", "ce", "li", "ch", "ll", "be", "ma", "si", "om", "ur"})
    vocab.ensure(bigram);
  for (char c : std::string_view("TASHWIBCMPFDLRNEGOYUKJVQXZ")) vocab.ensure(std::string(" ") + c);
  for (std::string_view word :
       {"Hello", " world", " the", " of", " and", " to", " in", " is", " it", " that", " was", " for", " on", " with", " as",
        " he", " be", " at", " by", " this", " had", " not", " are", " but", " from", " or", " have", " an",
        " they", " which", " one", " you", " were", " her", " all", " she", " there", " would", " their",
        " we", " him", " been", " has", " when", " who", " will", " more", " no", " if", " out", " so",
        " said", " what", " up", " its", " about", " into", " than", " them", " can", " only", " other",
        " new", " some", " could", " time", " these", " two", " may", " then", " do", " first", " any",
        " my", " now", " such", " like", " our", " over", " man", " me", " even", " most", " made",
        " after", " also", " did", " many", " before", " must", " through", " back", " years", " where",
        " much", " your", " way", " well", " down", " should", " because", " each", " just", " those",
        " people", " how", " too", " little", " good", " very", " make", " world", " still", " own", " see",
        " work", " long", " get", " here", " between", " both", " life", " being", " under", " never",
        " day", " same", " another", " know", " while", " last", " great", " old", " year", " come",
        " once", " upon", " story", " hello", " Hello", " The", " It", " In", " He", " She", " They",
        " Once", " World", "ing", "ed", "ly", "tion", "ment", "ness", "er", "est", "The", "...",
        "\n\n", "  ", "    "})
    vocab.ensure(word);
}

// Fills the rest with random pronounceable combinations of existing pieces,
// relaxing the rules if they ever run dry (a vocabulary of millions).
void add_random_tokens(VocabBuilder& vocab) {
  // Ids with their letter counts side by side, so the common rejection (too
  // long) touches no strings: most draws are rejected once V is large.
  struct Entry {
    int32_t id;
    uint32_t letters;
  };
  std::vector<Entry> pieces, starts;
  for (size_t id = std::size(kSpecialTokens); id < vocab.tokens().size(); ++id) {
    const std::string& t = vocab.tokens()[id];
    if (is_lower_piece(t)) pieces.push_back({static_cast<int32_t>(id), static_cast<uint32_t>(t.size())});
    if (is_start(t)) starts.push_back({static_cast<int32_t>(id), static_cast<uint32_t>(t.size() - 1)});
  }
  SplitMix rng(0x5EED70C3A11ull);
  uint32_t max_letters = 10;
  bool strict = true;
  size_t misses = 0;
  while (!vocab.full()) {
    const bool make_start = !starts.empty() && rng.unit() < 0.6;
    const Entry a = make_start ? starts[rng.skewed(starts.size())] : pieces[rng.skewed(pieces.size())];
    const Entry b = pieces[rng.skewed(pieces.size())];
    const uint32_t letters = a.letters + b.letters;
    if (letters <= max_letters &&
        (!strict || pronounceable_join(vocab.tokens()[static_cast<size_t>(a.id)],
                                       vocab.tokens()[static_cast<size_t>(b.id)])) &&
        vocab.merge_if_reachable(a.id, b.id)) {
      (make_start ? starts : pieces).push_back({static_cast<int32_t>(vocab.tokens().size() - 1), letters});
      misses = 0;
    } else if (++misses > 100000) {
      // Saturated under the current rules: allow longer, freer tokens.
      strict = false;
      max_letters += 4;
      misses = 0;
      // Never reached for vocabularies up to kSynthMaxVocab; stops a bug from looping forever.
      if (max_letters > 64) throw Error("synthetic tokenizer generation ran dry", "", "", "bug in strata synth");
    }
  }
}

ordered_json added_token_json(int32_t id) {
  return {{"id", id},          {"content", kSpecialTokens[id]}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},   {"normalized", false},           {"special", true}};
}

std::string tokenizer_json(const VocabBuilder& vocab) {
  const std::array<std::string, 256> chars = byte_level_chars();
  const auto byte_level = [&](const std::string& raw) {
    std::string out;
    for (unsigned char c : raw) out += chars[c];
    return out;
  };
  const auto& tokens = vocab.tokens();
  const size_t n_special = std::size(kSpecialTokens);

  ordered_json added = ordered_json::array();
  for (size_t id = 0; id < n_special; ++id) added.push_back(added_token_json(static_cast<int32_t>(id)));

  // ordered_json's map searches linearly on insert; the tokens are unique by
  // construction, so append to its underlying vector instead (O(V), not O(V²)).
  ordered_json::object_t vocab_entries;
  auto& vocab_list = static_cast<std::vector<std::pair<const std::string, ordered_json>>&>(vocab_entries);
  vocab_list.reserve(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id)
    vocab_list.emplace_back(id < n_special ? tokens[id] : byte_level(tokens[id]), id);
  ordered_json vocab_json(std::move(vocab_entries));
  ordered_json merges = ordered_json::array();
  for (const auto& [a, b] : vocab.merges())
    merges.push_back(byte_level(tokens[static_cast<size_t>(a)]) + " " + byte_level(tokens[static_cast<size_t>(b)]));

  // BOS comes from the post-processor, as in Llama-3's tokenizer.json, so HF
  // PreTrainedTokenizerFast adds it too; tokenizer_config.json says the same
  // with add_bos_token for loaders that read that instead.
  const ordered_json byte_level_step = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  const auto bos_special = [](int type_id) -> ordered_json {
    return {{"SpecialToken", {{"id", "<s>"}, {"type_id", type_id}}}};
  };
  const auto sequence = [](const char* id, int type_id) -> ordered_json {
    return {{"Sequence", {{"id", id}, {"type_id", type_id}}}};
  };
  ordered_json post_processor = {
      {"type", "TemplateProcessing"},
      {"single", {bos_special(0), sequence("A", 0)}},
      {"pair", {bos_special(0), sequence("A", 0), bos_special(1), sequence("B", 1)}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};

  ordered_json doc = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level_step},
      {"post_processor", post_processor},
      {"decoder", byte_level_step},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", std::move(vocab_json)},
        {"merges", std::move(merges)}}}};
  return doc.dump(1) + "\n";
}

std::string tokenizer_config_json() {
  ordered_json decoder = ordered_json::object();
  for (size_t id = 0; id < std::size(kSpecialTokens); ++id) {
    ordered_json entry = added_token_json(static_cast<int32_t>(id));
    entry.erase("id");
    decoder[std::to_string(id)] = entry;
  }
  const ordered_json doc = {{"add_bos_token", true},
                            {"add_eos_token", false},
                            {"added_tokens_decoder", decoder},
                            {"bos_token", "<s>"},
                            {"eos_token", "</s>"},
                            {"unk_token", "<unk>"},
                            {"clean_up_tokenization_spaces", false},
                            {"tokenizer_class", "PreTrainedTokenizerFast"}};
  return doc.dump(2) + "\n";
}

}  // namespace

SynthTokenizerFiles make_synthetic_tokenizer(int64_t vocab_size) {
  if (vocab_size < kSynthMinVocab || vocab_size > kSynthMaxVocab)
    throw Error("vocab size " + std::to_string(vocab_size) + " is outside what the synthetic tokenizer covers", "",
                "", "use a vocab of at least " + std::to_string(kSynthMinVocab) +
                        " (3 special + 256 byte tokens) and at most " + std::to_string(kSynthMaxVocab));
  VocabBuilder vocab(static_cast<size_t>(vocab_size));
  add_common_tokens(vocab);
  add_random_tokens(vocab);
  return {tokenizer_json(vocab), tokenizer_config_json()};
}

}  // namespace strata
