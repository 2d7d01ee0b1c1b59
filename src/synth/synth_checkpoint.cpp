// Writes synthetic checkpoints (see synth_checkpoint.h).
//
// Speed is the point: a 2 GB model must be written in seconds. Values come
// from xoshiro128+ run in eight lanes at once with GCC vector types, which the
// compiler turns into plain SIMD on any x86-64 (or ARM), and become floats by
// the exponent trick (random mantissa bits under a fixed exponent) with no
// division or int→float conversion. Each tensor is cut into blocks of
// kSynthBlockElems elements with their own seeded stream, so any thread can
// produce any block and the bytes never depend on threads or chunking. The
// tensor bytes of each file are cut into chunks; generator threads fill chunk
// buffers from a small ring while the calling thread writes finished chunks in
// order, so generation overlaps the write() calls.
#include "synth/synth_checkpoint.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/byte_size.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/rng.h"
#include "format/safetensors.h"
#include "models/architecture.h"
#include "synth/synth_tokenizer.h"
#include "strata/error.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;  // sorted keys, as transformers writes config.json
using ordered_json = nlohmann::ordered_json;

// ---------------------------------------------------------------- random values

// GCC notes that passing 32-byte vectors by value has an AVX-dependent ABI.
// These functions are internal to this file (and inlined), so no call ever
// crosses that boundary.
#pragma GCC diagnostic ignored "-Wpsabi"

using u32x8 = uint32_t __attribute__((vector_size(32)));
using i32x8 = int32_t __attribute__((vector_size(32)));
using f32x8 = float __attribute__((vector_size(32)));
using u16x8 = uint16_t __attribute__((vector_size(16)));
constexpr int kLanes = 8;

u32x8 splat(uint32_t v) { return u32x8{} + v; }

uint64_t mix64(uint64_t x) { return splitmix64(x); }

// xoshiro128+ (Blackman & Vigna, prng.di.unimi.it), one generator per lane.
// Its weak low bits are never used: floats take the top 23.
struct Lanes {
  u32x8 s0, s1, s2, s3;

  // Seeds the eight generators of one block from a splitmix64 stream, as the
  // xoshiro authors recommend.
  Lanes(uint64_t tensor_key, uint64_t block) {
    uint64_t sm = tensor_key ^ mix64(block + 1);
    uint32_t words[4][kLanes];
    for (auto& row : words)
      for (int l = 0; l < kLanes; l += 2) {
        const uint64_t v = splitmix64(sm);
        row[l] = static_cast<uint32_t>(v);
        row[l + 1] = static_cast<uint32_t>(v >> 32);
      }
    // An all-zero state would emit zeros forever (odds 2^-128, but free to rule out).
    for (int l = 0; l < kLanes; ++l)
      if ((words[0][l] | words[1][l] | words[2][l] | words[3][l]) == 0) words[0][l] = 1;
    std::memcpy(&s0, words[0], sizeof s0);
    std::memcpy(&s1, words[1], sizeof s1);
    std::memcpy(&s2, words[2], sizeof s2);
    std::memcpy(&s3, words[3], sizeof s3);
  }

  u32x8 next() {
    const u32x8 result = s0 + s3;
    const u32x8 t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >> 21);
    return result;
  }

  // Eight values uniform in [center - scale/2, center + scale/2).
  f32x8 uniform(float scale, float center) {
    const u32x8 bits = (next() >> 9) | splat(0x3F800000u);  // [1, 2) with 23 random bits
    f32x8 f;
    std::memcpy(&f, &bits, sizeof f);
    return (f - 1.5f) * scale + center;
  }
};

// Rounds to bf16, nearest even. Same result as cpu::f32_to_bf16 for the finite
// values generated here (the test checks); inline so the loop vectorizes.
u16x8 to_bf16(const f32x8& v) {
  u32x8 b;
  std::memcpy(&b, &v, sizeof b);
  b = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
  return __builtin_convertvector(b, u16x8);
}

