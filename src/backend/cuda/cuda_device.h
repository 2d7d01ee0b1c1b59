// A GPU behind the Device interface: memory from a pool that reuses blocks
// (cudaMalloc only when no freed block of the size is cached), copies on the
// device's stream, and the CUDA op set (cuda_ops.h). Everything the device
// does is ordered on its one stream, so a copy into a staging slot waits for
// the kernels that read the slot before it.
// Thread-safety: used by the one thread that runs the model.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <memory>

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
  // Queued on the stream, after the kernels before it and before those
  // after it: asynchronous from pinned memory.
  void copy_in_ordered(void* device_dst, const void* host_src, size_t bytes) override;
  void finish_copies() override;
  // False when the driver refuses (copies from that memory still work, slower).
  bool pin_host(void* data, size_t bytes) override;
  void unpin_host(void* data) override;

  int index() const { return index_; }
  // Free and total memory of the GPU now, as the driver reports it.
  void memory_info(size_t& free, size_t& total) const;

 protected:
  void* raw_allocate(size_t bytes) override;
  void raw_release(void* data, size_t bytes) override;

 private:
  void make_current() const;
  void trim_pool();

  int index_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t copies_done_ = nullptr;  // recorded after the last ordered copy
  std::unique_ptr<CudaOps> ops_;
  std::multimap<size_t, void*> free_blocks_;  // released blocks by rounded size, for reuse
};

}  // namespace strata::cuda
