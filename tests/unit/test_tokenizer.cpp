// Tokenizer against the golden fixtures: the GPT-2 and Qwen2 byte-level cases
// (fixtures/tokenizers/*/cases.json, ids from transformers' slow tokenizers)
// and the stories260k sentencepiece-style tokenizer with its generation
// references.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
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

using test::read_json;

std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

struct Case {
  std::string name, text, decoded;
  std::vector<int32_t> ids;
};

std::vector<Case> read_cases(const fs::path& dir) {
  std::vector<Case> cases;
  for (const json& c : read_json(dir / "cases.json"))
    cases.push_back({c.at("name"), c.at("text"), c.at("decoded"), c.at("ids").get<std::vector<int32_t>>()});
  return cases;
}

// Streams ids one at a time and returns the concatenated outputs.
std::string stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special) {
  Tokenizer::StreamDecoder decoder(tok, skip_special);
  std::string text;
  for (int32_t id : ids) text += decoder.push(id);
  return text + decoder.flush();
}

class TokenizerFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerFamily, MatchesGoldenCases) {
  STRATA_REQUIRE_FIXTURES();
  const fs::path dir = test::fixtures_dir() / "tokenizers" / GetParam();
  const Tokenizer tok = Tokenizer::from_dir(dir);
  const std::vector<Case> cases = read_cases(dir);
  ASSERT_EQ(cases.size(), 41u);

  std::vector<std::string> failed;
  for (const Case& c : cases) {
    const std::vector<int32_t> ids = tok.encode(c.text, false);
    const std::string decoded = tok.decode(c.ids, false);
    bool ok = true;
    if (ids != c.ids) {
      ok = false;
      ADD_FAILURE() << GetParam() << " case '" << c.name << "': encode gave " << ids_to_string(ids)
                    << ", expected " << ids_to_string(c.ids);
    }
    if (decoded != c.decoded) {
      ok = false;
      ADD_FAILURE() << GetParam() << " case '" << c.name << "': decode gave \"" << decoded
                    << "\", expected \"" << c.decoded << "\"";
    }
    // Neither family adds BOS/EOS, so add_special changes nothing.
    if (tok.encode(c.text, true) != c.ids) {
      ok = false;
      ADD_FAILURE() << GetParam() << " case '" << c.name << "': add_special=true changed the ids";
    }
    if (!ok) failed.push_back(c.name);
  }
  EXPECT_TRUE(failed.empty()) << failed.size() << " of " << cases.size() << " cases failed";
}

TEST_P(TokenizerFamily, StreamDecoderConcatenatesToDecode) {
  STRATA_REQUIRE_FIXTURES();
  const fs::path dir = test::fixtures_dir() / "tokenizers" / GetParam();
  const Tokenizer tok = Tokenizer::from_dir(dir);
  for (const Case& c : read_cases(dir)) {
    for (bool skip : {false, true}) {
      EXPECT_EQ(stream(tok, c.ids, skip), tok.decode(c.ids, skip))
          << GetParam() << " case '" << c.name << "', skip_special=" << skip;
    }
  }
}

