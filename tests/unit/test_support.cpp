#include "test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "format/safetensors.h"
#include "models/causal_lm.h"
#include "strata/generate.h"
#include "strata/error.h"

namespace strata::test {

// The suite's expectations (bit-identical logits across maps, batches and
// thread counts) are the CPU's: models load on the CPU and sim devices even
// where a GPU is present, and so does every strata command the tests run.
// GPU tests lift this with ScopedGpus.
namespace {
[[maybe_unused]] const bool kGpusHidden = [] { return setenv("STRATA_NO_GPU", "1", 1) == 0; }();
}  // namespace

ScopedGpus::ScopedGpus() { unsetenv("STRATA_NO_GPU"); }
ScopedGpus::~ScopedGpus() { setenv("STRATA_NO_GPU", "1", 1); }

CliResult run_cli(const std::string& args) { return run_cli_with_env("", args); }

CliResult run_cli_with_env(const std::string& env, const std::string& args) {
  static std::atomic<int> counter{0};
  const auto err_path = std::filesystem::temp_directory_path() /
                        ("strata-cli-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".err");
  // exec: the shell becomes the command, so a crash is seen as the signal it
  // is; a shell that waited for it would report exit 128 + the signal instead.
  const std::string command = "exec " + (env.empty() ? "" : "env " + env + " ") + cli_path().string() + " " + args +
                              " 2>" + err_path.string() + " </dev/null";
  CliResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) {
    ADD_FAILURE() << "could not start: " << command;
    return result;
  }
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.out.append(buffer, n);
  const int status = pclose(pipe);
  result.signaled = status != -1 && WIFSIGNALED(status);
  result.exit_code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_path);
  std::ostringstream text;
  text << err.rdbuf();
  result.err = text.str();
  std::filesystem::remove(err_path);
  if (result.signaled) {
    ADD_FAILURE() << "strata " << args << ": killed by signal " << WTERMSIG(status) << "\n" << result.err;
  } else if (result.exit_code == 126 || result.exit_code == 127 || result.exit_code == -1) {
    ADD_FAILURE() << "strata " << args << ": did not run to an exit of its own (exit " << result.exit_code << ")\n"
                  << result.err;
  }
  return result;
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = std::filesystem::temp_directory_path() /
          ("strata-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

FixtureModules fixture_modules(const std::filesystem::path& model_dir) {
  const ModelConfig config = ModelConfig::from_file(model_dir / "config.json");
  FixtureModules m;
  m.tied = config.tie_word_embeddings;
  for (const BlockSpec& b : model_blocks(config)) {
    if (b.role == Role::embedding || b.role == Role::position_embedding) m.embeddings.push_back(b.module);
    if (b.role == Role::decoder_layer) m.layers.push_back(b.module);
    if (b.role == Role::final_norm) m.final_norm = b.module;
    if (b.role == Role::head) m.head = b.module;
  }
  return m;
}

void expect_same_run(const std::vector<float>& logits, const std::vector<int32_t>& greedy,
                     const std::vector<DeviceReport>& devices, const std::vector<float>& want_logits,
                     const std::vector<int32_t>& want_greedy, const std::string& what) {
  ASSERT_EQ(logits.size(), want_logits.size()) << what;
  EXPECT_EQ(0, std::memcmp(logits.data(), want_logits.data(), want_logits.size() * sizeof(float)))
      << what << ": logits differ from the reference run";
  EXPECT_EQ(greedy, want_greedy) << what;
  for (const DeviceReport& d : devices) {
    if (d.name == "disk") continue;
    if (!std::isinf(d.budget)) {
      EXPECT_LE(static_cast<double>(d.peak), d.budget) << what << ": " << d.name;
    }
    EXPECT_LE(static_cast<double>(d.peak), d.planned_bytes) << what << ": " << d.name << " exceeds the plan";
  }
}

Reference read_reference(const std::filesystem::path& model_dir) {
  SafetensorsFile file(model_dir / "reference.safetensors");
  Reference ref;
  for (const auto& t : file.tensors()) {
    const auto bytes = file.data(t);
    if (t.name == "input_ids") {
      ref.rows = t.shape[0];
      ref.tokens = t.shape[1];
      for (int64_t i = 0; i < t.numel(); ++i) {
        int64_t v;
        std::memcpy(&v, bytes.data() + i * 8, 8);
        ref.input_ids.push_back(static_cast<int32_t>(v));
      }
    } else if (t.name == "logits") {
      ref.vocab = t.shape[2];
      ref.logits.resize(static_cast<size_t>(t.numel()));
      std::memcpy(ref.logits.data(), bytes.data(), bytes.size());
    }
  }
  return ref;
}

ModelOptions reference_options(const Reference& ref, const std::string& device_map, const std::string& sim_devices,
                               const std::filesystem::path& offload_folder) {
  ModelOptions o = with_threads(2);
  o.device_map = device_map;
  o.sim_devices = sim_devices;
  o.offload_folder = offload_folder;
  o.ctx = ref.tokens;
  o.batch = ref.rows;
  o.all_logits = true;
  return o;
}

ReferenceRun run_reference(const std::filesystem::path& model_dir, const ModelOptions& options, const Reference& ref) {
  auto model = Model::load(model_dir, options);
  ReferenceRun r;
  r.logits = model->logits(ref.input_ids, ref.rows, ref.tokens);
  GenerateOptions g;
  g.max_new_tokens = 6;
  const std::vector<int32_t> prompt(ref.input_ids.begin(), ref.input_ids.begin() + 2);
  r.greedy = generate(*model, prompt, g).new_ids;
  r.experts = model->expert_stats();
  r.devices = model->devices();
  return r;
}

void expect_load_error(const std::filesystem::path& dir, const std::string& phrase, const std::string& tensor,
                       const std::string& device_map) {
  ModelOptions o = with_threads(1);
  o.device_map = device_map;
  uint64_t placed = 0;
  o.load_progress = [&](uint64_t done, uint64_t) { placed = std::max(placed, done); };
  try {
    Model::load(dir, o);
    ADD_FAILURE() << "loaded " << dir;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    if (!tensor.empty()) {
      EXPECT_NE(std::string(e.what()).find(tensor), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(placed, 0u) << "weights were read before the error";
  const std::string map_flag = device_map.empty() ? "" : " --device-map '" + device_map + "'";
  const CliResult r = run_cli("generate -m " + dir.string() + " --prompt-ids 1,2 -n 1" + map_flag);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(phrase), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
}

}  // namespace strata::test
