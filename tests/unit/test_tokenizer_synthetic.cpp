// Tokenizer behaviours the golden cases do not reach, on tokenizer.json files
// written here: variants of the stories260k tokenizer (Metaspace
// pre-tokenizer, added-token flags, tokenizer_config.json flags) and broken
// files that must fail with a strata::Error naming the file.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "strata/error.h"
#include "strata/tokenizer.h"
#include "test_support.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json stories_json() {
  std::ifstream in(test::fixtures_dir() / "models" / "stories260k" / "tokenizer.json");
  return json::parse(in);
}

void write(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

// ---------------------------------------------------------------- Metaspace (newer Llama-2 files)

// The same vocab as stories260k, written the way tokenizers >= 0.19 converts
// Llama-2: no normalizer, a Metaspace pre-tokenizer with prepend_scheme
// "first", and a Metaspace decoder.
Tokenizer metaspace_variant(const test::TempDir& dir, bool split) {
  json j = stories_json();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"},
                        {"prepend_scheme", "first"}, {"split", split}};
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", json::array({{{"type", "ByteFallback"}},
                                            {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"},
                                             {"prepend_scheme", "first"}, {"split", split}},
                                            {{"type", "Fuse"}}})}};
  write(dir.path() / "tokenizer.json", j.dump());
  return Tokenizer::from_file(dir.path() / "tokenizer.json");
}

TEST(TokenizerMetaspace, MatchesLegacyNormalizerOnPlainText) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir dir;
  const Tokenizer legacy = Tokenizer::from_dir(test::fixtures_dir() / "models" / "stories260k");
  const Tokenizer meta = metaspace_variant(dir, /*split=*/false);
  EXPECT_EQ(meta.encode("Once upon a time", true), (std::vector<int32_t>{1, 403, 407, 261, 378}));
  for (const std::string text : {"Once upon a time", "two  spaces", "Lily's ball.\nThe end",
                                 "caf\xC3\xA9 \xF0\x9F\x98\x80"}) {
    const auto ids = meta.encode(text, true);
    EXPECT_EQ(ids, legacy.encode(text, true)) << text;
    EXPECT_EQ(meta.decode(ids, true), legacy.decode(ids, true)) << text;
    Tokenizer::StreamDecoder stream(meta);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    EXPECT_EQ(streamed + stream.flush(), meta.decode(ids, true)) << text;
  }
  // Metaspace adds no "▁" where the text already starts with one (a space);
  // the legacy Prepend normalizer always does.
  EXPECT_EQ(meta.encode(" Once", false), legacy.encode("Once", false));
  EXPECT_EQ(legacy.encode(" Once", false), concat({legacy.encode("", false), {*legacy.token_to_id("\xE2\x96\x81")},
                                                   legacy.encode("Once", false)}));
  // split=true cuts before each "▁"; no stories260k merge crosses one.
  const Tokenizer split = metaspace_variant(dir, /*split=*/true);
  EXPECT_EQ(split.encode("Once upon a time", true), (std::vector<int32_t>{1, 403, 407, 261, 378}));
}

TEST(TokenizerMetaspace, PrependsOnlyAtTheStartOfTheText) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir dir;
  const Tokenizer legacy = Tokenizer::from_dir(test::fixtures_dir() / "models" / "stories260k");
  const Tokenizer meta = metaspace_variant(dir, false);
  // prepend_scheme "first": the text after <s> gets no "▁"; the legacy
  // normalizer prepends one to every stretch between added tokens.
  EXPECT_EQ(meta.encode("time", false), std::vector<int32_t>{378});  // "▁time"
  const auto ids = meta.encode("time</s>time", false);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], 378);
  EXPECT_EQ(ids[1], 2);
  EXPECT_NE(ids[2], 378);
  EXPECT_EQ(meta.decode(ids, false), "time</s>time");
  EXPECT_EQ(legacy.encode("time</s>time", false), concat({{378}, {2}, {378}}));
  EXPECT_EQ(legacy.decode(legacy.encode("time</s>time", false), false), "time</s> time");
}

// ---------------------------------------------------------------- added-token flags