TEST_P(TokenizerFamily, SpecialTokensAndLookups) {
  STRATA_REQUIRE_FIXTURES();
  const Tokenizer tok = Tokenizer::from_dir(test::fixtures_dir() / "tokenizers" / GetParam());
  const auto eot = tok.token_to_id("<|endoftext|>");
  ASSERT_TRUE(eot.has_value());
  EXPECT_TRUE(tok.is_special(*eot));
  EXPECT_FALSE(tok.is_special(0));
  EXPECT_FALSE(tok.is_special(-1));
  EXPECT_FALSE(tok.token_to_id("definitely not a token").has_value());
  // Special tokens are dropped on request; ids beyond the vocab are skipped.
  const std::vector<int32_t> ids = {*eot, tok.vocab_size() + 5};
  EXPECT_EQ(tok.decode(ids, true), "");
  EXPECT_EQ(tok.decode(ids, false), "<|endoftext|>");
  if (GetParam() == "gpt2") {
    EXPECT_EQ(tok.vocab_size(), 50257);
    EXPECT_EQ(tok.bos_id(), 50256);
    EXPECT_EQ(tok.eos_id(), 50256);
  } else {
    EXPECT_EQ(tok.vocab_size(), 151646);
    EXPECT_EQ(tok.bos_id(), std::nullopt);  // tokenizer_config.json: bos_token null
    EXPECT_EQ(tok.eos_id(), 151645);        // <|im_end|>
    EXPECT_EQ(tok.token_to_id("<|im_start|>"), 151644);
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerFamily, ::testing::Values("gpt2", "qwen2"));

// ---------------------------------------------------------------- byte-level details (GPT-2)

TEST(TokenizerByteLevel, InvalidUtf8DecodesToReplacementCharacter) {
  STRATA_REQUIRE_FIXTURES();
  const Tokenizer tok = Tokenizer::from_dir(test::fixtures_dir() / "tokenizers" / "gpt2");
  // "€" is E2 82 AC; GPT-2 writes those bytes as â, Ĥ (U+0124), ¬.
  const auto e2 = tok.token_to_id("\xC3\xA2"), x82 = tok.token_to_id("\xC4\xA4"),
             xac = tok.token_to_id("\xC2\xAC");
  ASSERT_TRUE(e2 && x82 && xac);
  EXPECT_EQ(tok.decode(std::vector<int32_t>{*e2, *x82, *xac}), "\xE2\x82\xAC");
  // A truncated sequence is one U+FFFD (maximal subpart), a stray
  // continuation byte another.
  EXPECT_EQ(tok.decode(std::vector<int32_t>{*e2, *x82}), "\xEF\xBF\xBD");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{*xac, *e2, *x82, *xac}), "\xEF\xBF\xBD\xE2\x82\xAC");
  // The stream holds the partial character back until it completes.
  Tokenizer::StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(*e2), "");
  EXPECT_EQ(stream.push(*x82), "");
  EXPECT_EQ(stream.push(*xac), "\xE2\x82\xAC");
  EXPECT_EQ(stream.flush(), "");
  // A partial character at the very end comes out on flush.
  Tokenizer::StreamDecoder cut(tok);
  EXPECT_EQ(cut.push(*e2), "");
  EXPECT_EQ(cut.flush(), "\xEF\xBF\xBD");
}

TEST(TokenizerByteLevel, InvalidUtf8InputBecomesReplacementCharacter) {
  STRATA_REQUIRE_FIXTURES();
  const Tokenizer tok = Tokenizer::from_dir(test::fixtures_dir() / "tokenizers" / "gpt2");
  EXPECT_EQ(tok.encode("a\xFF" "b"), tok.encode("a\xEF\xBF\xBD" "b"));
  EXPECT_EQ(tok.decode(tok.encode("a\xFF" "b")), "a\xEF\xBF\xBD" "b");
}

TEST(TokenizerByteLevel, LongStreamsStayConsistent) {
  STRATA_REQUIRE_FIXTURES();
  for (const char* family : {"gpt2", "qwen2"}) {
    const fs::path dir = test::fixtures_dir() / "tokenizers" / family;
    const Tokenizer tok = Tokenizer::from_dir(dir);
    // All cases back to back, special tokens included: long enough for the
    // stream's window to be trimmed many times.
    std::vector<int32_t> all;
    for (const Case& c : read_cases(dir)) all.insert(all.end(), c.ids.begin(), c.ids.end());
    for (bool skip : {false, true}) EXPECT_EQ(stream(tok, all, skip), tok.decode(all, skip)) << family;
  }
}

