// strata generate: text generation with streaming output and a timing summary.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli_util.h"
#include "commands.h"
#include "core/byte_size.h"
#include "device_map_options.h"
#include "generate_scheduled.h"
#include "process_memory.h"
#include "strata/error.h"
#include "strata/generate.h"
#include "strata/model.h"
#include "strata/tokenizer.h"

namespace strata::cli {
namespace {

struct GenerateArgs {
  std::string model_dir;
  std::optional<std::string> prompt;
  std::string prompt_ids;
  int64_t max_new = 128;
  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<uint64_t> seed;
  int threads = 0;
  bool json = false;
  bool no_special = false;
  std::string prompts_file;
  int64_t batch = 1;
  DeviceMapArgs map;
};

// Sampling settings: the flags, else generation_config.json, else greedy.
SamplingOptions sampling_from(const GenerateArgs& args, const GenerationConfig& gen) {
  SamplingOptions s;
  s.temperature = args.temperature.value_or(gen.do_sample ? gen.temperature : 0.0);
  s.top_k = args.top_k.value_or(gen.do_sample ? gen.top_k : 0);
  s.top_p = args.top_p.value_or(gen.do_sample ? gen.top_p : 1.0);
  s.seed = args.seed.value_or(static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()));
  return s;
}

void run_generate(const GenerateArgs& args) {
  const PeakAnonSampler memory_sampler;
  std::unique_ptr<Tokenizer> tokenizer;
  if (std::filesystem::exists(std::filesystem::path(args.model_dir) / "tokenizer.json"))
    tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_dir(args.model_dir));

  if (!args.prompts_file.empty()) {
    if (args.prompt || !args.prompt_ids.empty()) throw Error("give either --prompts or -p/--prompt-ids, not both");
    if (!tokenizer)
      throw Error("--prompts needs the model's tokenizer.json", args.model_dir, "", "this model has none");
    const auto prompts = read_prompt_lines(args.prompts_file);
    const int64_t batch = std::min<int64_t>(args.batch, static_cast<int64_t>(prompts.size()));
    size_t longest = 0;
    for (const auto& p : prompts) longest = std::max(longest, tokenizer->encode(p, !args.no_special).size());
    const int64_t needed = static_cast<int64_t>(longest) + args.max_new;  // a scheduler slot's context
    auto model = Model::load(args.model_dir, model_options(args.model_dir, args.map, args.threads, needed, batch));
    print_device_map(*model, args.map);
    GenerateOptions options;
    options.max_new_tokens = args.max_new;
    options.sampling = sampling_from(args, model->generation_config());
    options.eos_ids = eos_ids_of(*model, tokenizer.get());
    run_prompt_batches(*model, *tokenizer, prompts, !args.no_special, batch, options, args.json);
    print_memory_peaks(model->devices(), args.map, memory_sampler.peak());
    return;
  }

  std::vector<int32_t> prompt;
  if (!args.prompt_ids.empty()) {
    if (args.prompt) throw Error("give either -p or --prompt-ids, not both");
    prompt = parse_id_list(args.prompt_ids);
  } else {
    if (!tokenizer)
      throw Error("this model has no tokenizer.json", args.model_dir, "", "give the prompt as --prompt-ids 1,403,407");
    const std::string text = args.prompt ? *args.prompt : read_stdin();
    prompt = tokenizer->encode(text, !args.no_special);
  }
  if (prompt.empty()) throw Error("the prompt is empty", "", "", "give at least one token, e.g. BOS");

  const int64_t needed = static_cast<int64_t>(prompt.size()) + args.max_new;  // the scheduler slot's context
  auto model = Model::load(args.model_dir, model_options(args.model_dir, args.map, args.threads, needed, 1));
  print_device_map(*model, args.map);

  if (needed > model->config().max_position_embeddings)
    std::fprintf(stderr, "strata: warning: %lld tokens exceed the model's max_position_embeddings (%lld); "
                 "quality may degrade past it\n", static_cast<long long>(needed),
                 static_cast<long long>(model->config().max_position_embeddings));

  GenerateOptions options;
  options.max_new_tokens = args.max_new;
  options.sampling = sampling_from(args, model->generation_config());
  options.eos_ids = eos_ids_of(*model, tokenizer.get());

  // Stream the prompt and each new token through one decoder, so the output
  // is exactly decode(prompt + new ids).
  std::optional<Tokenizer::StreamDecoder> stream;
  if (tokenizer && !args.json) {
    stream.emplace(*tokenizer, /*skip_special=*/true);
    for (const int32_t id : prompt) write_text(stream->push(id));
    std::fflush(stdout);
  }
  auto on_token = [&](int32_t id) {
    if (args.json) return;
    if (stream) {
      write_text(stream->push(id));
    } else {
      std::printf("%d ", id);
    }
    std::fflush(stdout);
  };
  const GenerateResult result = generate_scheduled(*model, prompt, options, on_token);

