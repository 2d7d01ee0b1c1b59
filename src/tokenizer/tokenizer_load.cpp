// Reading tokenizer.json (and tokenizer_config.json) into Tokenizer::Impl.
//
// The schema is HF tokenizers' serialization (tokenizer/serialization.rs and
// the serde derives of each component). Nothing in the file is trusted: every
// field is type-checked, every id range-checked, and any problem becomes a
// strata::Error naming the file and the JSON path.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/files.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/tokenizer_json.h"
#include "strata/error.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace tokenizer_detail;

std::string read_text_file(const fs::path& path, const char* what) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw Error(std::string(what) + " not found", path.string(), {},
                "is this a Hugging Face model folder with a tokenizer.json?");
  return read_file(path, what, "permission denied?");
}

json parse_json(const std::string& text, const std::string& file) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(std::string("malformed JSON: ") + e.what(), file, {}, "truncated download?");
  }
}

// Field access with errors that say where in the file the problem is.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& message, const std::string& hint = {}) const {
    throw Error(message, file_, {}, hint);
  }
  const std::string& file() const { return file_; }

  const json& need(const json& obj, const char* key, const std::string& where) const {
    if (!obj.is_object()) fail(where + " is not a JSON object");
    auto it = obj.find(key);
    if (it == obj.end()) fail(where + " has no \"" + key + "\"");
    return *it;
  }
  std::string string(const json& value, const std::string& where) const {
    if (!value.is_string()) fail(where + " is not a string");
    return value.get<std::string>();
  }
  std::string string_field(const json& obj, const char* key, const std::string& where) const {
    return string(need(obj, key, where), where + "." + key);
  }
  // A bool field that may be absent or null, which means `fallback`.
  bool flag(const json& obj, const char* key, bool fallback, const std::string& where) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) fail(where + "." + key + " is not true/false");
    return it->get<bool>();
  }
  size_t count(const json& obj, const char* key, size_t fallback, const std::string& where) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_number_unsigned()) fail(where + "." + key + " is not a non-negative integer");
    return it->get<size_t>();
  }
  int32_t id(const json& value, const std::string& where) const {
    if (!value.is_number_integer()) fail(where + " is not an integer token id");
    const int64_t v = value.get<int64_t>();
    if (v < 0 || v >= (int64_t(1) << 30)) fail(where + " = " + std::to_string(v) + " is out of range");
    return static_cast<int32_t>(v);
  }
  // {"String": "…"} or {"Regex": "…"}: a literal, or a compiled regex.
  std::pair<std::string, std::shared_ptr<const Regex>> pattern(const json& obj,
                                                                const std::string& where) const {
    const json& p = need(obj, "pattern", where);
    if (p.is_object() && p.contains("String")) return {string(p["String"], where + ".pattern.String"), nullptr};
    if (p.is_object() && p.contains("Regex"))
      return {{}, std::make_shared<const Regex>(string(p["Regex"], where + ".pattern.Regex"), file_)};
    fail(where + ".pattern is neither {\"String\": …} nor {\"Regex\": …}");
  }
  std::string type(const json& obj, const std::string& where) const {
    return string_field(obj, "type", where);
  }

 private:
  std::string file_;
};

// Exactly one UTF-8 character, as the serde `char` fields require.
std::string one_char(const Reader& r, const json& value, const std::string& where) {
  std::string s = r.string(value, where);
  if (s.empty() || !is_valid_utf8(s) || utf8_sequence_length(s, 0) != s.size())
    r.fail(where + " must be a single character");
  return s;
}

// ---------------------------------------------------------------- model

