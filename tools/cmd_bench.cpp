// strata bench: load time, prompt and generation speed with their spread,
// beside the memory-bandwidth bound measured in the same run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/memory_bandwidth.h"
#include "cli_util.h"
#include "commands.h"
#include "core/byte_size.h"
#include "core/clock.h"
#include "device_map_options.h"
#include "io_bandwidth.h"
#include "process_memory.h"
#include "runtime/model_impl.h"
#include "runtime/offload_compute.h"
#include "strata/error.h"
#include "strata/generate.h"
#include "strata/model.h"

namespace strata::cli {
namespace {

struct BenchArgs {
  std::string model_dir;
  int threads = 0;
  int64_t prompt_tokens = 64;
  int64_t gen_tokens = 32;
  int reps = 3;
  int64_t bandwidth_mib = 1024;
  bool json = false;
  bool mmap = false;
  int64_t disk_bandwidth_mib = 4096;
  int64_t batch = 1;
  DeviceMapArgs map;
};

struct Stats {
  double mean = 0, stddev = 0, min = 0, max = 0;
};

Stats stats_of(const std::vector<double>& values) {
  Stats s;
  if (values.empty()) return s;
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  for (double v : values) s.mean += v;
  s.mean /= static_cast<double>(values.size());
  for (double v : values) s.stddev += (v - s.mean) * (v - s.mean);
  s.stddev = values.size() > 1 ? std::sqrt(s.stddev / static_cast<double>(values.size() - 1)) : 0.0;
  return s;
}

// Each device's peak allocation beside its budget, for --json.
nlohmann::json device_peaks(const std::vector<DeviceReport>& devices) {
  nlohmann::json out = nlohmann::json::object();
  for (const DeviceReport& d : devices)
    if (d.name != "disk") out[d.name] = {{"peak", d.peak}, {"budget", std::isinf(d.budget) ? -1.0 : d.budget}};
  return out;
}

// What streaming part of the model costs per token. The disk is sampled
// between repetitions (its bandwidth on a VM swings with what the host has
// cached), the copy link once after the run.
struct Streaming {
  std::vector<double> disk_samples;  // bytes/s, one before each repetition and one after the last
  double copy_bandwidth = 0;
  double copy_ms = 0;
  std::string copy_device;
};

// expert_bytes: routed experts copied per step, besides the streamed blocks.
void measure_copies(Model& model, Streaming& s, double expert_bytes) {
  const double bytes = static_cast<double>(model.copied_bytes_per_pass()) + expert_bytes;
  if (bytes == 0) return;
  for (const BlockPlacement& p : model.impl().executor->placement())
    if (p.exec->is_accelerator()) {
      s.copy_device = p.exec->name();
      s.copy_bandwidth = measure_copy_in(*p.exec, uint64_t{256} << 20, 5);
      break;
    }
  if (s.copy_bandwidth > 0) s.copy_ms = 1000.0 * bytes / s.copy_bandwidth;
}

// Milliseconds reading `bytes` alone takes at a bandwidth.
double disk_ms_at(double bytes, double bytes_per_second) {
  return bytes_per_second > 0 ? 1000.0 * bytes / bytes_per_second : 0.0;
}

// a's counters each combined with b's by op (expert_bytes, a size, is a's).
template <typename Op>
ExpertStats combine(const ExpertStats& a, const ExpertStats& b, Op op) {
  ExpertStats r = a;
  for (auto member : {&ExpertStats::routed, &ExpertStats::routed_bytes, &ExpertStats::missed,
                      &ExpertStats::missed_bytes, &ExpertStats::disk_bytes, &ExpertStats::copied_bytes,
                      &ExpertStats::host_hits, &ExpertStats::host_lookups, &ExpertStats::device_hits,
                      &ExpertStats::device_lookups, &ExpertStats::computed_on_host})
    r.*member = op(a.*member, b.*member);
  r.read_seconds = op(a.read_seconds, b.read_seconds);
  return r;
}

// What routed experts cost between two readings of the counters.
ExpertStats since(const ExpertStats& now, const ExpertStats& before) {
  return combine(now, before, [](auto x, auto y) { return x - y; });
}

double rate(uint64_t hits, uint64_t lookups) {
  return lookups > 0 ? static_cast<double>(hits) / static_cast<double>(lookups) : 0.0;
}

void run_bench(const BenchArgs& args) {
  const PeakAnonSampler memory_sampler;
  DeviceMapArgs map = args.map;
  if (args.mmap) map.device_map = R"({"": "disk"})";
  auto model = Model::load(args.model_dir,
                           model_options(args.model_dir, map, args.threads, args.prompt_tokens + args.gen_tokens, args.batch));
  print_device_map(*model, map);
  const ModelConfig& c = model->config();
  std::fprintf(stderr, "strata bench: %s, %lld layers, %s weights, %d threads, kernels %s, compute %s\n",
               c.architecture.c_str(), static_cast<long long>(c.num_layers),
               format_bytes(model->checkpoint_bytes(), ByteUnits::decimal).c_str(), model->threads(),
               cpu::best_kernels().name, args.map.compute.c_str());

  // Prompt ids: fixed pseudo-random ids, different in every row, so runs are comparable.
  const auto rows = static_cast<size_t>(args.batch);
  std::vector<std::vector<int32_t>> prompts(rows, std::vector<int32_t>(static_cast<size_t>(args.prompt_tokens)));
  for (size_t r = 0; r < rows; ++r)
    for (size_t i = 0; i < prompts[r].size(); ++i)
      prompts[r][i] = static_cast<int32_t>((i * 7919 + r * 104729 + 13) % static_cast<size_t>(c.vocab_size));

  Session session(*model, args.batch, args.prompt_tokens + args.gen_tokens);
  Sampler greedy(SamplingOptions{});
  const size_t vocab = static_cast<size_t>(c.vocab_size);
  // Warm-up: one step over every weight.
  auto start = std::chrono::steady_clock::now();
  std::vector<int32_t> next(rows);
  for (size_t r = 0; r < rows; ++r) next[r] = prompts[r][0];
  session.feed(next, 1);
  const double first_token_seconds = seconds_since(start);

  Streaming streaming;
  const ExpertStore& experts = *model->impl().experts;
  const uint64_t disk_sample_limit = static_cast<uint64_t>(args.disk_bandwidth_mib) << 20;
  // The bytes a step streams: the disk tier's blocks, and the experts read last.
  auto sample_disk = [&] {
    std::vector<WeightStore::DiskRange> ranges = model->impl().weights->disk_ranges();
    for (auto& r : experts.recent_reads()) ranges.push_back(std::move(r));
    if (!ranges.empty()) streaming.disk_samples.push_back(measure_direct_read(ranges, disk_sample_limit));
  };
  // Per repetition, the routed experts' costs during generation.
  std::vector<ExpertStats> gen_experts;
  std::vector<double> prompt_tps, gen_ms, disk_bound_ms;
  double reader_busy_seconds = 0, gen_seconds = 0;
  for (int rep = 0; rep < args.reps; ++rep) {
    session.reset();
    sample_disk();
    start = std::chrono::steady_clock::now();
    auto logits = session.feed_prompts(prompts);
    prompt_tps.push_back(static_cast<double>(args.prompt_tokens * args.batch) / seconds_since(start));
    for (size_t r = 0; r < rows; ++r) next[r] = greedy.pick(logits.subspan(r * vocab, vocab));
    const Prefetcher::Totals reads_before = model->impl().weights->stream_totals();
    const ExpertStats experts_before = model->expert_stats();
    start = std::chrono::steady_clock::now();
    for (int64_t t = 0; t < args.gen_tokens; ++t) {
      logits = session.feed(next, 1);
      for (size_t r = 0; r < rows; ++r) next[r] = greedy.pick(logits.subspan(r * vocab, vocab));
    }
    const double seconds = seconds_since(start);
    gen_seconds += seconds;
    gen_experts.push_back(since(model->expert_stats(), experts_before));
    reader_busy_seconds += model->impl().weights->stream_totals().read_seconds - reads_before.read_seconds +
                           gen_experts.back().read_seconds;
    gen_ms.push_back(1000.0 * seconds / static_cast<double>(args.gen_tokens));
    std::fprintf(stderr, "  rep %d: prompt %.1f tok/s, generation %.1f ms per step of %lld rows\n", rep + 1,
                 prompt_tps.back(), gen_ms.back(), static_cast<long long>(args.batch));
  }
  sample_disk();
  // Each repetition's disk bound: a step's bytes (the disk tier's blocks and
  // the experts it read) at the mean of the bandwidths sampled just before
  // and just after it.
  const double steps = static_cast<double>(args.gen_tokens);
  for (size_t rep = 0; rep + 1 < streaming.disk_samples.size(); ++rep) {
    const double step_bytes = static_cast<double>(model->disk_bytes_per_pass()) +
                              static_cast<double>(gen_experts[rep].disk_bytes) / steps;
    disk_bound_ms.push_back((disk_ms_at(step_bytes, streaming.disk_samples[rep]) +
                             disk_ms_at(step_bytes, streaming.disk_samples[rep + 1])) /
                            2);
    std::fprintf(stderr, "  rep %zu: disk alone %.2f then %.2f GB/s -> disk bound %.1f ms per step\n", rep + 1,
                 streaming.disk_samples[rep] / 1e9, streaming.disk_samples[rep + 1] / 1e9, disk_bound_ms.back());
  }

  // The run's own peak, before the measurements below allocate their buffers.
  const uint64_t run_peak_anon = memory_sampler.peak();
  const std::vector<DeviceReport> run_devices = model->devices();
  // The bound uses the read rate of the weights' own memory (see
  // memory_bandwidth.h); a fresh buffer's rate is shown beside it.
  const auto& resident = model->impl().weights->resident_host_ranges();
  const auto buffer_bandwidth = cpu::measure_read_bandwidth(*model->impl().pool,
                                                            static_cast<size_t>(args.bandwidth_mib) << 20, 5);
  // With nothing resident in RAM (all on the disk tier) the weights' own
  // memory cannot be measured; the fresh buffer stands in.
  const auto bandwidth =
      resident.empty() ? buffer_bandwidth : cpu::measure_read_bandwidth(*model->impl().pool, resident, 5);
  const double bytes_per_token = static_cast<double>(model->weight_bytes_per_token());
  // Weights a GPU computes on are read from its own memory, far faster than
  // the bounds here: only the host's share counts against host bandwidth.
  const double host_bytes_per_token = static_cast<double>(model->host_computed_bytes_per_token());
  const double memory_ms = 1000.0 * host_bytes_per_token / bandwidth.best_bytes_per_second;
  ExpertStats moe;  // generation's, all repetitions
  for (const ExpertStats& e : gen_experts) moe = combine(moe, e, [](auto x, auto y) { return x + y; });
  const double gen_steps = steps * static_cast<double>(args.reps);
  const double generated = gen_steps * static_cast<double>(args.batch);
  const double expert_copied_per_step = static_cast<double>(moe.copied_bytes) / gen_steps;
  measure_copies(*model, streaming, expert_copied_per_step);
  const uint64_t staging_bytes = model->impl().weights->host_staging_bytes();
  const Stats disk = stats_of(disk_bound_ms);
  const Stats disk_bandwidth = stats_of(streaming.disk_samples);
  const double reader_busy = gen_seconds > 0 ? reader_busy_seconds / gen_seconds : 0.0;
  // Reading from RAM, from disk and copying to devices overlap: a token can
  // go no faster than the slowest of the three.
  const double bound_ms = std::max({memory_ms, disk.mean, streaming.copy_ms});
  // Per step and per generated token (a step generates one token per row).
  const double disk_step = static_cast<double>(model->disk_bytes_per_pass()) + static_cast<double>(moe.disk_bytes) / gen_steps;
  const double copied_step = static_cast<double>(model->copied_bytes_per_pass()) + expert_copied_per_step;
  const double batch = static_cast<double>(args.batch);
  const Stats p = stats_of(prompt_tps);
  const Stats g = stats_of(gen_ms);
  const double ratio = bound_ms / g.mean;

  if (args.json) {
    nlohmann::json out{{"model", args.model_dir},
                       {"threads", model->threads()},
                       {"kernels", cpu::best_kernels().name},
                       {"compute", args.map.compute},
                       {"load_seconds", model->load_seconds()},
                       {"first_token_seconds", first_token_seconds},
                       {"prompt_tokens", args.prompt_tokens},
                       {"prompt_tok_per_s", {{"mean", p.mean}, {"stddev", p.stddev}, {"min", p.min}, {"max", p.max}}},
                       {"gen_tokens", args.gen_tokens},
                       {"batch", args.batch},
                       {"gen_ms_per_tok", {{"mean", g.mean}, {"stddev", g.stddev}, {"min", g.min}, {"max", g.max}}},
                       {"gen_tok_per_s_batch", 1000.0 * static_cast<double>(args.batch) / g.mean},
                       {"weight_bytes_per_token", bytes_per_token},
                       {"host_computed_bytes_per_token", host_bytes_per_token},
                       {"disk_bytes_per_step", disk_step},
                       {"disk_bytes_per_token", disk_step / batch},
                       {"disk_nonexpert_bytes_per_token", static_cast<double>(model->disk_bytes_per_pass()) / batch},
                       {"disk_expert_bytes_per_token", static_cast<double>(moe.disk_bytes) / generated},
                       {"experts_routed_per_token", static_cast<double>(moe.routed) / generated},
                       {"expert_bytes_routed_per_token", static_cast<double>(moe.routed_bytes) / generated},
                       {"expert_bytes_missed_per_token", static_cast<double>(moe.missed_bytes) / generated},
                       {"experts_computed_on_host_per_token", static_cast<double>(moe.computed_on_host) / generated},
                       {"expert_cache_hit_rate",
                        rate(moe.host_hits + moe.device_hits, moe.host_lookups + moe.device_lookups)},
                       {"expert_cache_hit_rate_by_tier",
                        {{"host", rate(moe.host_hits, moe.host_lookups)},
                         {"device", rate(moe.device_hits, moe.device_lookups)}}},
                       {"copied_bytes_per_step", copied_step},
                       {"copied_bytes_per_token", copied_step / batch},
                       {"disk_read_bandwidth_bytes_per_s", streaming.disk_samples},
                       {"disk_reader_busy_fraction", reader_busy},
                       {"copy_bandwidth_bytes_per_s", streaming.copy_bandwidth},
                       {"streaming_rate_bytes_per_s", copied_step / (g.mean / 1000.0)},
                       {"memory_bound_ms_per_tok", memory_ms},
                       {"disk_bound_ms_per_tok", disk.mean},
                       {"copy_bound_ms_per_tok", streaming.copy_ms},
                       {"device_map", nlohmann::json::parse(model->device_map_json())},
                       {"peak_rss_anon_bytes", run_peak_anon},
                       {"device_peaks", device_peaks(run_devices)},
                       {"disk_read_slot_bytes", staging_bytes},
                       {"weights_read_bandwidth_bytes_per_s", bandwidth.best_bytes_per_second},
                       {"buffer_read_bandwidth_bytes_per_s", buffer_bandwidth.best_bytes_per_second},
                       {"bound_ms_per_tok", bound_ms},
                       {"bound_over_measured", ratio}};
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  std::printf("load                 %.3f s (first token, cold: %.3f s)\n", model->load_seconds(), first_token_seconds);
  std::printf("prompt (%lld tok)     %.1f tok/s  (sd %.1f, min %.1f, max %.1f, %d reps)\n",
              static_cast<long long>(args.prompt_tokens), p.mean, p.stddev, p.min, p.max, args.reps);
  std::printf("generation (%lld tok) %.2f ms per step = %.2f tok/s for the batch of %lld, %.2f ms per generated token"
              "  (sd %.2f ms, min %.2f, max %.2f, %d reps)\n",
              static_cast<long long>(args.gen_tokens), g.mean, 1000.0 * static_cast<double>(args.batch) / g.mean,
              static_cast<long long>(args.batch), g.mean / static_cast<double>(args.batch), g.stddev, g.min, g.max,
              args.reps);
  const auto bytes = [](double b) { return format_bytes(b, ByteUnits::decimal); };
  std::printf("weights per token    %s (%s of them computed from host memory); per step %s read from disk, %s "
              "copied to devices\n",
              bytes(bytes_per_token).c_str(), bytes(host_bytes_per_token).c_str(), bytes(disk_step).c_str(),
              bytes(copied_step).c_str());
  if (moe.routed > 0) {
    std::printf("experts per token    %.1f routed (%s), %s missed every cache; disk %s of experts + %s of the rest\n",
                static_cast<double>(moe.routed) / generated, bytes(static_cast<double>(moe.routed_bytes) / generated).c_str(),
                bytes(static_cast<double>(moe.missed_bytes) / generated).c_str(),
                bytes(static_cast<double>(moe.disk_bytes) / generated).c_str(),
                bytes(static_cast<double>(model->disk_bytes_per_pass()) / batch).c_str());
    std::printf("expert caches        hit rate %.1f%% in RAM (%llu lookups), %.1f%% on accelerators (%llu lookups)\n",
                100.0 * rate(moe.host_hits, moe.host_lookups), static_cast<unsigned long long>(moe.host_lookups),
                100.0 * rate(moe.device_hits, moe.device_lookups), static_cast<unsigned long long>(moe.device_lookups));
    if (moe.computed_on_host > 0)
      std::printf("experts on the CPU   %.1f per token of accelerator layers computed where they lie in RAM\n",
                  static_cast<double>(moe.computed_on_host) / generated);
  }
  std::printf("read bandwidth       %.2f GB/s best, %.2f GB/s mean, reading the weights (%d threads, %s)\n",
              bandwidth.best_bytes_per_second / 1e9, bandwidth.mean_bytes_per_second / 1e9, model->threads(),
              format_bytes(bandwidth.buffer_bytes, ByteUnits::decimal).c_str());
  std::printf("                     %.2f GB/s best reading a fresh %s buffer (for reference)\n",
              buffer_bandwidth.best_bytes_per_second / 1e9,
              format_bytes(buffer_bandwidth.buffer_bytes, ByteUnits::decimal).c_str());
  if (!streaming.disk_samples.empty()) {
    std::printf("disk read bandwidth  %.2f GB/s mean (%.2f-%.2f over %zu samples between the repetitions: O_DIRECT,\n"
                "                     requests of up to 64 MiB over the bytes one step streams)\n",
                disk_bandwidth.mean / 1e9, disk_bandwidth.min / 1e9, disk_bandwidth.max / 1e9,
                streaming.disk_samples.size());
    std::printf("disk reader          busy %.0f%% of the generation time\n", 100.0 * reader_busy);
  }
  if (streaming.copy_bandwidth > 0) {
    std::printf("copy bandwidth       %.2f GB/s (host -> %s, best of 5 copies of 256 MiB from page-locked memory "
                "where the device pins it)\n",
                streaming.copy_bandwidth / 1e9, streaming.copy_device.c_str());
    const double streamed = copied_step / (g.mean / 1000.0);
    std::printf("streaming rate       %.2f GB/s copied per step's time = %.0f%% of the copy bandwidth\n",
                streamed / 1e9, 100.0 * streamed / streaming.copy_bandwidth);
  }
  std::printf("bound                %.2f ms/tok = max(memory %.2f, disk %.2f, copies %.2f)\n", bound_ms, memory_ms,
              disk.mean, streaming.copy_ms);
  std::printf("bound / measured     %.2f  (1.00 = at the limit of the slowest of memory, disk and copies)\n", ratio);
  for (const DeviceReport& d : run_devices)
    if (d.name != "disk" && !std::isinf(d.budget))
      std::printf("memory %-13s peak %s of a budget of %s (%s)%s\n", d.name.c_str(),
                  format_bytes(static_cast<double>(d.peak)).c_str(), format_bytes(d.budget).c_str(),
                  d.peak <= d.budget ? "within" : "OVER",
                  d.name == "cpu" && staging_bytes > 0
                      ? (", which includes " + format_bytes(static_cast<double>(staging_bytes)) +
                         " of disk read slots")
                            .c_str()
                      : "");
  std::printf("memory process       peak anonymous memory %s (sampled every 10 ms)\n",
              format_bytes(static_cast<double>(run_peak_anon)).c_str());
  print_memory_peaks(run_devices, map, run_peak_anon);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure load time, prompt and generation speed against the memory-bandwidth bound");
  cmd->add_option("-m,--model", args->model_dir, "Model folder")->required();
  cmd->add_option("-t,--threads", args->threads, "Worker threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--prompt-tokens", args->prompt_tokens, "Prompt length of each repetition")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--gen-tokens", args->gen_tokens, "Tokens generated per repetition")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--reps", args->reps, "Repetitions (after one warm-up token)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--bandwidth-buffer-mib", args->bandwidth_mib, "Size of the fresh buffer whose read rate is shown for reference")
      ->capture_default_str()
      ->check(CLI::Range(64, 65536));
  cmd->add_option("--disk-bandwidth-mib", args->disk_bandwidth_mib,
                  "At most this much of one step's disk reads is read alone, before each repetition and after the last, "
                  "to measure the disk's direct-read bandwidth")
      ->capture_default_str()
      ->check(CLI::Range(64, 1 << 20));
  cmd->add_option("--batch", args->batch,
                  "Sequences decoded together: each step is one pass over the weights for all of them")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_flag("--json", args->json, "Print the figures as one JSON object");
  cmd->add_flag("--mmap", args->mmap,
                "Keep every weight on the disk tier, read ahead from the files with direct I/O (same as "
                "--device-map '{\"\": \"disk\"}')");
  add_device_map_options(cmd, args->map);
  cmd->callback([args] { run_bench(*args); });
}

}  // namespace strata::cli
