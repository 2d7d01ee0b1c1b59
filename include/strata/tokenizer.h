// Tokenizers read from Hugging Face tokenizer.json files.
//
// Two model families are supported, the ones Llama-family checkpoints use:
//  * sentencepiece-style BPE (Llama-2, TinyLlama, Mistral): a normalizer that
//    prepends "▁" and replaces spaces with "▁", BPE merges by rank, byte
//    fallback tokens <0xNN> for anything outside the vocabulary;
//  * byte-level BPE (GPT-2, Llama-3, Qwen2): optional NFC normalizer, a regex
//    pre-tokenizer (PCRE2, Unicode classes), bytes mapped to printable
//    characters, BPE merges by rank.
// Added tokens (special or not) are matched in the raw text first and become
// one id each, as transformers does by default.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace strata {

class Tokenizer {
 public:
  // Reads tokenizer.json; tokenizer_config.json beside it (if present) gives
  // add_bos_token/add_eos_token and the BOS/EOS token strings.
  // Throws strata::Error for a missing, malformed or unsupported file.
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json);
  // Reads DIR/tokenizer.json (+ DIR/tokenizer_config.json).
  static Tokenizer from_dir(const std::filesystem::path& dir);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Encodes text. With add_special, BOS (and EOS) are added as
  // tokenizer_config.json / the post-processor says.
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const;

  // Decodes ids to UTF-8 text. Invalid UTF-8 from byte tokens becomes U+FFFD.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  int32_t vocab_size() const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  // The id of a token string (vocabulary or added token), if any.
  std::optional<int32_t> token_to_id(std::string_view token) const;
  bool is_special(int32_t id) const;

  // Streaming decoder: push ids one at a time and get the text that is now
  // final. Holds back incomplete UTF-8 sequences and text that the decoder
  // may still change (e.g. the leading-space strip), so concatenating all
  // outputs plus flush() equals decode(all ids).
  class StreamDecoder {
   public:
    explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = true);
    std::string push(int32_t id);
    std::string flush();

   private:
    const Tokenizer* tokenizer_;
    bool skip_special_;
    std::vector<int32_t> ids_;
    size_t emitted_bytes_ = 0;
  };

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