void read_model(const Reader& r, TokenizerJson& parsed, BpeModel& model) {
  const json& m = r.need(parsed.rest, "model", "tokenizer.json");
  if (!m.is_object()) r.fail("\"model\" is not a JSON object");
  // Files written before the "type" tag existed are BPE when they have merges
  // (HF ModelWrapper's untagged deserialization tries BPE first).
  std::string type = m.contains("type") ? r.string(m["type"], "model.type") : "";
  if (type.empty() && (parsed.merges || m.contains("merges"))) type = "BPE";
  if (type != "BPE")
    r.fail("unsupported tokenizer model type '" + type + "'",
           "strata reads BPE tokenizers (GPT-2, Llama, Mistral, Qwen); WordPiece, Unigram and "
           "WordLevel are not supported");

  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = m.find(key);
    if (it != m.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
      r.fail(std::string("BPE with a ") + key + " is not supported");
  }
  // dropout only randomizes training-time encodings; inference ignores it.

  // The SAX parse took vocab (an object) and merges (an array) out of the
  // DOM; anything left under those names has the wrong type.
  if (!parsed.vocab) r.fail(m.contains("vocab") ? "model.vocab is not a JSON object" : "model has no \"vocab\"");
  if (!parsed.merges) r.fail(m.contains("merges") ? "model.merges is not an array" : "model has no \"merges\"");

  model.vocab.reserve(parsed.vocab->size());
  for (auto& [token, id] : *parsed.vocab) {
    if (id < 0 || id >= (int64_t(1) << 30))
      r.fail("model.vocab[\"" + token + "\"] = " + std::to_string(id) + " is out of range");
    model.vocab.emplace(std::move(token), static_cast<int32_t>(id));
  }

  // Two formats: "a b" (tokenizers < 0.20; a token never holds a space, as
  // byte-level and sentencepiece vocabs write spaces as Ġ/▁) and ["a", "b"];
  // tokenizer_json.cpp reads both into pairs.
  model.merges.reserve(parsed.merges->size());
  std::string joined;
  for (size_t rank = 0; rank < parsed.merges->size(); ++rank) {
    const auto& [a, b] = (*parsed.merges)[rank];
    joined.assign(a);
    joined.append(b);
    auto ia = model.vocab.find(a), ib = model.vocab.find(b), ij = model.vocab.find(joined);
    if (ia == model.vocab.end() || ib == model.vocab.end() || ij == model.vocab.end())
      r.fail("model.merges[" + std::to_string(rank) + "] (\"" + a + "\", \"" + b +
                 "\") uses a token that is not in the vocab",
             "vocab and merges from different tokenizers?");
    // A repeated pair keeps its first (lowest) rank.
    model.merges.emplace(BpeModel::pair_key(ia->second, ib->second),
                         std::make_pair(static_cast<int32_t>(rank), ij->second));
  }

  model.fuse_unk = r.flag(m, "fuse_unk", false, "model");
  model.byte_fallback = r.flag(m, "byte_fallback", false, "model");
  model.ignore_merges = r.flag(m, "ignore_merges", false, "model");
  if (auto it = m.find("unk_token"); it != m.end() && !it->is_null()) {
    // An unk_token missing from the vocab only fails in HF when it is needed;
    // here such characters are dropped instead.
    if (auto u = model.vocab.find(r.string(*it, "model.unk_token")); u != model.vocab.end())
      model.unk_id = u->second;
  }
  model.byte_ids.fill(-1);
  if (model.byte_fallback) {
    char name[8];
    for (int b = 0; b < 256; ++b) {
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      if (auto it = model.vocab.find(std::string_view(name)); it != model.vocab.end())
        model.byte_ids[b] = it->second;
    }
  }
}

// ---------------------------------------------------------------- added tokens

std::vector<AddedToken> read_added_tokens(const Reader& r, const json& root) {
  std::vector<AddedToken> added;
  auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return added;
  if (!it->is_array()) r.fail("added_tokens is not an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    AddedToken token;
    token.id = r.id(r.need(t, "id", where), where + ".id");
    token.content = r.string_field(t, "content", where);
    token.special = r.flag(t, "special", false, where);
    token.lstrip = r.flag(t, "lstrip", false, where);
    token.rstrip = r.flag(t, "rstrip", false, where);
    token.single_word = r.flag(t, "single_word", false, where);
    // AddedToken's default: special tokens are not normalized, others are.
    token.normalized = r.flag(t, "normalized", !token.special, where);
    added.push_back(std::move(token));
  }
  return added;
}

// ---------------------------------------------------------------- normalizer