TEST(TokenizerByteLevel, LoadAndEncodeAreFast) {
  STRATA_REQUIRE_FIXTURES();
  using clock = std::chrono::steady_clock;
  const fs::path dir = test::fixtures_dir() / "tokenizers" / "qwen2";
  const auto t0 = clock::now();
  const Tokenizer tok = Tokenizer::from_dir(dir);
  const auto t1 = clock::now();
  std::string text;
  for (const Case& c : read_cases(dir))
    if (c.name == "long_2000_a") text = c.text;
  ASSERT_EQ(text.size() > 2000, true);
  // The encode alone (not reading the cases file), best of three: a busy
  // machine can stall one run, quadratic work slows all three.
  std::vector<int32_t> ids;
  double encode_ms = 1e30;
  for (int run = 0; run < 3; ++run) {
    const auto start = clock::now();
    ids = tok.encode(text);
    encode_ms = std::min(encode_ms, std::chrono::duration<double, std::milli>(clock::now() - start).count());
  }
  const double load_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  RecordProperty("qwen2_load_ms", std::to_string(load_ms));
  RecordProperty("encode_2000_chars_ms", std::to_string(encode_ms));
  std::printf("qwen2 tokenizer.json load: %.1f ms; 2000-char encode: %.3f ms (%zu ids)\n", load_ms,
              encode_ms, ids.size());
#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__)
  // Generous bounds: they catch accidental quadratic work, not noise.
  EXPECT_LT(load_ms, 2000.0);
  EXPECT_LT(encode_ms, 50.0);
#endif
}

// ---------------------------------------------------------------- stream decoding of arbitrary ids

// A model may emit any id in any order: partial UTF-8, byte tokens, special
// tokens, ids past the vocab. The stream must still add up to decode(all).
TEST(TokenizerStream, RandomIdsAddUpToDecode) {
  STRATA_REQUIRE_FIXTURES();
  const fs::path files[] = {test::fixtures_dir() / "tokenizers" / "gpt2",
                            test::fixtures_dir() / "tokenizers" / "qwen2",
                            test::fixtures_dir() / "models" / "stories260k"};
  std::mt19937 rng(20240814);  // mt19937 output is fixed by the standard
  for (const fs::path& dir : files) {
    const Tokenizer tok = Tokenizer::from_dir(dir);
    const uint32_t span = static_cast<uint32_t>(tok.vocab_size()) + 8;
    for (int round = 0; round < 200; ++round) {
      std::vector<int32_t> ids;
      const int n = static_cast<int>(rng() % 100);
      for (int k = 0; k < n; ++k) {
        // Favour the first ids (bytes, byte tokens, specials) and the last
        // (added tokens, out of range), where the trouble is.
        const uint32_t r = rng();
        const uint32_t pick = r % 3 == 0 ? (r / 3) % 300 : r % 3 == 1 ? span - 1 - (r / 3) % 16 : (r / 3) % span;
        ids.push_back(static_cast<int32_t>(pick) - 4);
      }
      for (bool skip : {false, true})
        ASSERT_EQ(stream(tok, ids, skip), tok.decode(ids, skip))
            << dir << " round " << round << " skip_special=" << skip << " ids " << ids_to_string(ids);
    }
  }
}

// ---------------------------------------------------------------- stories260k (sentencepiece BPE)

fs::path stories_dir() { return test::fixtures_dir() / "models" / "stories260k"; }

TEST(TokenizerStories, EncodesReferencePrompt) {
  STRATA_REQUIRE_FIXTURES();
  const Tokenizer tok = Tokenizer::from_dir(stories_dir());
  const json ref = read_json(stories_dir() / "reference.json");
  const auto prompt = ref.at("greedy").at("prompt_ids").get<std::vector<int32_t>>();
  EXPECT_EQ(tok.encode("Once upon a time", true), prompt);
  EXPECT_EQ(ids_to_string(tok.encode("Once upon a time", true)), "[1, 403, 407, 261, 378]");
  EXPECT_EQ(tok.encode("Once upon a time", false), std::vector<int32_t>(prompt.begin() + 1, prompt.end()));
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_TRUE(tok.is_special(1));
  EXPECT_EQ(tok.encode("", true), std::vector<int32_t>{1});
  EXPECT_TRUE(tok.encode("", false).empty());
}