// Rounds to f16, nearest even, subnormals included, without branches: the
// float-arithmetic method of Maratyszcza's FP16 library
// (fp16_ieee_from_fp32_value), which lets the FPU do the rounding. Same result
// as cpu::f32_to_f16 for finite values (the test checks).
u16x8 to_f16(const f32x8& v) {
  u32x8 w;
  std::memcpy(&w, &v, sizeof w);
  const u32x8 abs_bits = w & 0x7FFFFFFFu;
  f32x8 abs_f;
  std::memcpy(&abs_f, &abs_bits, sizeof abs_f);
  f32x8 base = (abs_f * 0x1.0p+112f) * 0x1.0p-110f;
  const u32x8 shl1 = w + w;
  const u32x8 sign = w & 0x80000000u;
  u32x8 bias = shl1 & 0xFF000000u;
  const u32x8 min_bias = splat(0x71000000u);
  bias = (bias < min_bias) ? min_bias : bias;
  const u32x8 bias_bits = (bias >> 1) + 0x07800000u;
  f32x8 bias_f;
  std::memcpy(&bias_f, &bias_bits, sizeof bias_f);
  base = bias_f + base;
  u32x8 bits;
  std::memcpy(&bits, &base, sizeof bits);
  const u32x8 nonsign = ((bits >> 13) & 0x7C00u) + (bits & 0x0FFFu);
  // NaN (shl1 > 0xFF000000) cannot occur: the generator makes finite values.
  return __builtin_convertvector((sign >> 16) | nonsign, u16x8);
}

// How one tensor's values are drawn.
struct Distribution {
  uint64_t key = 0;  // seeds the tensor's streams
  float scale = 0;   // width of the uniform interval
  float center = 0;
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The fixtures' recipe (README "HF's default initialisation ..."), with a
// uniform of the same std: width = sqrt(12) x std.
Distribution distribution_of(const SynthTensor& t, uint64_t seed) {
  Distribution d;
  d.key = mix64(mix64(seed ^ 0xA0761D6478BD642Full) ^ fnv1a(t.name));
  const double sqrt12 = std::sqrt(12.0);
  if (t.shape.size() == 2) {
    d.scale = static_cast<float>(sqrt12 / std::sqrt(static_cast<double>(t.shape[1])));
  } else if (ends_with(t.name, ".bias")) {
    d.scale = static_cast<float>(0.1 * sqrt12);
  } else {  // RMSNorm weight
    d.scale = static_cast<float>(0.1 * sqrt12);
    d.center = 1.0f;
  }
  return d;
}

void store(const f32x8& v, DType dtype, uint8_t* out, int count) {
  if (dtype == DType::F32) {
    std::memcpy(out, &v, static_cast<size_t>(count) * 4);
  } else {
    const u16x8 h = dtype == DType::BF16 ? to_bf16(v) : to_f16(v);
    std::memcpy(out, &h, static_cast<size_t>(count) * 2);
  }
}

// The inner loop, one instantiation per storage type so the dtype test is
// outside it.
template <DType kDType>
void fill_block(Lanes& lanes, const Distribution& d, int64_t n, uint8_t* out) {
  constexpr size_t esize = kDType == DType::F32 ? 4 : 2;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store(lanes.uniform(d.scale, d.center), kDType, out + i * esize, kLanes);
  if (i < n) store(lanes.uniform(d.scale, d.center), kDType, out + i * esize, static_cast<int>(n - i));
}

// Elements [begin, begin + n) of a tensor; begin is a block boundary.
void fill_elements(const Distribution& d, DType dtype, int64_t begin, int64_t n, uint8_t* out) {
  const size_t esize = dtype_size(dtype);
  for (int64_t done = 0; done < n;) {
    const int64_t count = std::min(kSynthBlockElems, n - done);
    Lanes lanes(d.key, static_cast<uint64_t>((begin + done) / kSynthBlockElems));
    uint8_t* at = out + static_cast<size_t>(done) * esize;
    switch (dtype) {
      case DType::F32: fill_block<DType::F32>(lanes, d, count, at); break;
      case DType::BF16: fill_block<DType::BF16>(lanes, d, count, at); break;
      default: fill_block<DType::F16>(lanes, d, count, at); break;
    }
    done += count;
  }
}

// ---------------------------------------------------------------- layout

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) throw Error(std::string(what) + " is too large");
  return out;
}

std::string shard_name(size_t index, size_t count) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return buffer;
}

// ---------------------------------------------------------------- files

void write_text(const fs::path& path, const std::string& text, SynthResult& result) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) throw Error("cannot write file", path.string(), "", "is the disk full or the directory read-only?");
  result.files.push_back(path);
  result.file_bytes += text.size();
}

std::string torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    default: return "bfloat16";
  }
}