void read_normalizer(const Reader& r, const json& n, const std::string& where,
                     std::vector<NormalizerStep>& steps) {
  if (n.is_null()) return;
  const std::string type = r.type(n, where);
  NormalizerStep step;
  if (type == "Sequence") {
    const json& list = r.need(n, "normalizers", where);
    if (!list.is_array()) r.fail(where + ".normalizers is not an array");
    for (size_t i = 0; i < list.size(); ++i)
      read_normalizer(r, list[i], where + ".normalizers[" + std::to_string(i) + "]", steps);
    return;
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    step.kind = NormalizerStep::Kind::Unicode;
    step.form = type == "NFC"    ? UnicodeForm::NFC
                : type == "NFD"  ? UnicodeForm::NFD
                : type == "NFKC" ? UnicodeForm::NFKC
                                 : UnicodeForm::NFKD;
  } else if (type == "Prepend") {
    step.kind = NormalizerStep::Kind::Prepend;
    step.text = r.string_field(n, "prepend", where);
  } else if (type == "Replace") {
    step.kind = NormalizerStep::Kind::Replace;
    std::tie(step.text, step.regex) = r.pattern(n, where);
    step.content = r.string_field(n, "content", where);
  } else if (type == "Lowercase") {
    step.kind = NormalizerStep::Kind::Lowercase;
  } else if (type == "Strip") {
    step.kind = NormalizerStep::Kind::Strip;
    step.strip_left = r.flag(n, "strip_left", true, where);
    step.strip_right = r.flag(n, "strip_right", true, where);
  } else {
    r.fail("unsupported normalizer type '" + type + "' at " + where,
           "supported: NFC, NFD, NFKC, NFKD, Prepend, Replace, Lowercase, Strip, Sequence");
  }
  steps.push_back(std::move(step));
}

// ---------------------------------------------------------------- pre-tokenizer

SplitBehavior read_behavior(const Reader& r, const json& obj, const std::string& where) {
  const std::string b = r.string_field(obj, "behavior", where);
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  r.fail(where + ".behavior '" + b + "' is not a split behavior");
}

// Metaspace's prepend_scheme, or the older add_prefix_space flag it replaced.
PrependScheme read_prepend_scheme(const Reader& r, const json& obj, const std::string& where) {
  if (auto it = obj.find("prepend_scheme"); it != obj.end() && !it->is_null()) {
    const std::string s = r.string(*it, where + ".prepend_scheme");
    if (s == "always") return PrependScheme::Always;
    if (s == "first") return PrependScheme::First;
    if (s == "never") return PrependScheme::Never;
    r.fail(where + ".prepend_scheme '" + s + "' is not always/first/never");
  }
  return r.flag(obj, "add_prefix_space", true, where) ? PrependScheme::Always : PrependScheme::Never;
}

void read_pre_tokenizer(const Reader& r, const json& p, const std::string& where,
                        std::vector<PreTokenizerStep>& steps) {
  if (p.is_null()) return;
  const std::string type = r.type(p, where);
  PreTokenizerStep step;
  if (type == "Sequence") {
    const json& list = r.need(p, "pretokenizers", where);
    if (!list.is_array()) r.fail(where + ".pretokenizers is not an array");
    for (size_t i = 0; i < list.size(); ++i)
      read_pre_tokenizer(r, list[i], where + ".pretokenizers[" + std::to_string(i) + "]", steps);
    return;
  } else if (type == "Split") {
    step.kind = PreTokenizerStep::Kind::Split;
    std::tie(step.literal, step.regex) = r.pattern(p, where);
    step.behavior = read_behavior(r, p, where);
    step.invert = r.flag(p, "invert", false, where);
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::ByteLevel;
    step.add_prefix_space = r.flag(p, "add_prefix_space", true, where);
    if (r.flag(p, "use_regex", true, where)) step.regex = std::make_shared<const Regex>(kGpt2SplitPattern, r.file());
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerStep::Kind::Metaspace;
    step.replacement = one_char(r, r.need(p, "replacement", where), where + ".replacement");
    step.prepend_scheme = read_prepend_scheme(r, p, where);
    step.split = r.flag(p, "split", true, where);
  } else if (type == "Digits") {
    step.kind = PreTokenizerStep::Kind::Digits;
    step.individual_digits = r.flag(p, "individual_digits", false, where);
  } else {
    r.fail("unsupported pre_tokenizer type '" + type + "' at " + where,
           "supported: ByteLevel, Split, Metaspace, Digits, Sequence");
  }
  steps.push_back(std::move(step));
}

