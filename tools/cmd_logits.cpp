// strata logits: full-forward logits of given input ids, for fidelity checks.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "device_map_options.h"
#include "logits_io.h"
#include "process_memory.h"
#include "format/safetensors.h"
#include "strata/error.h"
#include "strata/model.h"

namespace strata::cli {
namespace {

struct LogitsArgs {
  std::string model_dir;
  std::string input;
  std::string output;
  int threads = 0;
  DeviceMapArgs map;
};

void run_logits(const LogitsArgs& args) {
  const PeakAnonSampler memory_sampler;
  int64_t rows = 0, tokens = 0;
  const auto ids = read_input_ids(args.input, rows, tokens);
  ModelOptions options = model_options(args.model_dir, args.map, args.threads, tokens, 1);
  options.all_logits = true;
  auto model = Model::load(args.model_dir, options);
  print_device_map(*model, args.map);
  const int64_t vocab = model->config().vocab_size;
  const std::vector<float> logits = full_forward_logits(*model, ids, rows, tokens);
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(logits.data()), logits.size() * sizeof(float));
  write_safetensors(args.output, {{"logits", DType::F32, {rows, tokens, vocab}, bytes}});
  std::fprintf(stderr, "strata: wrote logits [%lld, %lld, %lld] to %s\n", static_cast<long long>(rows),
               static_cast<long long>(tokens), static_cast<long long>(vocab), args.output.c_str());
  print_memory_peaks(model->devices(), args.map, memory_sampler.peak());
}

}  // namespace

void add_logits_command(CLI::App& app) {
  auto args = std::make_shared<LogitsArgs>();
  CLI::App* cmd = app.add_subcommand("logits", "Write the logits of a full forward over given input ids (fidelity checks)");
  cmd->add_option("-m,--model", args->model_dir, "Model folder")->required();
  cmd->add_option("--input", args->input, "safetensors file with tensor input_ids, int64 [B, T]")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", args->output, "safetensors file to write, with tensor logits, float32 [B, T, V]")->required();
  cmd->add_option("-t,--threads", args->threads, "Worker threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  args->map.compute = "exact";  // fidelity checks want transformers' float32 math
  add_device_map_options(cmd, args->map);
  cmd->callback([args] { run_logits(*args); });
}

}  // namespace strata::cli
