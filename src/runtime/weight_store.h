// The weight store: keeps every tensor of the checkpoint on its tier and
// hands the model views of them by Hugging Face name (DESIGN.md, "Devices and
// tiers"):
// - resident: on the device that executes its block (host RAM for the CPU,
//   the device pool for an accelerator), copied once at load;
// - host: in host RAM, copied to one of the executing accelerator's staging
//   slots while the block before it computes — Accelerate's CPU offload,
//   with the copy overlapped;
// - disk: read straight from the checkpoint's safetensors files when they
//   hold it in the dtype computed with, else from the offload folder, by the
//   prefetcher into host staging slots ahead of use (direct I/O, no page
//   cache); the CPU computes there, an accelerator gets them copied into its
//   staging slot.
// Matrices are held in the compute dtype (the override, else as stored),
// quantized ones in their layout (quant/quant_layout.h), repacked once from
// the checkpoint's tensors (through the offload folder for the disk tier);
// 1-D parameters (norm weights, biases) as f32.
// Thread-safety: built before running; onload/release are called by the one
// thread that runs the model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/device.h"
#include "core/thread_pool.h"
#include "format/direct_reader.h"
#include "format/safetensors.h"
#include "models/causal_lm.h"
#include "runtime/offload_folder.h"
#include "runtime/prefetcher.h"
#include "runtime/quantized_weights.h"
#include "runtime/placement.h"

namespace strata {

// Throws strata::Error naming the tensor when the checkpoint holds `weight`
// in another shape than config.json implies, or in a dtype strata does not read.
void check_stored_weight(const Checkpoint& checkpoint, const WeightSpec& weight, const TensorInfo& info);

struct WeightStoreOptions {
  std::optional<DType> compute_dtype;  // matrices' dtype; nullopt: as stored (quantized ones always are)
  // The matrices held quantized (must outlive the store); null: none.
  const QuantizedWeights* quantized = nullptr;
  std::filesystem::path offload_folder;
  // Matrices outside the blocks (routed experts) that the offload folder
  // holds quantized beside the blocks' tensors, for the expert store; each
  // must be one `quantized` holds quantized, and outlive the constructor.
  std::vector<const WeightSpec*> folder_matrices;
  ThreadPool* pool = nullptr;  // spreads copies and conversions at load
  size_t disk_read_slots = 2;  // host staging slots for disk reads: blocks read ahead + the one in use
  size_t staging_slots = 2;    // per accelerator, for streamed blocks: one fills while one computes
  std::function<void(uint64_t placed, uint64_t total)> progress;  // while the regions fill; may be empty
  // While the offload folder is built (source bytes converted or quantized); may be empty.
  std::function<void(uint64_t done, uint64_t total)> convert_progress;
  // Told once, naming the tensor, when a weight holds NaN or Inf (its
  // outputs then are NaN, and greedy decoding picks token 0); may be empty.
  std::function<void(const std::string& message)> warning;
};

class WeightStore : public WeightSource {
 public:
  // Lays out and loads every block's weights. Throws strata::Error naming the
  // tensor for a missing tensor, a shape that disagrees with config.json or an
  // unsupported dtype, and naming the device when it runs out of memory.
  WeightStore(Checkpoint checkpoint, const std::vector<BlockSpec>& blocks,
              const std::vector<BlockPlacement>& placement, Device& host, const WeightStoreOptions& options);
  ~WeightStore() override;
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;

  MatrixView matrix(const std::string& name, int64_t rows, int64_t cols) override;
  const float* vector_f32(const std::string& name, int64_t size) override;

  // The hooks around block b. onload: wait for its disk reads, have its
  // streamed weights in its device's staging slot before its compute, and
  // start the next streamed block's fill into the other slot, so that copy
  // runs while this block computes. release: its compute is queued; its
  // slots may be reused once that is done (the next fill starts here when it
  // needs this block's slot, or comes from disk). begin_pass before block 0
  // of every pass.
  void begin_pass();
  void onload(size_t block);
  void release(size_t block);