// ---------------------------------------------------------------- decoder

void read_decoder(const Reader& r, const json& d, const std::string& where, std::vector<DecoderStep>& steps) {
  const std::string type = r.type(d, where);
  DecoderStep step;
  if (type == "Sequence") {
    const json& list = r.need(d, "decoders", where);
    if (!list.is_array()) r.fail(where + ".decoders is not an array");
    for (size_t i = 0; i < list.size(); ++i)
      read_decoder(r, list[i], where + ".decoders[" + std::to_string(i) + "]", steps);
    return;
  } else if (type == "ByteLevel") {
    step.kind = DecoderStep::Kind::ByteLevel;
  } else if (type == "Replace") {
    step.kind = DecoderStep::Kind::Replace;
    std::tie(step.pattern, step.regex) = r.pattern(d, where);
    step.content = r.string_field(d, "content", where);
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::Kind::ByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::Kind::Fuse;
  } else if (type == "Strip") {
    step.kind = DecoderStep::Kind::Strip;
    step.strip_char = one_char(r, r.need(d, "content", where), where + ".content");
    step.start = r.count(d, "start", 0, where);
    step.stop = r.count(d, "stop", 0, where);
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::Kind::Metaspace;
    step.replacement = one_char(r, r.need(d, "replacement", where), where + ".replacement");
    step.strip_first = read_prepend_scheme(r, d, where) != PrependScheme::Never;
  } else {
    r.fail("unsupported decoder type '" + type + "' at " + where,
           "supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence");
  }
  steps.push_back(std::move(step));
}

// ---------------------------------------------------------------- post-processor