TEST(TokenizerStories, DecodesReferenceGreedyText) {
  STRATA_REQUIRE_FIXTURES();
  const Tokenizer tok = Tokenizer::from_dir(stories_dir());
  const json greedy = read_json(stories_dir() / "reference.json").at("greedy");
  std::vector<int32_t> ids = greedy.at("prompt_ids").get<std::vector<int32_t>>();
  const auto new_ids = greedy.at("new_ids").get<std::vector<int32_t>>();
  ids.insert(ids.end(), new_ids.begin(), new_ids.end());
  EXPECT_EQ(tok.decode(ids, true), greedy.at("text").get<std::string>());
  EXPECT_EQ(stream(tok, ids, true), greedy.at("text").get<std::string>());
  // With special tokens kept, <s> comes first and the strip of the leading
  // space still applies to the "▁Once" after it only as part of the whole.
  EXPECT_EQ(tok.decode(ids, false), "<s> " + greedy.at("text").get<std::string>());
}

// llama2c_reference.json: llama2.c's greedy run from BOS. Fields: model,
// note, prompt_ids ([1]), generated_ids (201 ids: BOS + 200 generated, the
// first 5 equal to reference.json's prompt_ids), text (the decode of
// generated_ids without BOS), logits_pos0_top5 ([[id, logit], …]),
// logits_pos0_full (512 logits after BOS) and hf_vs_llama2c_max_abs_logit_diff.
TEST(TokenizerStories, DecodesLlama2cReference) {
  STRATA_REQUIRE_FIXTURES();
  const Tokenizer tok = Tokenizer::from_dir(stories_dir());
  const json ref = read_json(stories_dir() / "llama2c_reference.json");
  const auto ids = ref.at("generated_ids").get<std::vector<int32_t>>();
  ASSERT_EQ(ids.size(), 201u);
  const std::string text = ref.at("text").get<std::string>();
  EXPECT_EQ(tok.decode(ids, true), text);
  EXPECT_EQ(stream(tok, ids, true), text);
  // The text also round-trips to the same ids (its byte tokens are only
  // <0x0A> newlines, which have no merges).
  EXPECT_EQ(tok.encode(text, true), ids);
}

TEST(TokenizerStories, ByteFallbackForCharactersOutsideTheVocab) {
  STRATA_REQUIRE_FIXTURES();
  const Tokenizer tok = Tokenizer::from_dir(stories_dir());
  // "ö" is not in the 512-token vocab: its UTF-8 bytes C3 B6 become <0xC3> <0xB6>.
  const auto ids = tok.encode("\xC3\xB6", false);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], *tok.token_to_id("\xE2\x96\x81"));  // the prepended "▁"
  EXPECT_EQ(ids[1], *tok.token_to_id("<0xC3>"));
  EXPECT_EQ(ids[2], *tok.token_to_id("<0xB6>"));
  EXPECT_EQ(tok.decode(ids), "\xC3\xB6");
  // A lone lead byte is invalid: one U+FFFD per byte token, as HF's ByteFallback.
  EXPECT_EQ(tok.decode(std::vector<int32_t>{ids[0], ids[1]}), "\xEF\xBF\xBD");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{ids[0], ids[2], ids[2]}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // A run of byte tokens decodes as a whole: "<0x41>" alone is "A", but
  // followed by a lone lead byte the run is invalid and all of it becomes
  // U+FFFD. The stream must not have let the "A" out early.
  const int32_t x41 = *tok.token_to_id("<0x41>"), xe2 = *tok.token_to_id("<0xE2>");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{x41}), "A");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{x41, xe2}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  Tokenizer::StreamDecoder held(tok);
  EXPECT_EQ(held.push(x41), "");
  EXPECT_EQ(held.push(xe2), "");
  EXPECT_EQ(held.push(403), "\xEF\xBF\xBD\xEF\xBF\xBD Once");
  EXPECT_EQ(held.flush(), "");
  for (const std::string text : {"Tom saw a cat \xF0\x9F\x90\xB1 and said \"hi\"!\n\nThe end.", "  two  spaces ",
                                 "\xC3\xB6t\xC3\xB6 caf\xC3\xA9"}) {
    const auto enc = tok.encode(text, true);
    EXPECT_EQ(tok.decode(enc, true), text);
    EXPECT_EQ(stream(tok, enc, true), text);
  }
}

}  // namespace
}  // namespace strata
