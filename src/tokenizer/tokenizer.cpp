// strata::Tokenizer: the encode/decode pipeline over the stages that
// tokenizer_load.cpp reads from tokenizer.json. See tokenizer_internal.h for
// the stage types and the HF tokenizers sources each one follows.
#include "strata/tokenizer.h"

#include <algorithm>

#include "tokenizer/tokenizer_internal.h"
#include "strata/error.h"

namespace strata {

using namespace tokenizer_detail;

// ---------------------------------------------------------------- Impl

std::optional<int32_t> Tokenizer::Impl::lookup(std::string_view token) const {
  if (auto it = added_ids.find(token); it != added_ids.end()) return it->second;
  if (auto it = model.vocab.find(token); it != model.vocab.end()) return it->second;
  return std::nullopt;
}

std::vector<int32_t> Tokenizer::Impl::encode(std::string_view text, bool add_special) const {
  // Rust strings, and hence HF, only ever see valid UTF-8; bytes that are not
  // become U+FFFD here rather than failing the whole prompt.
  std::string owned;
  if (!is_valid_utf8(text)) {
    owned = to_valid_utf8(text);
    text = owned;
  }

  std::vector<int32_t> ids;
  if (add_special) ids = prefix_ids;
  // TokenizerImpl::encode_single_sequence: added tokens come out of the raw
  // text first; each stretch between them is normalized on its own, searched
  // again for normalized added tokens, pre-tokenized and run through BPE.
  for (const Segment& raw : raw_matcher.split(text)) {
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    const std::string normalized =
        run_normalizers(normalizers, std::string(text.substr(raw.begin, raw.end - raw.begin)));
    for (const Segment& seg : normalized_matcher.split(normalized)) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      Piece piece{normalized.substr(seg.begin, seg.end - seg.begin), raw.begin == 0 && seg.begin == 0};
      for (const Piece& word : run_pre_tokenizers(pre_tokenizers, byte_map, std::move(piece)))
        model.encode_word(word.text, ids);
    }
  }
  if (add_special) ids.insert(ids.end(), suffix_ids.begin(), suffix_ids.end());
  return ids;
}

std::string Tokenizer::Impl::decode(std::span<const int32_t> ids, bool skip_special) const {
  // tokenizer/mod.rs decode: ids without a token are skipped (a model may
  // have more embedding rows than the tokenizer has tokens), and so are
  // special tokens when asked.
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= id_to_token.size() || !has_token[id]) continue;
    if (skip_special && special[id]) continue;
    tokens.push_back(id_to_token[id]);
  }
  if (!has_decoder) {
    std::string text;
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
    return text;
  }
  return run_decoders(decoders, byte_map, std::move(tokens));
}

bool Tokenizer::Impl::clean_cut_before(int32_t id) const {
  // The window must start with a token that decodes to some text: were its
  // text empty (a skipped special token), a leading-space strip would reach
  // into the text of the tokens after it.
  if (id < 0 || static_cast<size_t>(id) >= id_to_token.size() || !has_token[id]) return false;
  const std::string& token = id_to_token[id];
  if (special[id] || token.empty()) return false;
  for (const DecoderStep& step : decoders) {
    if (step.kind == DecoderStep::Kind::ByteFallback && token.size() == 6 &&
        token.compare(0, 3, "<0x") == 0)
      return false;
    if (step.kind == DecoderStep::Kind::ByteLevel && !token.empty()) {
      const size_t len = utf8_sequence_length(token, 0);
      if (len == 0) return false;
      const int byte = byte_map.decode(utf8_decode(token, 0, len));
      if (byte >= 0x80 && byte < 0xC0) return false;  // a UTF-8 continuation byte
    }
    // Strip with stop > 0 can change the end of the text later.
    if (step.kind == DecoderStep::Kind::Strip && step.stop > 0) return false;
  }
  return true;
}

