// The weight store: keeps every tensor of the checkpoint on its tier and
// hands the model views of them by Hugging Face name (DESIGN.md, "Devices and
// tiers"):
// - resident: on the device that executes its block (host RAM for the CPU,
//   the device pool for an accelerator), copied once at load;
// - host: in host RAM, copied to the executing accelerator's staging slot
//   just before its block runs (onload) — Accelerate's CPU offload;
// - disk: read straight from the checkpoint's safetensors files when they
//   hold it in the dtype computed with, else from the offload folder, by the
//   prefetcher into host staging slots ahead of use (direct I/O, no page
//   cache); the CPU computes there, an accelerator gets them copied into its
//   staging slot.
// Matrices are held in the compute dtype (the override, else as stored);
// 1-D parameters (norm weights, biases) as f32.
// Thread-safety: built before running; onload/release are called by the one
// thread that runs the model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/cpu/thread_pool.h"
#include "backend/device.h"
#include "format/direct_reader.h"
#include "format/safetensors.h"
#include "models/causal_lm.h"
#include "runtime/offload_folder.h"
#include "runtime/prefetcher.h"
#include "runtime/placement.h"

namespace strata {

struct WeightStoreOptions {
  std::optional<DType> compute_dtype;  // matrices' dtype; nullopt: as stored
  std::filesystem::path offload_folder;
  ThreadPool* pool = nullptr;  // spreads copies and conversions at load
  size_t disk_read_slots = 2;  // host staging slots for disk reads: blocks read ahead + the one in use
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

  // The hooks around block b: wait for its disk reads and bring its streamed
  // weights to its device; then free its host staging slot for the next read.
  void onload(size_t block);
  void release(size_t block);

  const Checkpoint& checkpoint() const { return checkpoint_; }
  // Bytes of all tensors in the checkpoint.
  uint64_t total_bytes() const;
  // Bytes one pass over all blocks reads from the disk tier, and copies to
  // accelerators (offloaded weights brought to the device that runs them).
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
  };
  struct Copy {
    Device* device;
    void* dst;
    const void* src;
    size_t bytes;
  };
  const TensorInfo& expect(const WeightSpec& weight) const;
  void pin_for_copies(const std::vector<BlockPlacement>& placement, Device& host);
  const Held& held(const std::string& name, const std::vector<int64_t>& shape) const;

  static constexpr size_t kNotStreamed = static_cast<size_t>(-1);

  Checkpoint checkpoint_;
  OffloadFolder offload_;
  std::vector<DeviceBuffer> buffers_;  // resident regions, the host tier, staging slots
  std::vector<std::pair<Device*, void*>> pinned_;  // host buffers page-locked by that device
  std::unordered_map<std::string, Held> held_;
  std::vector<std::vector<Copy>> onload_;  // per block
  std::vector<size_t> stream_index_;       // per block: its place in the disk stream, or kNotStreamed
  std::map<std::filesystem::path, std::unique_ptr<DirectReader>> readers_;
  std::unique_ptr<Prefetcher> prefetcher_;  // declared last: its thread stops before the buffers go
  std::vector<std::span<const uint8_t>> resident_host_ranges_;
  std::vector<DiskRange> disk_ranges_;
  uint64_t host_staging_bytes_ = 0;
  uint64_t disk_bytes_ = 0;
  uint64_t copied_bytes_ = 0;
};

}  // namespace strata