// The keys every architecture's config class writes.
json common_config(const SynthSpec& spec) {
  json c;
  c["architectures"] = {spec.architecture};
  c["attention_dropout"] = 0.0;
  c["bos_token_id"] = 1;
  c["eos_token_id"] = 2;
  c["head_dim"] = spec.resolved_head_dim();
  c["hidden_act"] = "silu";
  c["hidden_size"] = spec.hidden_size;
  c["initializer_range"] = 0.02;
  c["intermediate_size"] = spec.intermediate_size;
  c["max_position_embeddings"] = spec.max_position_embeddings;
  c["model_type"] = spec.model_type();
  c["num_attention_heads"] = spec.num_heads;
  c["num_hidden_layers"] = spec.num_layers;
  c["num_key_value_heads"] = spec.kv_heads();
  c["rms_norm_eps"] = spec.rms_norm_eps;
  c["rope_scaling"] = nullptr;
  if (spec.rope_llama3) {
    const RopeScalingLlama3& r = *spec.rope_llama3;
    c["rope_scaling"] = {{"factor", r.factor},
                         {"high_freq_factor", r.high_freq_factor},
                         {"low_freq_factor", r.low_freq_factor},
                         {"original_max_position_embeddings", static_cast<int64_t>(r.original_max_position_embeddings)},
                         {"rope_type", "llama3"}};
  }
  c["rope_theta"] = spec.rope_theta;
  c["tie_word_embeddings"] = spec.tie_word_embeddings;
  c["torch_dtype"] = torch_dtype_name(spec.dtype);
  c["use_cache"] = true;
  c["vocab_size"] = spec.vocab_size;
  // Not read by anyone; says where the weights came from.
  c["strata_synthetic"] = {{"seed", spec.seed}, {"note", "random weights written by strata synth"}};
  return c;
}

// The router and experts as MixtralConfig, Qwen2MoeConfig and Qwen3MoeConfig
// name them (configuration_mixtral.py, configuration_qwen{2,3}_moe.py), with
// the released checkpoints' router_aux_loss_coef.
void add_expert_keys(const SynthSpec& spec, json& c) {
  c["num_experts_per_tok"] = spec.num_experts_per_tok;
  c["output_router_logits"] = false;
  if (spec.architecture == "MixtralForCausalLM") {
    // Mixtral's experts are intermediate_size wide, and all its layers sparse.
    c["num_local_experts"] = spec.num_experts;
    c["router_aux_loss_coef"] = 0.02;
    c["router_jitter_noise"] = 0.0;
    return;
  }
  c["num_experts"] = spec.num_experts;
  c["moe_intermediate_size"] = spec.moe_intermediate_size;
  c["norm_topk_prob"] = spec.norm_topk_prob;
  c["decoder_sparse_step"] = spec.decoder_sparse_step;
  c["mlp_only_layers"] = spec.mlp_only_layers;
  c["router_aux_loss_coef"] = 0.001;
  if (spec.architecture == "Qwen2MoeForCausalLM")
    c["shared_expert_intermediate_size"] = spec.shared_expert_intermediate_size;
}

// config.json with the fields transformers writes for each architecture
// (LlamaConfig, Qwen2Config, Qwen3Config, MistralConfig and the MoE configs),
// keys sorted as its to_json_string does, so HF loads it as well as strata.
std::string config_json(const SynthSpec& spec) {
  const std::string type = spec.model_type();
  json c = common_config(spec);
  if (type == "llama") {
    c["attention_bias"] = false;
    c["mlp_bias"] = false;
    c["pretraining_tp"] = 1;
  } else {
    c["sliding_window"] = nullptr;  // full attention on every layer
  }
  // Qwen3Config and Qwen3MoeConfig name the bias that Qwen2's configs imply.
  if (type == "qwen3" || type == "qwen3_moe") c["attention_bias"] = false;
  // Every Qwen config writes the same sliding-window fields.
  if (type.rfind("qwen", 0) == 0) {
    c["max_window_layers"] = spec.num_layers;
    c["use_sliding_window"] = false;
  }
  if (spec.moe()) add_expert_keys(spec, c);
  return c.dump(2) + "\n";
}

std::string generation_config_json() {
  const ordered_json g = {{"_from_model_config", true}, {"bos_token_id", 1}, {"eos_token_id", 2}};
  return g.dump(2) + "\n";
}

std::string index_json(const SynthLayout& layout) {
  std::map<std::string, std::string> weight_map;  // sorted, as transformers writes it
  for (const SynthTensor& t : layout.tensors) weight_map[t.name] = layout.shard_files[t.shard];
  const ordered_json doc = {{"metadata", {{"total_size", layout.data_bytes}}}, {"weight_map", weight_map}};
  return doc.dump(2) + "\n";
}

// Refuses a non-empty directory unless forced; when forced, removes the
// checkpoint files a loader could pick up instead of ours (stale shards, an
// old index), but nothing else.
void prepare_dir(const fs::path& dir, bool force) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw Error("output path exists and is not a directory", dir.string());
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
    if (!force)
      throw Error("output directory is not empty", dir.string(), "",
                  "pick a new directory, or --force to replace the checkpoint files in it");
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() &&
          (ends_with(name, ".safetensors") || name == "model.safetensors.index.json"))
        fs::remove(entry.path());
    }
  }
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw Error("cannot create output directory: " + ec.message(), dir.string());
}