TEST(TokenizerAddedTokens, HonorsStripAndSingleWordFlags) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir dir;
  json j = stories_json();
  auto token = [](int id, const char* content, bool lstrip, bool rstrip, bool single_word, bool special) {
    return json{{"id", id},          {"content", content},   {"single_word", single_word}, {"lstrip", lstrip},
                {"rstrip", rstrip},  {"normalized", false},  {"special", special}};
  };
  j["added_tokens"].push_back(token(512, "<mask>", true, true, false, false));
  j["added_tokens"].push_back(token(513, "ony", false, false, true, false));
  j["added_tokens"].push_back(token(514, "<pad>", false, false, false, true));
  j["added_tokens"].push_back(token(515, "<pad><pad>", false, false, false, true));
  write(dir.path() / "tokenizer.json", j.dump());
  const Tokenizer tok = Tokenizer::from_file(dir.path() / "tokenizer.json");
  EXPECT_EQ(tok.vocab_size(), 516);
  EXPECT_EQ(tok.token_to_id("<mask>"), 512);
  EXPECT_FALSE(tok.is_special(512));
  EXPECT_TRUE(tok.is_special(514));

  // lstrip/rstrip: the spaces around <mask> belong to it.
  EXPECT_EQ(tok.encode("a  <mask> b"), concat({tok.encode("a"), {512}, tok.encode("b")}));
  // single_word: "ony" inside "Tony" is text; alone it is the token.
  EXPECT_EQ(tok.encode("Tony ony"), concat({tok.encode("Tony "), {513}}));
  EXPECT_EQ(tok.encode("Tony"), tok.encode("Tony"));
  EXPECT_EQ(tok.encode("ony."), concat({{513}, tok.encode(".")}));
  // Longest match first.
  EXPECT_EQ(tok.encode("<pad><pad><pad>"), (std::vector<int32_t>{515, 514}));
  // Non-special added tokens survive skip_special; special ones do not.
  EXPECT_EQ(tok.decode(std::vector<int32_t>{512, 514}, true), "<mask>");
}

// ---------------------------------------------------------------- tokenizer_config.json

TEST(TokenizerConfig, AddBosAndEosFlagsDecideSpecialTokens) {
  STRATA_REQUIRE_FIXTURES();
  test::TempDir dir;
  write(dir.path() / "tokenizer.json", stories_json().dump());
  const auto body = Tokenizer::from_dir(dir.path()).encode("Once", false);
  // No config: the post-processor template adds <s>.
  EXPECT_EQ(Tokenizer::from_dir(dir.path()).encode("Once", true), concat({{1}, body}));

  write(dir.path() / "tokenizer_config.json",
        R"({"add_bos_token": false, "add_eos_token": true, "bos_token": {"content": "<s>"}, "eos_token": "</s>"})");
  const Tokenizer tok = Tokenizer::from_dir(dir.path());
  EXPECT_EQ(tok.encode("Once", true), concat({body, {2}}));
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);

  write(dir.path() / "tokenizer_config.json", R"({"bos_token": null, "eos_token": "<unk>"})");
  const Tokenizer other = Tokenizer::from_dir(dir.path());
  EXPECT_EQ(other.bos_id(), std::nullopt);
  EXPECT_EQ(other.eos_id(), 0);
}

// ---------------------------------------------------------------- errors

// Runs fn, expects a strata::Error whose file is `file` and whose text
// contains `needle`.
template <typename Fn>
void expect_error(Fn fn, const fs::path& file, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), file.string()) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
}

TEST(TokenizerErrors, MissingFile) {
  test::TempDir dir;
  const fs::path path = dir.path() / "tokenizer.json";
  expect_error([&] { Tokenizer::from_file(path); }, path, "not found");
  expect_error([&] { Tokenizer::from_dir(dir.path()); }, path, "not found");
}

TEST(TokenizerErrors, MalformedJson) {
  test::TempDir dir;
  const fs::path path = dir.path() / "tokenizer.json";
  write(path, R"({"model": {"type": "BPE", "vocab": {"a": 0, )");
  expect_error([&] { Tokenizer::from_file(path); }, path, "malformed JSON");
  write(path, "");
  expect_error([&] { Tokenizer::from_file(path); }, path, "malformed JSON");
  write(path, "[1, 2]");
  expect_error([&] { Tokenizer::from_file(path); }, path, "not a JSON object");
}