// What the post-processor puts before and after a single sequence.
void read_post_processor(const Reader& r, const json& p, const std::string& where,
                         std::vector<int32_t>& prefix, std::vector<int32_t>& suffix) {
  if (p.is_null()) return;
  const std::string type = r.type(p, where);
  if (type == "Sequence") {
    const json& list = r.need(p, "processors", where);
    if (!list.is_array()) r.fail(where + ".processors is not an array");
    for (size_t i = 0; i < list.size(); ++i)
      read_post_processor(r, list[i], where + ".processors[" + std::to_string(i) + "]", prefix, suffix);
  } else if (type == "ByteLevel") {
    // Only trims offsets; adds no ids.
  } else if (type == "TemplateProcessing") {
    // processors/template.rs: "single" lists pieces; SpecialToken ids name an
    // entry of "special_tokens", which holds the ids to insert.
    const json& single = r.need(p, "single", where);
    if (!single.is_array()) r.fail(where + ".single is not an array");
    const json& specials = r.need(p, "special_tokens", where);
    bool seen_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const std::string at = where + ".single[" + std::to_string(i) + "]";
      const json& piece = single[i];
      if (piece.is_object() && piece.contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      if (!piece.is_object() || !piece.contains("SpecialToken"))
        r.fail(at + " is neither a Sequence nor a SpecialToken");
      const std::string name = r.string_field(piece["SpecialToken"], "id", at + ".SpecialToken");
      if (!specials.is_object() || !specials.contains(name))
        r.fail(at + " names special token '" + name + "', which special_tokens does not define");
      const json& ids = r.need(specials[name], "ids", where + ".special_tokens[\"" + name + "\"]");
      if (!ids.is_array()) r.fail(where + ".special_tokens[\"" + name + "\"].ids is not an array");
      for (const json& id : ids) (seen_sequence ? suffix : prefix).push_back(r.id(id, at));
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    // processors/roberta.rs, bert.rs: [cls] A [sep], each given as ["token", id].
    auto special = [&](const char* key) {
      const json& pair = r.need(p, key, where);
      if (!pair.is_array() || pair.size() != 2) r.fail(where + "." + key + " is not [\"token\", id]");
      return r.id(pair[1], where + "." + key);
    };
    prefix.push_back(special("cls"));
    suffix.push_back(special("sep"));
  } else {
    r.fail("unsupported post_processor type '" + type + "' at " + where,
           "supported: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence");
  }
}

// ---------------------------------------------------------------- tokenizer_config.json

struct Config {
  std::optional<bool> add_bos, add_eos;
  // Set when the key exists; an empty optional inside means null.
  std::optional<std::optional<std::string>> bos_token, eos_token;
};

Config read_config(const fs::path& path) {
  Config config;
  std::error_code ec;
  if (path.empty() || !fs::exists(path, ec)) return config;
  const Reader r(path.string());
  const json root = parse_json(read_text_file(path, "tokenizer_config.json"), r.file());
  if (!root.is_object()) r.fail("tokenizer_config.json is not a JSON object");
  auto flag = [&](const char* key) -> std::optional<bool> {
    auto it = root.find(key);
    if (it == root.end() || it->is_null()) return std::nullopt;
    if (!it->is_boolean()) r.fail(std::string(key) + " is not true/false");
    return it->get<bool>();
  };
  // A token is "…" or an AddedToken object {"content": "…", …}.
  auto token = [&](const char* key) -> std::optional<std::optional<std::string>> {
    auto it = root.find(key);
    if (it == root.end()) return std::nullopt;
    if (it->is_null()) return std::optional<std::string>();
    if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
    if (it->is_object()) return std::optional<std::string>(r.string_field(*it, "content", key));
    r.fail(std::string(key) + " is neither a string nor {\"content\": …}");
  };
  config.add_bos = flag("add_bos_token");
  config.add_eos = flag("add_eos_token");
  config.bos_token = token("bos_token");
  config.eos_token = token("eos_token");
  return config;
}

// ---------------------------------------------------------------- assembly

void build_id_table(const Reader& r, Tokenizer::Impl& impl) {
  int64_t max_id = -1;
  for (const auto& [token, id] : impl.model.vocab) max_id = std::max<int64_t>(max_id, id);
  for (const AddedToken& t : impl.added) max_id = std::max<int64_t>(max_id, t.id);
  // Ids index a table; a stray huge id in a corrupt file must not allocate
  // gigabytes. Real vocabularies are dense (a few padding holes at most).
  const size_t entries = impl.model.vocab.size() + impl.added.size();
  if (max_id >= 0 && static_cast<size_t>(max_id) >= 2 * entries + 1024)
    r.fail("token id " + std::to_string(max_id) + " is far beyond the " + std::to_string(entries) +
               " tokens in the file",
           "corrupt tokenizer.json?");
  const size_t n = static_cast<size_t>(max_id + 1);
  impl.id_to_token.assign(n, {});
  impl.has_token.assign(n, 0);
  impl.special.assign(n, 0);
  for (const auto& [token, id] : impl.model.vocab) {
    impl.id_to_token[id] = token;
    impl.has_token[id] = 1;
  }
  for (const AddedToken& t : impl.added) {
    impl.id_to_token[t.id] = t.content;
    impl.has_token[t.id] = 1;
    impl.special[t.id] = t.special;
    impl.added_ids[t.content] = t.id;
  }
}

void build_matchers(Tokenizer::Impl& impl) {
  std::vector<std::string> raw_patterns, norm_patterns;
  std::vector<AddedToken> raw_tokens, norm_tokens;
  for (const AddedToken& t : impl.added) {
    if (t.normalized) {
      // HF matches normalized tokens by their normalized form
      // (AddedVocabulary::refresh_added_tokens).
      norm_patterns.push_back(run_normalizers(impl.normalizers, t.content));
      norm_tokens.push_back(t);
    } else {
      raw_patterns.push_back(t.content);
      raw_tokens.push_back(t);
    }
  }
  impl.raw_matcher = AddedTokenMatcher(std::move(raw_patterns), std::move(raw_tokens));
  impl.normalized_matcher = AddedTokenMatcher(std::move(norm_patterns), std::move(norm_tokens));
}

// BOS/EOS ids: tokenizer_config.json names them; without it, the first
// special token of the post-processor template, then well-known names.
void resolve_bos_eos(Tokenizer::Impl& impl, const Config& config) {
  auto first_known = [&](std::initializer_list<const char*> names) -> std::optional<int32_t> {
    for (const char* name : names)
      if (auto id = impl.lookup(name)) return id;
    return std::nullopt;
  };
  if (config.bos_token) {
    impl.bos = *config.bos_token ? impl.lookup(**config.bos_token) : std::nullopt;
  } else if (!impl.prefix_ids.empty()) {
    impl.bos = impl.prefix_ids.front();
  } else {
    impl.bos = first_known({"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "<BOS>"});
  }
  if (config.eos_token) {
    impl.eos = *config.eos_token ? impl.lookup(**config.eos_token) : std::nullopt;
  } else {
    impl.eos = first_known({"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>", "<EOS>"});
  }
}

// transformers' LlamaTokenizerFast.update_post_processor rebuilds the template
// from add_bos_token/add_eos_token; when the config sets them, they decide
// whether BOS leads and EOS ends an encoding with add_special.
void apply_config_flags(Tokenizer::Impl& impl, const Config& config) {
  if (config.add_bos) {
    auto& p = impl.prefix_ids;
    if (*config.add_bos && impl.bos && (p.empty() || p.front() != *impl.bos)) p.insert(p.begin(), *impl.bos);
    if (!*config.add_bos && impl.bos && !p.empty() && p.front() == *impl.bos) p.erase(p.begin());
  }
  if (config.add_eos) {
    auto& s = impl.suffix_ids;
    if (*config.add_eos && impl.eos && (s.empty() || s.back() != *impl.eos)) s.push_back(*impl.eos);
    if (!*config.add_eos && impl.eos && !s.empty() && s.back() == *impl.eos) s.pop_back();
  }
}

}  // namespace

std::unique_ptr<Tokenizer::Impl> load_tokenizer(const fs::path& tokenizer_json, const fs::path& config_path) {
  auto impl = std::make_unique<Tokenizer::Impl>();
  impl->file = tokenizer_json.string();
  const Reader r(impl->file);
  TokenizerJson parsed = parse_tokenizer_json(read_text_file(tokenizer_json, "tokenizer.json"), impl->file);
  const json& root = parsed.rest;
  if (!root.is_object()) r.fail("tokenizer.json is not a JSON object");

  try {
    read_model(r, parsed, impl->model);
    impl->added = read_added_tokens(r, root);
    if (auto it = root.find("normalizer"); it != root.end())
      read_normalizer(r, *it, "normalizer", impl->normalizers);
    if (auto it = root.find("pre_tokenizer"); it != root.end())
      read_pre_tokenizer(r, *it, "pre_tokenizer", impl->pre_tokenizers);
    if (auto it = root.find("decoder"); it != root.end() && !it->is_null()) {
      impl->has_decoder = true;
      read_decoder(r, *it, "decoder", impl->decoders);
    }
    build_id_table(r, *impl);
    build_matchers(*impl);
    if (auto it = root.find("post_processor"); it != root.end())
      read_post_processor(r, *it, "post_processor", impl->prefix_ids, impl->suffix_ids);
    for (int32_t id : impl->prefix_ids)
      if (static_cast<size_t>(id) >= impl->id_to_token.size())
        r.fail("post_processor adds token id " + std::to_string(id) + ", which is not in the vocab");
    for (int32_t id : impl->suffix_ids)
      if (static_cast<size_t>(id) >= impl->id_to_token.size())
        r.fail("post_processor adds token id " + std::to_string(id) + ", which is not in the vocab");
  } catch (const json::exception& e) {
    // Type errors that slipped past the explicit checks.
    throw Error(std::string("unexpected tokenizer.json content: ") + e.what(), impl->file);
  }

  const Config config = read_config(config_path);
  resolve_bos_eos(*impl, config);
  apply_config_flags(*impl, config);
  return impl;
}

}  // namespace strata
