// strata kld: how far a run (quantized, fast mode, any map) is from a
// reference, as llama.cpp's KLD scoreboard says it: mean and max KL
// divergence per position and how often the most likely token agrees.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "device_map_options.h"
#include "logits_io.h"
#include "runtime/kld.h"
#include "strata/error.h"
#include "strata/model.h"

namespace strata::cli {
namespace {

struct KldArgs {
  std::string model_dir;
  std::string input;
  std::string reference;
  bool json = false;
  int threads = 0;
  DeviceMapArgs map;
};

// The checkpoint's own exact forward: float32 math, the weights as stored,
// on the same map flags otherwise (the result does not depend on the map).
std::vector<float> own_exact_logits(const KldArgs& args, const std::vector<int32_t>& ids, int64_t rows, int64_t tokens) {
  DeviceMapArgs exact = args.map;
  exact.compute = "exact";
  exact.quantize.clear();
  exact.quantize_all = false;
  exact.dtype.clear();
  exact.quiet = true;
  ModelOptions options = model_options(args.model_dir, exact, args.threads, tokens, 1);
  options.all_logits = true;
  auto model = Model::load(args.model_dir, options);
  return full_forward_logits(*model, ids, rows, tokens);
}

void run_kld(const KldArgs& args) {
  int64_t rows = 0, tokens = 0;
  const auto ids = read_input_ids(args.input, rows, tokens);
  ModelOptions options = model_options(args.model_dir, args.map, args.threads, tokens, 1);
  options.all_logits = true;
  std::string reference_name;
  std::vector<float> reference;
  const int64_t vocab = ModelConfig::from_file(std::filesystem::path(args.model_dir) / "config.json").vocab_size;
  const auto expected = static_cast<size_t>(rows * tokens * vocab);
  if (!args.reference.empty()) {
    reference = read_logits(args.reference, expected);
    reference_name = args.reference;
  } else if (has_logits(args.input)) {
    reference = read_logits(args.input, expected);
    reference_name = "the logits in " + args.input;
  } else {
    reference = own_exact_logits(args, ids, rows, tokens);
    reference_name = "this checkpoint's exact float32 forward";
  }
  auto model = Model::load(args.model_dir, options);
  print_device_map(*model, args.map);
  const std::vector<float> run = full_forward_logits(*model, ids, rows, tokens);
  const KldStats s = kl_divergence(reference, run, static_cast<size_t>(vocab));
  const std::string what = (args.map.quantize.empty() ? std::string("as stored") : "--quantize " + args.map.quantize) +
                           ", --compute " + args.map.compute;
  if (args.json) {
    const nlohmann::ordered_json j = {{"run", what},           {"reference", reference_name},
                                      {"positions", s.positions}, {"mean_kld", s.mean},
                                      {"max_kld", s.max},          {"top1_agreement", s.top1_agreement}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("run          %s\n", what.c_str());
  std::printf("reference    %s\n", reference_name.c_str());
  std::printf("positions    %zu\n", s.positions);
  std::printf("mean KLD     %.6g\n", s.mean);
  std::printf("max KLD      %.6g\n", s.max);
  std::printf("same top-1   %.2f%%\n", 100.0 * s.top1_agreement);
}

}  // namespace

void add_kld_command(CLI::App& app) {
  auto args = std::make_shared<KldArgs>();
  CLI::App* cmd = app.add_subcommand(
      "kld", "KL divergence of a run's logits (--quantize, --compute fast, ...) from a reference, and top-1 agreement");
  cmd->add_option("-m,--model", args->model_dir, "Model folder")->required();
  cmd->add_option("--input", args->input,
                  "safetensors file with tensor input_ids, int64 [B, T]; when it also holds float32 logits "
                  "[B, T, V] (as the fixtures' reference.safetensors does), they are the reference")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--reference", args->reference,
                  "safetensors file whose tensor logits [B, T, V] is the reference. Default: the input's logits, "
                  "else this checkpoint's own exact float32 forward (the weights as stored)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--json", args->json, "Print one JSON object instead of the table");
  cmd->add_option("-t,--threads", args->threads, "Worker threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  args->map.compute = "exact";  // the run measured is what the flags ask for; exact unless --compute fast
  args->map.quiet = true;
  add_device_map_options(cmd, args->map);
  cmd->callback([args] { run_kld(*args); });
}

}  // namespace strata::cli