void check_free_space(const fs::path& dir, uint64_t needed) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) return;  // unknown: let write() report a full disk
  const uint64_t available = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  if (available < needed)
    throw Error("not enough free disk space: the checkpoint needs " + format_bytes(needed, ByteUnits::decimal) +
                    ", " + format_bytes(available, ByteUnits::decimal) + " is available",
                dir.string(), "", "free some space, write elsewhere with -o, or pick a smaller shape or dtype");
}

// ---------------------------------------------------------------- weight pipeline

// A run of elements of one tensor inside a chunk.
struct Piece {
  size_t tensor = 0;
  int64_t begin = 0, end = 0;
};

// Consecutive bytes of one shard's data area, generated as one unit.
struct Chunk {
  size_t shard = 0;
  size_t first_piece = 0, piece_count = 0;
  uint64_t bytes = 0;
};

struct ChunkPlan {
  std::vector<Piece> pieces;
  std::vector<Chunk> chunks;
  uint64_t max_chunk_bytes = 0;
};

// Cuts each shard's data into chunks of at most chunk_elems elements. Small
// tensors share a chunk; a tensor that does not fit is cut at block
// boundaries, since streams start there.
ChunkPlan plan_chunks(const SynthLayout& layout, int64_t chunk_elems, size_t esize) {
  ChunkPlan plan;
  Chunk current;
  int64_t used = 0;
  const auto flush = [&] {
    if (current.piece_count == 0) return;
    plan.max_chunk_bytes = std::max(plan.max_chunk_bytes, current.bytes);
    plan.chunks.push_back(current);
    current = Chunk{current.shard, plan.pieces.size(), 0, 0};
    used = 0;
  };
  for (size_t ti = 0; ti < layout.tensors.size(); ++ti) {
    const SynthTensor& t = layout.tensors[ti];
    if (t.shard != current.shard) {
      flush();
      current.shard = t.shard;
    }
    for (int64_t at = 0; at < t.numel;) {
      int64_t take = std::min(t.numel - at, chunk_elems - used);
      if (take < t.numel - at) take -= take % kSynthBlockElems;
      if (take == 0) {
        flush();
        continue;
      }
      plan.pieces.push_back({ti, at, at + take});
      ++current.piece_count;
      current.bytes += static_cast<uint64_t>(take) * esize;
      used += take;
      at += take;
      if (used == chunk_elems) flush();
    }
  }
  flush();
  return plan;
}

// Generator threads and the writing thread meet here. Chunk i is generated
// into slot i % slots once chunk i - slots has been written. All fields are
// guarded by mu.
struct Ring {
  std::mutex mu;
  std::condition_variable cv;
  size_t next = 0;     // next chunk to hand to a generator
  size_t written = 0;  // chunks written so far
  std::vector<size_t> ready;  // per slot: the chunk it holds + 1, 0 when none
  bool stop = false;
  std::exception_ptr error;
};

// Writes all shards of one checkpoint. Used by one call; its generator threads
// share only ring_ (under its mutex) and read the plan and distributions.
class WeightWriter {
 public:
  WeightWriter(const SynthSpec& spec, const SynthLayout& layout, const fs::path& dir, const SynthOptions& options)
      : spec_(spec), layout_(layout), dir_(dir), options_(options) {
    const size_t esize = dtype_size(spec.dtype);
    // At least one block per chunk, and a whole number of blocks.
    int64_t chunk_elems = static_cast<int64_t>(options.chunk_bytes / esize);
    chunk_elems = std::max(kSynthBlockElems, chunk_elems - chunk_elems % kSynthBlockElems);
    plan_ = plan_chunks(layout, chunk_elems, esize);
    for (const SynthTensor& t : layout.tensors) dists_.push_back(distribution_of(t, spec.seed));
  }

  void run(SynthResult& result) {
    const size_t n = plan_.chunks.size();
    unsigned threads = options_.threads ? options_.threads : std::max(1u, std::thread::hardware_concurrency());
    threads = static_cast<unsigned>(std::min<size_t>(threads, n));
    // Two spare slots keep generators busy while the writer holds one.
    const size_t slots = std::min<size_t>(n, threads + 2);
    std::vector<std::unique_ptr<uint8_t[]>> buffers;
    for (size_t s = 0; s < slots; ++s)
      buffers.push_back(std::make_unique_for_overwrite<uint8_t[]>(plan_.max_chunk_bytes));
    ring_.ready.assign(slots, 0);

    std::vector<std::thread> workers;
    // Stops and joins the generators however this function exits.
    struct Joiner {
      Ring& ring;
      std::vector<std::thread>& workers;
      ~Joiner() {
        {
          std::lock_guard lock(ring.mu);
          ring.stop = true;
        }
        ring.cv.notify_all();
        for (auto& w : workers) w.join();
      }
    } joiner{ring_, workers};
    for (unsigned t = 0; t < threads; ++t)
      workers.emplace_back([this, &buffers, slots] { generate_loop(buffers, slots); });

    write_loop(buffers, slots, result);
  }

