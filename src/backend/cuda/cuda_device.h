// A GPU behind the Device interface: memory from a pool that reuses blocks
// (cudaMalloc only when no freed block of the size is cached), the CUDA op
// set (cuda_ops.h) on a compute stream, and staging-slot fills on a second,
// copy stream, so the copy engine brings the next block's weights while the
// kernels of this one run. Two events per slot order them: `filled` (copy
// stream, after a fill) which the compute stream waits for before using the
// slot, and `released` (compute stream, after the last kernel that read it)
// which the copy stream waits for before filling it again.
// Thread-safety: used by the one thread that runs the model.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "backend/cuda/cuda_ops.h"
#include "backend/device.h"

namespace strata::cuda {

class CudaDevice final : public Device {
 public:
  // index: CUDA's number for the GPU; ordinal: the device map's accelerator
  // number (named cuda:ordinal; the same unless a GPU before it was left
  // out). Creates the context, the stream and the op set, then takes as
  // capacity the free memory less `reserve` bytes.
  CudaDevice(int index, int ordinal, uint64_t reserve);
  ~CudaDevice() override;

  bool host_addressable() const override { return false; }
  Ops* native_ops() override { return ops_.get(); }
  // Both wait until the copy is done: the host buffer may be reused at once.
  void copy_in(void* device_dst, const void* host_src, size_t bytes) override;
  void copy_out(void* host_dst, const void* device_src, size_t bytes) override;
  // Staging slots (device.h): asynchronous from pinned memory.
  void fill_slot(size_t slot, std::span<const HostCopy> copies) override;
  void use_slot(size_t slot) override;
  void release_slot(size_t slot) override;
  void finish_fill(size_t slot) override;
  // False when the driver refuses (copies from that memory still work, slower).
  bool pin_host(void* data, size_t bytes, std::string& failure) override;
  void unpin_host(void* data) override;

  int index() const { return index_; }
  // Free and total memory of the GPU now, as the driver reports it.
  void memory_info(size_t& free, size_t& total) const;

 protected:
  void* raw_allocate(size_t bytes) override;
  void raw_release(void* data, size_t bytes) override;

 private:
  struct SlotEvents {
    cudaEvent_t filled = nullptr;
    cudaEvent_t released = nullptr;
  };
  void make_current() const;
  void trim_pool();
  const SlotEvents& slot_events(size_t slot);  // created on first use
  void destroy_streams_and_events();

  int index_;
  cudaStream_t stream_ = nullptr;       // kernels, and the synchronous copies
  cudaStream_t copy_stream_ = nullptr;  // staging-slot fills
  std::vector<SlotEvents> slots_;
  std::unique_ptr<CudaOps> ops_;
  std::multimap<size_t, void*> free_blocks_;  // released blocks by rounded size, for reuse
};

}  // namespace strata::cuda
