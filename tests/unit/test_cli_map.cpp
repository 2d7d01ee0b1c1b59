// `strata map`: Accelerate's maps from fixture trees, a 405B plan from its
// config.json alone, and one-line errors for budgets that cannot work.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "broken_checkpoints.h"
#include "strata/model.h"
#include "test_support.h"

namespace strata {
namespace {

using Json = nlohmann::ordered_json;

void write(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }

std::map<std::string, std::string> as_map(const Json& j) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : j.items()) out[k] = v.is_number() ? std::to_string(v.get<int>()) : v.get<std::string>();
  return out;
}

TEST(CliMap, TreeRequestsReproduceAccelerateMaps) {
  STRATA_REQUIRE_FIXTURES();
  const Json cases = Json::parse(test::read_file(test::fixtures_dir() / "device_maps" / "accelerate_cases.json"));
  test::TempDir dir;
  int checked = 0;
  for (const Json& c : cases) {
    if (c["max_memory"].is_null() || c["expected_device_map"].is_null()) continue;
    SCOPED_TRACE("case " + c["name"].get<std::string>());
    const auto path = dir.path() / (c["name"].get<std::string>() + ".json");
    write(path, c.dump());
    const test::CliResult r = test::run_cli("map --tree " + path.string() + " --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Json got = Json::parse(r.out);
    EXPECT_EQ(as_map(got), as_map(c["expected_device_map"]));
    // Accelerators are ints in the JSON, as Accelerate writes them.
    for (const auto& [k, v] : got.items()) EXPECT_TRUE(v.is_number_integer() || v == "cpu" || v == "disk") << k;
    ++checked;
  }
  EXPECT_GE(checked, 30);
}

// The MoE cases were planned by Accelerate on trees transformers built from
// a config; `strata map --config` builds the tree from the same config
// (models/family_mixtral.cpp, family_qwen_moe.cpp) and must give the same map.
TEST(CliMap, MoeConfigsReproduceAccelerateMaps) {
  STRATA_REQUIRE_FIXTURES();
  const Json cases = Json::parse(test::read_file(test::fixtures_dir() / "device_maps" / "moe_cases.json"));
  const std::map<std::string, std::string> architecture_of{{"MixtralConfig", "MixtralForCausalLM"},
                                                           {"Qwen2MoeConfig", "Qwen2MoeForCausalLM"}};
  test::TempDir dir;
  int checked = 0;
  for (const Json& c : cases) {
    SCOPED_TRACE("case " + c["name"].get<std::string>());
    Json config = c["model"]["config"];
    config["architectures"] = {architecture_of.at(c["model"]["config_class"].get<std::string>())};
    const auto path = dir.path() / (c["name"].get<std::string>() + ".json");
    write(path, config.dump());
    // Budgets in bytes, in the case's key order; disk as the last tier.
    std::string budgets;
    for (const auto& [device, bytes] : c["max_memory"].items())
      if (device != "disk") budgets += device + "=" + std::to_string(bytes.get<int64_t>()) + ",";
    const std::string args = "map --config " + path.string() + " --max-memory " + budgets + "disk --strategy " +
                             c["strategy"].get<std::string>();
    const test::CliResult r = test::run_cli(args + " --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(as_map(Json::parse(r.out)), as_map(c["expected_device_map"]));
    const test::CliResult table = test::run_cli(args);
    ASSERT_EQ(table.exit_code, 0) << table.err;
    EXPECT_EQ(table.out.find("buffers of offloaded modules fit no accelerator") != std::string::npos,
              c["expected_buffer_warning"].get<bool>())
        << table.out;
    ++checked;
  }
  EXPECT_EQ(checked, 6) << "the fixtures README lists 6 MoE cases";
}

TEST(CliMap, TreeFlagsOverrideTheFile) {
  STRATA_REQUIRE_FIXTURES();
  const Json cases = Json::parse(test::read_file(test::fixtures_dir() / "device_maps" / "accelerate_cases.json"));
  Json tiny;
  for (const Json& c : cases)
    if (c["name"] == "tinyllama_bf16_seq_dtype_bf16") tiny = c;
  ASSERT_FALSE(tiny.is_null());
  test::TempDir dir;
  write(dir.path() / "t.json", tiny.dump());
  const std::string tree = "map --tree " + (dir.path() / "t.json").string();
  // Enough room on two accelerators: auto places everything there.
  const test::CliResult r = test::run_cli(tree + " --strategy auto --max-memory sim:0=2GiB,sim:1=2GiB,cpu=1GiB --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json all_on_accelerators = Json::parse(r.out);
  EXPECT_EQ(all_on_accelerators.dump(), R"({"model":0,"lm_head":1})") << "placement order";
  const test::CliResult table = test::run_cli(tree + " --accelerators sim");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("strategy sequential"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("model.layers.18-21"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("sim:1"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("not budgeted"), std::string::npos) << table.out;
}

// Llama-3.1-405B's shape, bf16, llama3 rope scaling.
void write_405b_config(const std::filesystem::path& path) {
  write(path, R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16384,
    "intermediate_size": 53248, "num_hidden_layers": 126, "num_attention_heads": 128, "num_key_value_heads": 8,
    "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": false, "torch_dtype": "bfloat16", "bos_token_id": 128000, "eos_token_id": 128001})");
}

TEST(CliMap, Llama405BFromConfigSplitsOverEveryTier) {
  test::TempDir dir;
  const auto config = dir.path() / "config.json";
  write_405b_config(config);
  const auto start = std::chrono::steady_clock::now();
  const test::CliResult r =
      test::run_cli("map --config " + config.string() + " --max-memory 0=80GiB,1=80GiB,cpu=256GiB,disk");
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("[plan] strata map --config (Llama-3-405B shape), whole command: %.0f ms\n", ms);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(ms, 5000);
  // Runs of layers per device, e.g. "model.layers.0-11   0   71.3 GiB (12 × 5.94 GiB)".
  std::set<std::string> layer_devices;
  const std::regex row(R"(^model\.layers\.\d+(-\d+)?\s+(\S+)\s)");
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, row)) layer_devices.insert(m[2]);
  }
  EXPECT_EQ(layer_devices, (std::set<std::string>{"0", "1", "cpu", "disk"})) << r.out;
  EXPECT_NE(r.out.find(" × "), std::string::npos) << "runs of layers are collapsed:\n" << r.out;
  EXPECT_NE(r.out.find("KV+runtime"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("over budget"), std::string::npos) << r.out;

  const test::CliResult json = test::run_cli("map --config " + config.string() +
                                             " --max-memory 0=80GiB,1=80GiB,cpu=256GiB,disk --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const Json map = Json::parse(json.out);
  EXPECT_EQ(map.begin().key(), "model.embed_tokens") << "placement order";
  EXPECT_EQ(map["model.layers.0"], 0);
  EXPECT_EQ(map["lm_head"], "disk");
}

TEST(CliMap, BudgetBelowTheLargestLayerFails) {
  test::TempDir dir;
  const auto config = dir.path() / "config.json";
  write_405b_config(config);
  const test::CliResult r =
      test::run_cli("map --config " + config.string() + " --max-memory 0=4GiB,cpu=256GiB,disk --accelerators cuda");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.err.find("cuda:0 needs at least"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");

  const test::CliResult no_disk = test::run_cli("map --config " + config.string() + " --max-memory 0=80GiB,cpu=64GiB");
  EXPECT_EQ(no_disk.exit_code, 1);
  EXPECT_NE(no_disk.err.find("cpu needs at least"), std::string::npos) << no_disk.err;
  EXPECT_NE(no_disk.err.find("disk"), std::string::npos) << no_disk.err;
}

TEST(CliMap, BadInputGivesOneLineErrors) {
  test::TempDir dir;
  const auto config = dir.path() / "config.json";
  write_405b_config(config);
  for (const std::string& args :
       {"map --config " + config.string(),                                  // no budget
        "map --config " + config.string() + " --max-memory 0=8QiB",         // bad unit
        "map --config " + config.string() + " --max-memory 0=1GiB,0=2GiB",  // twice
        "map --config " + config.string() + " --max-memory cpu=1GiB --strategy fastest",
        "map --config " + config.string() + " --tree " + config.string() + " --max-memory cpu=1GiB",
        "map --config " + (dir.path() / "missing.json").string() + " --max-memory cpu=1GiB"}) {
    SCOPED_TRACE(args);
    const test::CliResult r = test::run_cli(args);
    EXPECT_NE(r.exit_code, 0);  // run_cli fails the test on a crash
    EXPECT_EQ(r.err.rfind("strata: error: ", 0), 0u) << r.err;
  }
}

TEST(CliMap, ModelDirUsesHeadersAndDefaultsToAvailableRam) {
  test::TempDir dir;
  test::write_tiny_llama(dir.path() / "m");
  const test::CliResult r = test::run_cli("map -m " + (dir.path() / "m").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(everything)    "), std::string::npos) << "a tiny model fits the RAM whole:\n" << r.out;
  const test::CliResult seq = test::run_cli("map -m " + (dir.path() / "m").string() +
                                            " --strategy balanced --max-memory sim:0=1MiB,sim:1=1MiB --json");
  ASSERT_EQ(seq.exit_code, 0) << seq.err;
  EXPECT_TRUE(Json::parse(seq.out).is_object());
  const test::CliResult help = test::run_cli("map --help");
  for (const char* flag : {"--max-memory", "--strategy", "--no-split", "--dtype", "--ctx", "--batch", "--threads",
                           "--accelerators", "--json", "--tree", "--config", "--quantize", "--quantize-all"})
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
}

// `strata map -m` bills what loading bills (the staging and read slots
// included), so the map it prints is the one a run uses.
TEST(CliMap, ModelDirPlansTheMapThatLoadingUses) {
  STRATA_REQUIRE_FIXTURES();
  const std::filesystem::path model = test::fixtures_dir() / "models" / "llama-tiny-random";
  // sim:0 gets room for its slots, KV cache and activations (595 KiB) and
  // the embedding; the cpu for its read slots (539 KiB) and no layer: the
  // layers stream from disk to sim:0. A plan that forgot either kind of
  // slot would keep layers on sim:0 or in RAM.
  const std::string budgets = "0=850KiB,cpu=600KiB,disk";
  test::TempDir tmp;
  ModelOptions o = test::with_threads(1);
  o.sim_devices = "1x64MiB";
  o.max_memory = budgets;
  o.ctx = 64;
  o.offload_folder = tmp.path();
  const std::string loaded = Model::load(model, o)->device_map_json();
  const test::CliResult r = test::run_cli("map -m " + model.string() + " --max-memory " + budgets +
                                          " --accelerators sim --ctx 64 --threads 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto planned = as_map(Json::parse(r.out));
  EXPECT_EQ(planned, as_map(Json::parse(loaded))) << "strata map:\n" << r.out << "\nloaded:\n" << loaded;
  std::set<std::string> tiers;
  for (const auto& [module, device] : planned) tiers.insert(device);
  EXPECT_EQ(tiers, (std::set<std::string>{"0", "disk"})) << r.out;
}

// `strata map --quantize` plans what `--quantize` loads: in 700 KiB of RAM
// the float32 MoE fixture does not fit, its int4 form (experts included)
// fits whole, and loading it with --quantize int4 makes the same map.
TEST(CliMap, QuantizePlansTheQuantizedModel) {
  STRATA_REQUIRE_FIXTURES();
  const std::filesystem::path model = test::fixtures_dir() / "models" / "qwen3moe-tiny-random";
  const std::string args = "map -m " + model.string() + " --max-memory cpu=700KiB,disk --ctx 64 --threads 1 --json";
  const test::CliResult plain = test::run_cli(args);
  EXPECT_EQ(plain.exit_code, 1) << plain.out;
  EXPECT_NE(plain.err.find("does not fit"), std::string::npos) << plain.err;
  const test::CliResult int4 = test::run_cli(args + " --quantize int4");
  ASSERT_EQ(int4.exit_code, 0) << int4.err;
  test::TempDir tmp;
  ModelOptions o = test::with_threads(1);
  o.max_memory = "cpu=700KiB,disk";
  o.ctx = 64;
  o.quantize = "int4";
  o.offload_folder = tmp.path();
  const std::string loaded = Model::load(model, o)->device_map_json();
  EXPECT_EQ(as_map(Json::parse(int4.out)), as_map(Json::parse(loaded))) << int4.out << "\nloaded:\n" << loaded;
  EXPECT_EQ(Json::parse(int4.out), Json::parse(R"({"": "cpu"})"));
  EXPECT_EQ(test::run_cli(args + " --quantize-all").exit_code, 1) << "--quantize-all needs --quantize";
}

}  // namespace
}  // namespace strata