TEST(TokenizerErrors, UnsupportedModelTypes) {
  test::TempDir dir;
  const fs::path path = dir.path() / "tokenizer.json";
  write(path, R"({"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0, "a": 1}}})");
  expect_error([&] { Tokenizer::from_file(path); }, path, "unsupported tokenizer model type 'WordPiece'");
  write(path, R"({"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0], ["a", -1.5]]}})");
  expect_error([&] { Tokenizer::from_file(path); }, path, "unsupported tokenizer model type 'Unigram'");
  write(path, R"({"model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "a"}})");
  expect_error([&] { Tokenizer::from_file(path); }, path, "unsupported tokenizer model type 'WordLevel'");
}

TEST(TokenizerErrors, InconsistentContents) {
  test::TempDir dir;
  const fs::path path = dir.path() / "tokenizer.json";
  const std::string head = R"({"model": {"type": "BPE", )";
  struct Bad {
    std::string body, needle;
  };
  const std::vector<Bad> cases = {
      {R"("vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})", "not in the vocab"},
      {R"("vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["ab"]}})", "not two tokens"},
      {R"("vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b", "c"]]}})", "not a pair"},
      {R"("vocab": {"a": "zero"}, "merges": []}})", "not an integer token id"},
      {R"("vocab": {"a": -1}, "merges": []}})", "out of range"},
      {R"("vocab": {"a": 0, "b": 100000000}, "merges": []}})", "far beyond"},
      {R"("vocab": ["a"], "merges": []}})", "model.vocab is not a JSON object"},
      {R"("vocab": {"a": 0}}})", "has no \"merges\""},
      {R"("vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "BertPreTokenizer"}})",
       "unsupported pre_tokenizer type 'BertPreTokenizer'"},
      {R"("vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Precompiled"}})",
       "unsupported normalizer type 'Precompiled'"},
      {R"("vocab": {"a": 0}, "merges": []}, "decoder": {"type": "WordPiece"}})", "unsupported decoder type 'WordPiece'"},
      {R"("vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}})",
       "cannot compile"},
      {R"("vocab": {"a": 0}, "merges": []}, "added_tokens": [{"content": "x"}]})", "has no \"id\""},
  };
  for (const Bad& bad : cases) {
    SCOPED_TRACE(bad.body);
    write(path, head + bad.body);
    expect_error([&] { Tokenizer::from_file(path); }, path, bad.needle);
  }
}

TEST(TokenizerErrors, MalformedConfigNamesTheConfigFile) {
  test::TempDir dir;
  write(dir.path() / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  const fs::path config = dir.path() / "tokenizer_config.json";
  write(config, "{not json");
  expect_error([&] { Tokenizer::from_dir(dir.path()); }, config, "malformed JSON");
  write(config, R"({"add_bos_token": "yes"})");
  expect_error([&] { Tokenizer::from_dir(dir.path()); }, config, "add_bos_token");
}

// A tiny tokenizer written out in full: byte-level pieces with no merges and
// no decoder (HF then joins tokens with spaces).
TEST(TokenizerMinimal, NoDecoderJoinsWithSpaces) {
  test::TempDir dir;
  write(dir.path() / "tokenizer.json",
        R"({"model": {"vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}})");
  const Tokenizer tok = Tokenizer::from_dir(dir.path());
  EXPECT_EQ(tok.encode("abab"), (std::vector<int32_t>{2, 2}));
  EXPECT_EQ(tok.encode("aba"), (std::vector<int32_t>{2, 0}));
  EXPECT_EQ(tok.encode("xa"), (std::vector<int32_t>{0}));  // no unk token: dropped
  EXPECT_EQ(tok.decode(std::vector<int32_t>{2, 0, 1}), "ab a b");
  EXPECT_EQ(tok.bos_id(), std::nullopt);
  EXPECT_EQ(tok.eos_id(), std::nullopt);
}

}  // namespace
}  // namespace strata