 private:
  void generate_loop(std::vector<std::unique_ptr<uint8_t[]>>& buffers, size_t slots) {
    for (;;) {
      size_t i = 0;
      {
        std::unique_lock lock(ring_.mu);
        if (ring_.stop || ring_.next >= plan_.chunks.size()) return;
        i = ring_.next++;
        ring_.cv.wait(lock, [&] { return ring_.stop || i < ring_.written + slots; });
        if (ring_.stop) return;
      }
      try {
        generate(plan_.chunks[i], buffers[i % slots].get());
      } catch (...) {
        std::lock_guard lock(ring_.mu);
        if (!ring_.error) ring_.error = std::current_exception();
        ring_.stop = true;
        ring_.cv.notify_all();
        return;
      }
      {
        std::lock_guard lock(ring_.mu);
        ring_.ready[i % slots] = i + 1;
      }
      ring_.cv.notify_all();
    }
  }

  void generate(const Chunk& chunk, uint8_t* out) const {
    const size_t esize = dtype_size(spec_.dtype);
    for (size_t p = chunk.first_piece; p < chunk.first_piece + chunk.piece_count; ++p) {
      const Piece& piece = plan_.pieces[p];
      fill_elements(dists_[piece.tensor], spec_.dtype, piece.begin, piece.end - piece.begin, out);
      out += static_cast<size_t>(piece.end - piece.begin) * esize;
    }
  }

  void write_loop(std::vector<std::unique_ptr<uint8_t[]>>& buffers, size_t slots, SynthResult& result) {
    std::unique_ptr<SafetensorsWriter> file;
    size_t open_shard = SIZE_MAX;
    uint64_t written_bytes = 0;
    if (options_.progress) options_.progress(0, layout_.data_bytes);
    for (size_t i = 0; i < plan_.chunks.size(); ++i) {
      {
        std::unique_lock lock(ring_.mu);
        ring_.cv.wait(lock, [&] { return ring_.stop || ring_.ready[i % slots] == i + 1; });
        if (ring_.error) std::rethrow_exception(ring_.error);
        if (ring_.stop) throw Error("weight generation stopped", dir_.string());
      }
      const Chunk& chunk = plan_.chunks[i];
      if (chunk.shard != open_shard) {
        if (file) finish(*file, result);
        file = open(chunk.shard);
        open_shard = chunk.shard;
      }
      file->append({buffers[i % slots].get(), static_cast<size_t>(chunk.bytes)});
      {
        std::lock_guard lock(ring_.mu);
        ring_.ready[i % slots] = 0;
        ring_.written = i + 1;
      }
      ring_.cv.notify_all();
      written_bytes += chunk.bytes;
      if (options_.progress) options_.progress(written_bytes, layout_.data_bytes);
    }
    if (file) finish(*file, result);
  }

  std::unique_ptr<SafetensorsWriter> open(size_t shard) {
    std::vector<SafetensorsWriter::Declared> declared;
    for (const SynthTensor& t : layout_.tensors)
      if (t.shard == shard) declared.push_back({t.name, spec_.dtype, t.shape});
    // transformers refuses safetensors files whose metadata lacks a format.
    auto writer = std::make_unique<SafetensorsWriter>(dir_ / layout_.shard_files[shard], std::move(declared),
                                                      std::map<std::string, std::string>{{"format", "pt"}});
    current_path_ = dir_ / layout_.shard_files[shard];
    current_size_ = writer->file_size();
    return writer;
  }

  void finish(SafetensorsWriter& file, SynthResult& result) {
    file.finish();
    result.files.push_back(current_path_);
    result.file_bytes += current_size_;
  }

  const SynthSpec& spec_;
  const SynthLayout& layout_;
  fs::path dir_;
  const SynthOptions& options_;
  ChunkPlan plan_;
  std::vector<Distribution> dists_;
  Ring ring_;
  fs::path current_path_;
  uint64_t current_size_ = 0;
};

// ---------------------------------------------------------------- families and presets

// The architectures synth writes, by their config.json model_type (the
// --arch names).
struct SynthFamily {
  const char* model_type;
  const char* architecture;
  bool moe;
};
constexpr SynthFamily kFamilies[] = {
    {"llama", "LlamaForCausalLM", false},     {"qwen2", "Qwen2ForCausalLM", false},
    {"qwen3", "Qwen3ForCausalLM", false},     {"mistral", "MistralForCausalLM", false},
    {"mixtral", "MixtralForCausalLM", true},  {"qwen2_moe", "Qwen2MoeForCausalLM", true},
    {"qwen3_moe", "Qwen3MoeForCausalLM", true}};

