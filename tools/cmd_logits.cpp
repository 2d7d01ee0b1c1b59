// strata logits: full-forward logits of given input ids, for fidelity checks.
#include <cstdio>
#include <cstring>
#include <memory>

#include "commands.h"
#include "device_map_options.h"
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

// Reads input_ids (I64 or I32, [B, T] or [T]) as int32 rows.
std::vector<int32_t> read_input_ids(const std::string& path, int64_t& rows, int64_t& tokens) {
  SafetensorsFile file(path);
  const TensorInfo* info = nullptr;
  for (const auto& t : file.tensors())
    if (t.name == "input_ids") info = &t;
  if (!info) throw Error("no tensor named input_ids", path, "", "the input must hold int64 input_ids [B, T]");
  if (info->dtype != DType::I64 && info->dtype != DType::I32)
    throw Error("input_ids must be I64 or I32, not " + std::string(dtype_name(info->dtype)), path, "input_ids");
  if (info->shape.size() == 2) {
    rows = info->shape[0];
    tokens = info->shape[1];
  } else if (info->shape.size() == 1) {
    rows = 1;
    tokens = info->shape[0];
  } else {
    throw Error("input_ids must have shape [B, T] or [T]", path, "input_ids");
  }
  if (rows <= 0 || tokens <= 0) throw Error("input_ids is empty", path, "input_ids");
  const auto bytes = file.data(*info);
  std::vector<int32_t> ids(static_cast<size_t>(rows * tokens));
  for (size_t i = 0; i < ids.size(); ++i) {
    int64_t v = 0;
    if (info->dtype == DType::I64) {
      std::memcpy(&v, bytes.data() + i * 8, 8);
    } else {
      int32_t v32 = 0;
      std::memcpy(&v32, bytes.data() + i * 4, 4);
      v = v32;
    }
    if (v < 0 || v > INT32_MAX) throw Error("token id " + std::to_string(v) + " is out of range", path, "input_ids");
    ids[i] = static_cast<int32_t>(v);
  }
  return ids;
}

void run_logits(const LogitsArgs& args) {
  const PeakAnonSampler memory_sampler;
  int64_t rows = 0, tokens = 0;
  const auto ids = read_input_ids(args.input, rows, tokens);
  ModelOptions options = model_options(args.model_dir, args.map, args.threads, tokens, 1);
  options.all_logits = true;
  auto model = Model::load(args.model_dir, options);
  print_device_map(*model, args.map);
  const int64_t vocab = model->config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(rows * tokens * vocab));
  // One full forward per row, as transformers computes model(input_ids).
  for (int64_t r = 0; r < rows; ++r) {
    const auto row = model->logits(std::span<const int32_t>(ids).subspan(static_cast<size_t>(r * tokens),
                                                                          static_cast<size_t>(tokens)),
                                   1, tokens);
    std::copy(row.begin(), row.end(), logits.begin() + r * tokens * vocab);
  }
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