  const Checkpoint& checkpoint() const { return checkpoint_; }
  // Bytes of all tensors in the checkpoint.
  uint64_t total_bytes() const;
  // Bytes one pass over all blocks reads from the disk tier, and copies to
  // accelerators (offloaded weights brought to the device that runs them; a
  // staging slot only one block uses is filled once and kept).
  uint64_t disk_bytes_per_pass() const { return disk_bytes_; }
  uint64_t copied_bytes_per_pass() const { return copied_bytes_; }
  // The files the disk tier reads, and the byte ranges one pass reads from
  // them in order (a block's adjacent tensors merged), for bandwidth
  // measurements.
  struct DiskRange {
    std::filesystem::path path;
    uint64_t offset;
    uint64_t size;
  };
  std::vector<std::filesystem::path> disk_files() const;
  const std::vector<DiskRange>& disk_ranges() const { return disk_ranges_; }
  // Host memory of the disk tier's read slots (inside the cpu budget).
  uint64_t host_staging_bytes() const { return host_staging_bytes_; }
  // What the prefetcher's reads have cost so far (zero when nothing streams).
  Prefetcher::Totals stream_totals() const { return prefetcher_ ? prefetcher_->totals() : Prefetcher::Totals{}; }
  // Host memory of resident CPU matrices, for bandwidth measurements.
  const std::vector<std::span<const uint8_t>>& resident_host_ranges() const { return resident_host_ranges_; }
  // Whether an offload folder was used, and whether it was reused from an earlier run.
  const OffloadFolder& offload_folder() const { return offload_; }

 private:
  struct Held {
    void* data = nullptr;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const QuantLayout* quant = nullptr;
  };
  // A block whose weights are copied to its accelerator before it runs.
  struct StagedBlock {
    Device* device = nullptr;  // null: not streamed to an accelerator
    size_t slot = 0;
    std::vector<Device::HostCopy> copies;
    size_t content = 0;  // the first block staging the same tensors in the same slot (itself, or a tied head's embedding)
  };
  // The constructor's steps, in order (weight_store.cpp).
  struct Layout;
  void choose_tiers(Layout& layout, const std::vector<BlockSpec>& blocks,
                    const std::vector<BlockPlacement>& placement, Device& host, const WeightStoreOptions& options);
  void lay_out_staging_slots(Layout& layout, const std::vector<BlockSpec>& blocks,
                             const std::vector<BlockPlacement>& placement, size_t slots_per_device);
  void lay_out_disk_reads(Layout& layout, const std::vector<BlockSpec>& blocks,
                          const std::vector<BlockPlacement>& placement, size_t read_slots);
  void fill_regions(const Layout& layout, Device& host, const WeightStoreOptions& options);
  std::vector<std::vector<Prefetcher::Read>> make_views(const Layout& layout, const std::vector<BlockSpec>& blocks);
  const TensorInfo& expect(const WeightSpec& weight) const;
  void pin_for_copies(const std::vector<BlockPlacement>& placement, Device& host);
  void plan_prefetch(const std::vector<BlockSpec>& blocks);
  const Held& held(const std::string& name, const std::vector<int64_t>& shape) const;
  void wait_read(size_t block);
  void check_finite(const std::string& name, DType dtype, const void* data, size_t n);
  void stage(size_t block);

  static constexpr size_t kNotStreamed = static_cast<size_t>(-1);
  static constexpr size_t kNone = static_cast<size_t>(-1);
  // A streamed block this many times smaller than the device's largest does
  // not take a staging turn.
  static constexpr size_t kSmallStagedBlock = 64;

  Checkpoint checkpoint_;
  OffloadFolder offload_;
  std::vector<DeviceBuffer> buffers_;  // resident regions, the host tier, staging slots
  std::vector<std::pair<Device*, void*>> pinned_;  // host buffers page-locked by that device
  std::unordered_map<std::string, Held> held_;
  // Per block: its staging, its place in the disk stream (or kNotStreamed),
  // the streamed block whose fill its release starts and the one its onload
  // starts (or kNone), whether its disk read was waited for and not yet
  // released, whether it is using its slot (onload to release).
  std::vector<StagedBlock> staged_;
  std::vector<size_t> stream_index_;
  std::vector<size_t> next_staged_;
  std::vector<size_t> ahead_staged_;
  std::vector<bool> read_waited_;
  std::vector<bool> in_use_;
  std::map<Device*, std::vector<size_t>> slot_holds_;  // the content each staging slot holds, or kNone
  std::map<std::filesystem::path, std::unique_ptr<DirectReader>> readers_;
  std::function<void(const std::string&)> warning_;
  bool warned_ = false;               // warning_ says it once
  // Per block: its disk tensors where their read lands in host memory, until
  // their first read has been checked.
  struct DiskTensor {
    const std::string* name;
    DType dtype;
    const void* data;
    size_t count;
  };
  std::vector<std::vector<DiskTensor>> unchecked_disk_;
  // Declared after the buffers its thread reads into, so it is destroyed (and
  // its thread stopped) before they are released.
  std::unique_ptr<Prefetcher> prefetcher_;
  std::vector<std::span<const uint8_t>> resident_host_ranges_;
  std::vector<DiskRange> disk_ranges_;
  uint64_t host_staging_bytes_ = 0;
  uint64_t disk_bytes_ = 0;
  uint64_t copied_bytes_ = 0;
};

}  // namespace strata