size_t Tokenizer::Impl::unstable_tail(std::span<const int32_t> ids, bool skip_special) const {
  bool byte_fallback = false;
  for (const DecoderStep& step : decoders) byte_fallback = byte_fallback || step.kind == DecoderStep::Kind::ByteFallback;
  if (!byte_fallback) return ids.size();
  size_t start = ids.size();
  bool any_byte = false;
  while (start > 0) {
    const int32_t id = ids[start - 1];
    const bool known = id >= 0 && static_cast<size_t>(id) < id_to_token.size() && has_token[id];
    const bool invisible = !known || (skip_special && special[id]);
    const bool byte = known && !invisible && id_to_token[id].size() == 6 && id_to_token[id].compare(0, 3, "<0x") == 0;
    if (!invisible && !byte) break;
    any_byte = any_byte || byte;
    --start;
  }
  return any_byte ? start : ids.size();
}

// ---------------------------------------------------------------- Tokenizer
//
// Threads: a loaded Tokenizer is immutable, so its const methods may run
// concurrently; a StreamDecoder belongs to one stream and one thread.

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::filesystem::path& tokenizer_json) {
  return Tokenizer(load_tokenizer(tokenizer_json, tokenizer_json.parent_path() / "tokenizer_config.json"));
}

Tokenizer Tokenizer::from_dir(const std::filesystem::path& dir) {
  return from_file(dir / "tokenizer.json");
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  return impl_->encode(text, add_special);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  return impl_->decode(ids, skip_special);
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_to_token.size()); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  return impl_->lookup(token);
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special.size() && impl_->special[id];
}

// ---------------------------------------------------------------- StreamDecoder
//
// Each push decodes the ids held so far and returns what is new since the
// last output, minus a tail that may still change: trailing U+FFFD, which an
// incomplete UTF-8 sequence decodes to until its last byte arrives, and the
// text of a trailing run of byte-fallback tokens (see unstable_tail).
// Decoding a prefix of the ids gives a prefix of the full text otherwise (the
// decoders only touch the start of the text, or each token alone), so the
// outputs concatenate to decode(all ids).
//
// To keep each push O(window) rather than O(all ids), the window drops its
// front once everything is out and it has grown: it restarts at a token whose
// text does not depend on the ones before it (see clean_cut_before), and
// emitted_bytes_ becomes the length of that restarted window's own decode,
// which, as in HF's DecodeStream, already accounts for any leading-space strip.

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
constexpr size_t kWindowTrim = 64;  // ids held before the window is trimmed
}  // namespace

Tokenizer::StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

std::string Tokenizer::StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  const std::string text = tokenizer_->decode(ids_, skip_special_);
  size_t safe = text.size();
  while (safe >= emitted_bytes_ + kReplacement.size() &&
         std::string_view(text).substr(safe - kReplacement.size(), kReplacement.size()) == kReplacement)
    safe -= kReplacement.size();
  const Impl& impl = *tokenizer_->impl_;
  if (const size_t tail = impl.unstable_tail(ids_, skip_special_); tail < ids_.size()) {
    const std::span<const int32_t> stable(ids_.data(), tail);
    safe = std::min(safe, tokenizer_->decode(stable, skip_special_).size());
  }
  if (safe <= emitted_bytes_) return {};
  std::string out = text.substr(emitted_bytes_, safe - emitted_bytes_);
  emitted_bytes_ = safe;

  if (safe == text.size() && ids_.size() > kWindowTrim) {
    // Restart the window at the latest clean cut.
    for (size_t cut = ids_.size() - 1; cut >= 1; --cut) {
      if (!impl.clean_cut_before(ids_[cut])) continue;
      ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(cut));
      emitted_bytes_ = tokenizer_->decode(ids_, skip_special_).size();
      break;
    }
  }
  return out;
}

std::string Tokenizer::StreamDecoder::flush() {
  const std::string text = tokenizer_->decode(ids_, skip_special_);
  std::string out = emitted_bytes_ < text.size() ? text.substr(emitted_bytes_) : std::string();
  emitted_bytes_ = text.size();
  return out;
}

}  // namespace strata
