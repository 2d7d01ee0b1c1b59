// Loading a checkpoint and running it: the public entry points of strata.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "strata/dtype.h"
#include "strata/model_config.h"
#include "strata/step_segment.h"

namespace strata {

struct ModelOptions {
  int threads = 0;  // 0: one per hardware core
  // Where modules go: "auto" (strata's planner, which also budgets the KV
  // cache, activations and staging), "sequential", "balanced",
  // "balanced_low_0" (Accelerate's), a device map as JSON text
  // ({"model.layers.0": 0, "lm_head": "cpu", "": "disk"}), or a file holding one.
  std::string device_map = "auto";
  // Budgets per device, "0=8GiB,cpu=30GiB,disk"; empty: from the devices
  // (each accelerator's capacity, available RAM, and the disk).
  std::string max_memory;
  // Where disk-tier weights that need converting are written once; empty:
  // loading fails if any does (the `strata` command defaults it to a folder
  // under ~/.cache/strata/offload named after the model).
  std::filesystem::path offload_folder;
  // Whether to use the GPUs the CUDA backend finds (the `strata` command
  // turns them off with STRATA_NO_GPU=1, the test suite by default).
  bool gpus = true;
  // Simulated accelerators, e.g. "2x64MiB"; empty: none. They replace the GPUs.
  std::string sim_devices;
  // The device offloaded modules run on ("sim:0"); empty: the planner's main
  // accelerator, else the first accelerator the map names, else the CPU.
  std::string main_device;
  // With a GPU and no main_device: whether modules offloaded to RAM or disk
  // run on the GPU (stream), on the CPU (local), or whichever measures
  // faster at start-up for this batch (auto). The same for the routed
  // experts of layers on an accelerator that lie in RAM or on disk, decided
  // per expert and step by how many tokens route to it (auto).
  std::string offload_compute = "auto";
  // With offload_compute auto: instead of the measured threshold, such an
  // expert routed to at most this many tokens runs on the CPU (-1: none);
  // for tuning and tests, and the only way sim devices take the CPU path
  // under auto.
  std::optional<int64_t> expert_local_tokens;
  // The math of matrix products on the CPU: "exact" (weights widened to
  // f32: the fidelity guarantees) or "fast" (BF16 weights times activations
  // rounded to bf16, f32 sums; see README, "Compute modes").
  std::string compute = "exact";
  // Compute dtype of the weight matrices; nullopt: as stored.
  std::optional<DType> dtype;
  // Quantize a float checkpoint's matrices at load: "int8" or "int4"
  // (groups of 32, a float16 scale each), "int8-rtn"/"int4-rtn" for plain
  // round-to-nearest; empty: as stored. Done once into the offload folder
  // and reused. The embeddings, the head and routers stay as stored unless
  // quantize_all. Pre-quantized matrices (GPTQ, ...) always stay as stored.
  std::string quantize;
  bool quantize_all = false;
  // What the plan budgets for: context tokens per row (0: the smaller of
  // max_position_embeddings and 2048, as strata map assumes) and rows.
  int64_t ctx = 0;
  int64_t batch = 1;
  // The sessions will ask for the logits of every position (strata logits),
  // which takes more activation memory than the last position's.
  bool all_logits = false;
  // Mixture-of-experts models: routed experts each expert cache holds (RAM
  // for experts read from disk, an accelerator for experts copied to it);
  // 0: twice the experts one token routes per layer.
  int64_t expert_cache = 0;
  // Their replacement policy: "lfu" (least often used, counts halving as
  // they age; ties least recent), or "lru" (least recently used). lfu hit
  // more often in bench/README.md's measurements.
  std::string expert_cache_policy = "lfu";
  // Called now and then while the weights are put in memory (bytes placed,
  // of the bytes to place), from the loading thread; empty: silent.
  std::function<void(uint64_t placed, uint64_t total)> load_progress;
  // The same while the offload folder is written (tensors converted or
  // quantized; source bytes done, of the total); empty: silent.
  std::function<void(uint64_t done, uint64_t total)> convert_progress;
  // Called with a one-line message when something is wrong but the model
  // still runs (a weight that holds NaN or Inf); empty: silent. The library
  // prints nothing itself.
  std::function<void(const std::string& message)> warning;
};

// One device after loading, for reports.
struct DeviceReport {
  std::string name;       // "cpu", "sim:0", "disk"
  double budget = 0;      // bytes the plan could use there (+infinity: unlimited)
  uint64_t capacity = 0;  // the device's hard limit (UINT64_MAX: none)
  uint64_t in_use = 0;    // bytes strata holds there now
  uint64_t peak = 0;      // the most it ever held
  std::vector<std::string> modules;  // what the map places there, runs of layers collapsed ("model.layers.0-9")
  double weight_bytes = 0;           // planned bytes of those modules' weights
  double planned_bytes = 0;          // the plan's whole bill here: weights, KV cache, activations, staging
  bool runs_offloaded = false;       // it executes the modules kept on cpu/disk
};

// What the routed experts of a mixture-of-experts model cost since loading.
// An expert is routed once per sparse layer and step when any token of the
// step picks it; it is missed when it had to come from its tier (read from
// disk, or copied from RAM to an accelerator) because no cache held it.
struct ExpertStats {
  uint64_t expert_bytes = 0;  // one expert's weights
  uint64_t routed = 0, routed_bytes = 0;
  uint64_t missed = 0, missed_bytes = 0;
  uint64_t disk_bytes = 0;    // read from disk for experts
  uint64_t copied_bytes = 0;  // experts copied to accelerators
  uint64_t host_hits = 0, host_lookups = 0;      // RAM cache of disk experts
  uint64_t device_hits = 0, device_lookups = 0;  // accelerator caches
  // Experts of layers on an accelerator that the CPU computed where they lie
  // in RAM instead of copying them over (--offload-compute).
  uint64_t computed_on_host = 0;
  double read_seconds = 0;    // wall time of the expert reads
};

class Session;

// A loaded model: config, weights on their tiers, the compute context.
// Thread-safety: one thread at a time runs a model and its sessions.
class Model {
 public:
  // Reads DIR/config.json, generation_config.json and the safetensors
  // headers, plans the device map, checks that every device can hold its
  // share (before reading any weight), then loads. Throws strata::Error for
  // anything missing, malformed, unsupported or too big for the budgets.
  static std::unique_ptr<Model> load(const std::filesystem::path& dir, const ModelOptions& options = {});
  ~Model();

