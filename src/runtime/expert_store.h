// The expert store: keeps every routed expert of a mixture-of-experts model
// on its tier and brings only the experts the router picked to the device
// that computes them (DESIGN.md, "Devices, tiers and the unit of placement"):
// - resident: on its layer's executing device, read once at load;
// - host: in host RAM; an accelerator gets it copied into its expert cache;
// - disk: in the checkpoint; read with direct I/O into the host expert
//   cache when routed and missing there (then copied on to an accelerator's
//   cache when one computes it).
// An expert is three matrices (gate, up, down) held back to back, each
// 64-byte aligned, in the compute dtype, or in their quantized layout: made
// in situ (--quantize) into the offload folder, or repacked from a
// pre-quantized checkpoint (at load in RAM; into the offload folder for the
// disk tier); disk experts are then read from the folder as held.
// Experts read from disk are used where the read lands when their stored
// bytes are what is computed with; else they are converted into the slot
// beside the read.
// Thread-safety: built before running; fetch and wait are called by the one
// thread that runs the model. Reads run on the store's own reader threads, so
// the disk sees several requests at once while the model computes the
// experts that are already there.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "backend/device.h"
#include "core/thread_pool.h"
#include "format/direct_reader.h"
#include "format/safetensors.h"
#include "models/causal_lm.h"
#include "plan/device.h"
#include "runtime/expert_cache.h"
#include "runtime/offload_compute.h"
#include "runtime/placement.h"
#include "runtime/weight_store.h"
#include "strata/model.h"

namespace strata {

struct ExpertStoreOptions {
  std::optional<DType> compute_dtype;  // nullopt: as stored (quantized experts always are)
  // The matrices held quantized (null: none) and the offload folder holding
  // the quantized ones made in situ (WeightStoreOptions::folder_matrices);
  // both must outlive the store.
  const QuantizedWeights* quantized = nullptr;
  const OffloadFolder* folder = nullptr;
  ThreadPool* pool = nullptr;          // load-time conversion and a fetch's parallel reads
  size_t host_cache_experts = 0;       // disk experts kept in RAM after their read
  size_t device_cache_experts = 0;     // per accelerator: experts from RAM or disk kept there
  // An expert in RAM (or read into it) whose layer runs on an accelerator,
  // routed to at most this many tokens and not in the accelerator's cache,
  // is computed by the CPU where it lies instead of copied (-1: never,
  // kAlwaysLocal: always, and then no accelerator has an expert cache; see
  // runtime/offload_compute.h).
  int64_t local_tokens = -1;
  ExpertCache::Policy cache_policy = ExpertCache::Policy::lfu;
  std::function<void(uint64_t placed, uint64_t total)> progress;  // while resident experts load
};

class ExpertStore final : public ExpertSource {
 public:
  // Throws strata::Error naming the tensor for a missing expert tensor, a
  // shape that disagrees with config.json or an unsupported dtype, and naming
  // the device when it runs out of memory.
  ExpertStore(const Checkpoint& checkpoint, std::vector<ExpertSpec> experts,
              const std::vector<ExpertPlacement>& placement, Device& host, const ExpertStoreOptions& options);
  ~ExpertStore() override;
  ExpertStore(const ExpertStore&) = delete;
  // The checks the constructor makes first, for loading to make before it
  // reads any weight: returns each expert matrix's stored tensor, gate, up,
  // down per expert (for a pre-quantized one, its codes).
  static std::vector<const TensorInfo*> check(const Checkpoint& checkpoint, const std::vector<ExpertSpec>& experts,
                                              const QuantizedWeights* quantized);
  ExpertStore& operator=(const ExpertStore&) = delete;

  size_t max_fetch(int64_t layer) const override;
  void fetch(int64_t layer, std::span<const int32_t> ids, std::span<const int32_t> tokens,
             std::span<ExpertWeights> out) override;
  void wait(size_t i) override;

  // Reader threads: enough requests in flight for a solid-state disk.
  static constexpr int kReaders = 4;
  // The most bytes one request of a reader asks for.
  static constexpr uint64_t kReadPiece = uint64_t{2} << 20;

  // What fetches have done so far (ExpertStats in strata/model.h says what each counts).
  ExpertStats stats() const;
  // Bytes of one expert as held, and of all experts.
  uint64_t expert_bytes() const { return expert_bytes_; }
  uint64_t total_bytes() const { return expert_bytes_ * experts_.size(); }
  // The files disk experts are read from, and the byte ranges of the latest
  // reads (up to kRecentReads, oldest first), for bandwidth measurements.
  std::vector<std::filesystem::path> disk_files() const;
  static constexpr size_t kRecentReads = 256;
  std::vector<WeightStore::DiskRange> recent_reads() const;
  bool empty() const { return experts_.empty(); }