const SynthFamily* family_of(std::string_view architecture) {
  for (const SynthFamily& f : kFamilies)
    if (architecture == f.architecture) return &f;
  return nullptr;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

void set_shape(SynthSpec& s, int64_t hidden, int64_t inter, int64_t layers, int64_t heads, int64_t kv, int64_t vocab) {
  s.hidden_size = hidden;
  s.intermediate_size = inter;
  s.num_layers = layers;
  s.num_heads = heads;
  s.num_kv_heads = kv;
  s.vocab_size = vocab;
}

// The mixture-of-experts presets; false for another name.
bool moe_preset(std::string_view name, SynthSpec& s) {
  if (name == "mixtral-8x7b") {
    // mistralai/Mixtral-8x7B-v0.1: 8 experts of 14336 in every layer, 2 per
    // token (46.7B parameters, 12.9B of them active).
    set_shape(s, 4096, 14336, 32, 32, 8, 32000);
    s.architecture = "MixtralForCausalLM";
    s.num_experts = 8;
    s.num_experts_per_tok = 2;
    s.max_position_embeddings = 32768;
    s.rope_theta = 1000000.0;
  } else if (name == "qwen3-30b-a3b") {
    // Qwen/Qwen3-30B-A3B: 128 experts of 768 in every layer, 8 per token
    // (30.5B parameters, 3.3B active); intermediate_size would be the width
    // of a dense layer, of which it has none.
    set_shape(s, 2048, 6144, 48, 32, 4, 151936);
    s.architecture = "Qwen3MoeForCausalLM";
    s.head_dim = 128;
    s.num_experts = 128;
    s.num_experts_per_tok = 8;
    s.moe_intermediate_size = 768;
    s.norm_topk_prob = true;
    s.max_position_embeddings = 40960;
    s.rope_theta = 1000000.0;
    s.rms_norm_eps = 1e-6;
  } else {
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- validation

void require_positive(int64_t v, const std::string& what, const std::string& hint = "") {
  if (v <= 0) throw Error(what + " must be a positive integer, got " + std::to_string(v), "", "", hint);
}

// Experts exactly where the architecture has them, in the fields its config
// class can say: Mixtral has no expert width of its own, no shared expert and
// no dense layers; only Qwen2-MoE has a shared expert.
void validate_experts(const SynthSpec& spec) {
  const std::string& arch = spec.architecture;
  if (!spec.moe()) {
    if (spec.num_experts != 0 || spec.num_experts_per_tok != 0 || spec.moe_intermediate_size != 0 ||
        spec.shared_expert_intermediate_size != 0)
      throw Error(arch + " has no experts", "", "",
                  "pick a mixture-of-experts architecture: mixtral, qwen2_moe or qwen3_moe");
    return;
  }
  const std::string experts_hint = "give --experts N and --experts-per-token K";
  require_positive(spec.num_experts, "the expert count of " + arch, experts_hint);
  require_positive(spec.num_experts_per_tok, "the experts per token of " + arch, experts_hint);
  if (spec.num_experts_per_tok > spec.num_experts)
    throw Error("experts per token (" + std::to_string(spec.num_experts_per_tok) + ") exceeds the " +
                    std::to_string(spec.num_experts) + " experts",
                "", "", "the router picks that many of each sparse layer's experts");
  if (arch == "MixtralForCausalLM") {
    if (spec.moe_intermediate_size != 0 && spec.moe_intermediate_size != spec.intermediate_size)
      throw Error("Mixtral's experts are intermediate_size (" + std::to_string(spec.intermediate_size) +
                      ") wide, not " + std::to_string(spec.moe_intermediate_size),
                  "", "", "give the experts' width as --intermediate");
    if (spec.shared_expert_intermediate_size != 0) throw Error("Mixtral has no shared expert");
    if (spec.decoder_sparse_step != 1 || !spec.mlp_only_layers.empty())
      throw Error("every Mixtral layer is sparse: decoder_sparse_step and mlp_only_layers are Qwen-MoE's");
    return;
  }
  require_positive(spec.moe_intermediate_size, "the expert width (moe_intermediate_size) of " + arch,
                   "give --moe-intermediate W");
  require_positive(spec.decoder_sparse_step, "decoder_sparse_step");
  for (int64_t layer : spec.mlp_only_layers)
    if (layer < 0) throw Error("mlp_only_layers must hold layer indices, got " + std::to_string(layer));
  if (arch == "Qwen2MoeForCausalLM")
    require_positive(spec.shared_expert_intermediate_size, "the shared expert width of Qwen2-MoE",
                     "give --shared-expert-intermediate W");
  else if (spec.shared_expert_intermediate_size != 0)
    throw Error(arch + " has no shared expert");
}

}  // namespace

// ---------------------------------------------------------------- spec

int64_t SynthSpec::resolved_head_dim() const {
  if (head_dim > 0) return head_dim;
  return num_heads > 0 ? hidden_size / num_heads : 0;
}

std::string SynthSpec::model_type() const {
  const SynthFamily* f = family_of(architecture);
  return f ? f->model_type : "llama";
}

bool SynthSpec::moe() const {
  const SynthFamily* f = family_of(architecture);
  return f && f->moe;
}

std::string synth_architecture(std::string_view short_name) {
  for (const SynthFamily& f : kFamilies)
    if (short_name == f.model_type) return f.architecture;
  throw Error("unknown architecture '" + std::string(short_name) + "'", "", "",
              "use " + joined(synth_architecture_names()));
}

const std::vector<std::string>& synth_architecture_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const SynthFamily& f : kFamilies) out.push_back(f.model_type);
    return out;
  }();
  return names;
}