  const ModelConfig& config() const;
  const GenerationConfig& generation_config() const;
  const std::filesystem::path& dir() const;
  int threads() const;
  double load_seconds() const;
  // Bytes of weights one decode step reads; of those, the bytes read from
  // host memory by the blocks the CPU computes (also on sim devices, whose
  // memory is host memory): what the host's memory bandwidth bounds.
  uint64_t weight_bytes_per_token() const;
  uint64_t host_computed_bytes_per_token() const;
  uint64_t checkpoint_bytes() const;
  // Bytes one forward pass reads from the disk tier, and copies to
  // accelerators: what streaming costs per decode step.
  uint64_t disk_bytes_per_pass() const;
  uint64_t copied_bytes_per_pass() const;
  // The device map in Accelerate's JSON form, and each device's share and counters.
  std::string device_map_json() const;
  std::vector<DeviceReport> devices() const;
  // How the map was made ("auto", "sequential", "user map"), and the offload
  // folder in use (empty when none was needed).
  const std::string& plan_source() const;
  // How --offload-compute auto chose where offloaded modules run, and the
  // rates it measured; empty when it did not choose.
  const std::string& offload_choice() const;
  // "fast: bf16 products (AVX512-BF16)", for the start line.
  std::string compute_description() const;
  // The same for the routed experts of accelerator layers that lie in RAM.
  const std::string& expert_compute_choice() const;
  std::filesystem::path offload_folder() const;
  // Zero for a dense model.
  ExpertStats expert_stats() const;

  // Logits of one no-cache forward over `rows` sequences of `tokens` ids each
  // (row-major), shape [rows, tokens, vocab].
  std::vector<float> logits(std::span<const int32_t> ids, int64_t rows, int64_t tokens);

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Incremental decoding of `rows` sequences, with a KV cache allocated once
// for `capacity` tokens per row on the devices that run each layer. Rows
// advance together (feed) or each on its own (feed_segments).
class Session {
 public:
  // all_positions: the session will be asked for the logits of every position.
  Session(Model& model, int64_t rows, int64_t capacity, bool all_positions = false);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Appends `tokens` ids to every row (ids is rows x tokens, row-major) and
  // returns logits: [rows, vocab] for each row's last position, or
  // [rows, tokens, vocab] with all_positions. Valid until the next call.
  std::span<const float> feed(std::span<const int32_t> ids, int64_t tokens, bool all_positions = false);

  // Starts every row with its own prompt (rows() prompts, any lengths): they
  // are left-padded to the longest, and each row's positions and attention
  // begin at its first real token, so every row computes exactly what it
  // would alone. Returns each row's last-position logits, [rows, vocab].
  // The session must be empty (new or reset).
  std::span<const float> feed_prompts(const std::vector<std::vector<int32_t>>& prompts);

  // One ragged step: segment i appends its tokens to row segments[i].row
  // (distinct rows; ids holds the segments' ids one after another, at most
  // max_step_tokens() in all). Returns each segment's last-position logits,
  // [segments, vocab], valid until the next call. A row computes exactly
  // what it computes alone, whatever the other segments are.
  std::span<const float> feed_segments(std::span<const int32_t> ids, std::span<const StepSegment> segments);
  int64_t max_step_tokens() const;

  // Slots filled in the longest row (prompts shorter than the longest count
  // their padding), and in row r.
  int64_t length() const;
  int64_t length(int64_t row) const;
  int64_t capacity() const;
  int64_t rows() const;
  // Forgets the context (keeps the memory), of every row or of one.
  void reset();
  void reset_row(int64_t row);

 private:
  struct State;
  Model& model_;
  std::unique_ptr<State> state_;
};

}  // namespace strata