 private:
  enum class Tier { resident, host, disk };
  // A contiguous byte range of the checkpoint holding some of an expert's tensors.
  struct Run {
    const DirectReader* file = nullptr;
    uint64_t offset = 0, size = 0;
    size_t position = 0;  // page-aligned, in the slot's read area
  };
  struct Held {
    const ExpertSpec* spec = nullptr;
    const TensorInfo* stored[3] = {nullptr, nullptr, nullptr};  // gate, up, down in the checkpoint
    Tier tier = Tier::resident;
    Device* exec = nullptr;
    uint8_t* data = nullptr;  // resident: on exec; host: in host RAM
    // Disk: the runs read, and where each matrix's first byte lands in the
    // read area; with `convert`, the bytes are converted into the slot's
    // held layout instead of computed on where they land.
    std::vector<Run> runs;
    size_t landed[3] = {0, 0, 0};
    bool convert = false;
  };
  static constexpr int kMatrices = 3;  // gate, up, down

  Held& held(int64_t layer, int32_t expert);
  ExpertWeights views_at(const Held& h, const uint8_t* base) const;
  ExpertWeights host_views(const Held& h, const uint8_t* base) const;
  void convert_read(const Held& h, uint8_t* slot) const;
  void reader_loop();
  void stop_readers();

  std::vector<ExpertSpec> specs_;
  std::vector<Held> experts_;       // in specs_ order
  std::vector<size_t> first_of_layer_;  // index of each layer's expert 0, or -1 for a dense layer
  std::vector<size_t> layer_experts_;
  DType dtype_ = DType::F32;        // experts as held, when not quantized
  const QuantLayout* quant_ = nullptr;  // experts as held, when quantized
  size_t offsets_[3] = {0, 0, 0};   // of gate, up, down in the held layout
  size_t matrix_bytes_[3] = {0, 0, 0};  // of gate, up, down as held, unpadded
  uint64_t expert_bytes_ = 0;       // held layout
  size_t read_area_ = 0;            // bytes of a disk expert's read, page-aligned
  uint64_t read_piece_ = 0;         // bytes of a reader's request: a share of an expert, page-aligned
  std::vector<DeviceBuffer> buffers_;
  std::vector<std::pair<Device*, void*>> pinned_;
  std::map<std::filesystem::path, std::unique_ptr<DirectReader>> readers_;
  ThreadPool* pool_ = nullptr;
  int64_t local_tokens_ = -1;

  // The host cache of disk experts: slot s at host_slots_ + s * host_slot_bytes_.
  ExpertCache host_cache_;
  uint8_t* host_slots_ = nullptr;
  size_t host_slot_bytes_ = 0;
  // Accelerators' caches of host and disk experts.
  struct DeviceCache {
    ExpertCache cache;
    uint8_t* slots = nullptr;
  };
  std::map<Device*, DeviceCache> device_caches_;

  // Per id of the fetch in progress: what wait(i) still has to see done — a
  // read into the host cache (by a reader thread), then a copy into an
  // accelerator's cache (on the model's thread).
  struct Pending {
    Held* held = nullptr;
    uint8_t* host = nullptr;     // where its bytes are (will be) in host memory
    size_t read = kNoRead;       // its job in reads_
    uint8_t* device = nullptr;   // the accelerator cache slot to copy into, or null
  };
  static constexpr size_t kNoRead = static_cast<size_t>(-1);
  // A disk expert's read, done in pieces that the reader threads take in
  // order: all readers work on the first experts, so the experts arrive one
  // after another (and compute while the next one is read) rather than in
  // bunches of kReaders at the end.
  struct ReadJob {
    const Held* held;
    uint8_t* slot;
    size_t pieces_left = 0;
    bool done = false;
    std::exception_ptr error;
    std::chrono::steady_clock::time_point finished;
  };
  struct ReadPiece {
    size_t job;
    const DirectReader* file;
    uint64_t offset, size;
    uint8_t* dst;
  };
  void add_read(Held& h, uint8_t* slot);
  void finish_piece(size_t job, std::exception_ptr error);  // under mutex_
  std::vector<Pending> pending_;
  std::vector<ReadJob> reads_;    // the fetch's reads
  std::vector<ReadPiece> pieces_;  // their pieces, handed out in order
  size_t next_piece_ = 0;
  size_t pieces_in_flight_ = 0;
  std::chrono::steady_clock::time_point reads_started_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stop_ = false;
  std::vector<std::thread> reader_threads_;
  ExpertStats counters_;
  std::vector<Run> recent_;  // a ring of kRecentReads (no path copies on the hot path)
  size_t recent_next_ = 0;
};

}  // namespace strata