const std::vector<std::string>& synth_preset_names() {
  static const std::vector<std::string> names{"tiny",       "tinyllama-1.1b", "llama-3.2-1b", "llama-3-8b",
                                              "qwen2-0.5b", "qwen3-0.6b",     "mixtral-8x7b", "qwen3-30b-a3b"};
  return names;
}

SynthSpec synth_preset(std::string_view name) {
  // Shapes from each model's config.json on the Hugging Face hub.
  SynthSpec s;
  if (name == "tiny") {
    set_shape(s, 64, 176, 2, 4, 2, 512);
    s.max_position_embeddings = 512;
  } else if (name == "tinyllama-1.1b") {
    set_shape(s, 2048, 5632, 22, 32, 4, 32000);
  } else if (name == "llama-3-8b" || name == "llama-3.2-1b") {
    const bool big = name == "llama-3-8b";
    if (big) set_shape(s, 4096, 14336, 32, 32, 8, 128256);
    else set_shape(s, 2048, 8192, 16, 32, 8, 128256);
    s.max_position_embeddings = 131072;
    s.rope_theta = 500000.0;
    s.rope_llama3 = RopeScalingLlama3{big ? 8.0 : 32.0, 1.0, 4.0, 8192.0};
    s.tie_word_embeddings = !big;
  } else if (name == "qwen2-0.5b") {
    set_shape(s, 896, 4864, 24, 14, 2, 151936);
    s.architecture = "Qwen2ForCausalLM";
    s.max_position_embeddings = 32768;
    s.rope_theta = 1000000.0;
    s.rms_norm_eps = 1e-6;
    s.tie_word_embeddings = true;
  } else if (name == "qwen3-0.6b") {
    // 16 heads of 128 dims: heads x head_dim (2048) is not the hidden size.
    set_shape(s, 1024, 3072, 28, 16, 8, 151936);
    s.architecture = "Qwen3ForCausalLM";
    s.head_dim = 128;
    s.max_position_embeddings = 40960;
    s.rope_theta = 1000000.0;
    s.rms_norm_eps = 1e-6;
    s.tie_word_embeddings = true;
  } else if (!moe_preset(name, s)) {
    throw Error("unknown model preset '" + std::string(name) + "'", "", "", "presets: " + joined(synth_preset_names()));
  }
  return s;
}

void validate(const SynthSpec& spec) {
  if (!family_of(spec.architecture))
    throw Error("unsupported architecture '" + spec.architecture + "'", "", "",
                "use " + joined(synth_architecture_names()));
  require_positive(spec.hidden_size, "hidden size");
  require_positive(spec.intermediate_size, "intermediate size");
  require_positive(spec.num_layers, "layer count");
  require_positive(spec.num_heads, "head count");
  require_positive(spec.kv_heads(), "kv head count");
  require_positive(spec.vocab_size, "vocab size");
  require_positive(spec.max_position_embeddings, "max position embeddings");
  if (spec.num_heads % spec.kv_heads() != 0)
    throw Error("heads (" + std::to_string(spec.num_heads) + ") must be a multiple of kv heads (" +
                std::to_string(spec.kv_heads()) + ")");
  if (spec.head_dim <= 0 && spec.hidden_size % spec.num_heads != 0)
    throw Error("hidden size " + std::to_string(spec.hidden_size) + " is not a multiple of heads " +
                    std::to_string(spec.num_heads),
                "", "", "give the head dim explicitly");
  const int64_t head_dim = spec.resolved_head_dim();
  if (head_dim <= 0 || head_dim % 2 != 0)
    throw Error("head dim must be a positive even number (rotary embeddings pair dimensions), got " +
                std::to_string(head_dim));
  validate_experts(spec);
  if (spec.vocab_size < kSynthMinVocab || spec.vocab_size > kSynthMaxVocab)
    throw Error("vocab size " + std::to_string(spec.vocab_size) + " is outside what synth supports", "", "",
                "the generated byte-level tokenizer needs at least " + std::to_string(kSynthMinVocab) +
                    " ids (3 special + 256 bytes); at most " + std::to_string(kSynthMaxVocab));
  if (spec.dtype != DType::F32 && spec.dtype != DType::F16 && spec.dtype != DType::BF16)
    throw Error("synth writes f32, f16 or bf16 weights, not " + std::string(dtype_name(spec.dtype)));
  if (spec.shard_size == 0) throw Error("shard size must be positive");
  if (!(spec.rms_norm_eps > 0) || !(spec.rope_theta > 0)) throw Error("rms_norm_eps and rope_theta must be positive");
}