  if (args.json) {
    nlohmann::json out{{"prompt_ids", prompt}, {"new_ids", result.new_ids}, {"stopped_on_eos", result.stopped_on_eos}};
    if (tokenizer) {
      std::vector<int32_t> all(prompt);
      all.insert(all.end(), result.new_ids.begin(), result.new_ids.end());
      out["text"] = tokenizer->decode(all, true);
      out["new_text"] = tokenizer->decode(result.new_ids, true);
    }
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    if (stream) write_text(stream->flush());
    std::printf("\n");
  }
  std::fflush(stdout);

  const double decode_steps = static_cast<double>(result.new_ids.size() > 0 ? result.new_ids.size() - 1 : 0);
  std::fprintf(stderr,
               "strata: load %.2f s | prompt %lld tok, %.1f tok/s | generation %zu tok, %.2f tok/s (%.1f ms/tok) | "
               "%d threads | seed %llu%s\n",
               model->load_seconds(), static_cast<long long>(result.prompt_tokens),
               result.prompt_seconds > 0 ? static_cast<double>(result.prompt_tokens) / result.prompt_seconds : 0.0,
               result.new_ids.size(), result.generate_seconds > 0 ? decode_steps / result.generate_seconds : 0.0,
               decode_steps > 0 ? 1000.0 * result.generate_seconds / decode_steps : 0.0, model->threads(),
               static_cast<unsigned long long>(options.sampling.seed), result.stopped_on_eos ? " | stopped at EOS" : "");
  // A mixture of experts: what its routed experts cost over the whole run.
  if (const ExpertStats e = model->expert_stats(); e.routed > 0) {
    const double tokens = static_cast<double>(result.prompt_tokens) + static_cast<double>(result.new_ids.size());
    const uint64_t lookups = e.host_lookups + e.device_lookups;
    std::fprintf(stderr, "strata: experts %.1f routed per token, %.0f%% of them missed every cache (%s read from disk, "
                         "%s copied to accelerators, %.0f%% cache hits, %.1f per token computed by the CPU for an "
                         "accelerator)\n",
                 static_cast<double>(e.routed) / tokens, 100.0 * static_cast<double>(e.missed) / static_cast<double>(e.routed),
                 format_bytes(static_cast<double>(e.disk_bytes), ByteUnits::decimal).c_str(),
                 format_bytes(static_cast<double>(e.copied_bytes), ByteUnits::decimal).c_str(),
                 lookups > 0 ? 100.0 * static_cast<double>(e.host_hits + e.device_hits) / static_cast<double>(lookups)
                             : 0.0,
                 static_cast<double>(e.computed_on_host) / tokens);
  }
  print_memory_peaks(model->devices(), args.map, memory_sampler.peak());
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt, streaming tokens as they come");
  cmd->add_option("-m,--model", args->model_dir, "Model folder (config.json, *.safetensors, tokenizer.json)")
      ->required();
  cmd->add_option("-p,--prompt", args->prompt, "Prompt text; read from standard input when neither -p nor --prompt-ids is given");
  cmd->add_option("--prompt-ids", args->prompt_ids, "Prompt as comma-separated token ids, e.g. 1,403,407 (for models without a tokenizer)");
  cmd->add_option("-n,--max-new-tokens", args->max_new, "Stop after this many new tokens (or at EOS)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--temp", args->temperature, "Sampling temperature; 0 means greedy. Default: generation_config.json, else greedy")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", args->top_k, "Sample only among the K most likely tokens (0 = off)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", args->top_p, "Sample only among the most likely tokens whose probability reaches P (1 = off)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", args->seed, "Random seed for sampling (default: from the clock, printed at the end)");
  cmd->add_option("-t,--threads", args->threads, "Worker threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", args->json, "Print one JSON object {prompt_ids, new_ids, text} at the end instead of streaming text");
  cmd->add_flag("--no-special", args->no_special, "Do not add BOS/EOS when encoding the prompt text");
  cmd->add_option("--prompts", args->prompts_file,
                  "File with one prompt per line, generated in --batch slots of continuous batching (needs "
                  "tokenizer.json); prints each result in order (one JSON object per line with --json) and the "
                  "throughput of the whole batch")
      ->check(CLI::ExistingFile);
  cmd->add_option("--batch", args->batch,
                  "With --prompts: prompts decoded together (a new one starts when one ends); each step is one pass "
                  "over the weights for all of them")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  add_device_map_options(cmd, args->map);
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace strata::cli