SynthLayout synth_layout(const SynthSpec& spec) {
  validate(spec);
  checked_mul(spec.num_heads, spec.resolved_head_dim(), "heads x head dim");
  // The tensors are those the family's description declares for the
  // config.json synth writes, in state_dict order (how transformers packs
  // shards).
  const ModelConfig config = ModelConfig::from_json_text(config_json(spec), "the synthetic config.json");
  SynthLayout layout;
  for (StoredTensor& stored : checkpoint_tensors(describe(config))) {
    SynthTensor t;
    t.name = std::move(stored.name);
    t.numel = 1;
    for (int64_t d : stored.shape) t.numel = checked_mul(t.numel, d, "tensor size");
    t.nbytes = static_cast<uint64_t>(checked_mul(t.numel, static_cast<int64_t>(dtype_size(spec.dtype)), "tensor size"));
    t.shape = std::move(stored.shape);
    layout.params += t.numel;
    layout.data_bytes += t.nbytes;
    layout.tensors.push_back(std::move(t));
  }

  // transformers' shard_checkpoint: start a new file when the next tensor
  // would push this one past the limit, unless this one is still empty.
  size_t shard = 0;
  uint64_t in_shard = 0;
  for (SynthTensor& t : layout.tensors) {
    if (in_shard > 0 && in_shard + t.nbytes > spec.shard_size) {
      ++shard;
      in_shard = 0;
    }
    t.shard = shard;
    in_shard += t.nbytes;
  }
  const size_t count = shard + 1;
  if (count == 1) {
    layout.shard_files = {"model.safetensors"};
  } else {
    for (size_t i = 0; i < count; ++i) layout.shard_files.push_back(shard_name(i, count));
  }
  return layout;
}

void synth_fill(const SynthSpec& spec, const SynthTensor& tensor, int64_t begin, int64_t n, void* out) {
  if (begin < 0 || begin % kSynthBlockElems != 0 || n < 0 || begin + n > tensor.numel)
    throw Error("synth_fill: range [" + std::to_string(begin) + ", " + std::to_string(begin + n) +
                ") is not block-aligned inside the tensor", "", tensor.name, "bug in the caller");
  fill_elements(distribution_of(tensor, spec.seed), spec.dtype, begin, n, static_cast<uint8_t*>(out));
}

SynthResult write_synthetic_checkpoint(const SynthSpec& spec, const fs::path& dir, const SynthOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const SynthLayout layout = synth_layout(spec);
  const SynthTokenizerFiles tokenizer = make_synthetic_tokenizer(spec.vocab_size);

  prepare_dir(dir, options.force);
  // Headers hold ~150 bytes of JSON per tensor; the JSON files are small
  // beside the weights except the tokenizer.
  const uint64_t needed = layout.data_bytes + 256 * layout.tensors.size() + tokenizer.tokenizer_json.size() +
                          (64u << 10);
  check_free_space(dir, needed);

  SynthResult result;
  result.dir = dir;
  result.params = layout.params;
  result.data_bytes = layout.data_bytes;
  result.shards = layout.shard_files.size();
  write_text(dir / "tokenizer.json", tokenizer.tokenizer_json, result);
  write_text(dir / "tokenizer_config.json", tokenizer.tokenizer_config_json, result);
  WeightWriter(spec, layout, dir, options).run(result);
  if (layout.shard_files.size() > 1) write_text(dir / "model.safetensors.index.json", index_json(layout), result);
  write_text(dir / "generation_config.json", generation_config_json(), result);
  write_text(dir / "config.json", config_json(spec), result);
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace strata
