#include "backend/cuda/cuda_device.h"

#include <string>

#include "backend/cuda/cuda_check.h"
#include "core/byte_size.h"
#include "strata/error.h"

namespace strata::cuda {
namespace {

// Pool blocks come in sizes rounded up to this granule (2 MiB above 1 MiB,
// 512 bytes below), so a block freed by one session fits the next one's.
size_t rounded(size_t bytes) {
  const size_t granule = bytes >= (size_t{1} << 20) ? (size_t{2} << 20) : 512;
  return (bytes + granule - 1) / granule * granule;
}

}  // namespace

CudaDevice::CudaDevice(int index, int ordinal, uint64_t reserve)
    : Device("cuda:" + std::to_string(ordinal), ordinal, kUnlimited), index_(index) {
  make_current();
  STRATA_CUDA_CHECK(cudaFree(nullptr));  // creates the context now, so free memory below excludes it
  try {
    STRATA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    STRATA_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
    ops_ = std::make_unique<CudaOps>(index_, stream_);
    size_t free = 0, total = 0;
    memory_info(free, total);
    limit_capacity(free > reserve ? free - reserve : 0);
  } catch (...) {
    // The destructor does not run for a half-built object.
    ops_.reset();
    destroy_streams_and_events();
    throw;
  }
}

CudaDevice::~CudaDevice() {
  cudaSetDevice(index_);
  ops_.reset();
  if (copy_stream_) cudaStreamSynchronize(copy_stream_);
  if (stream_) cudaStreamSynchronize(stream_);
  for (const auto& [size, block] : free_blocks_) cudaFree(block);
  destroy_streams_and_events();
}

void CudaDevice::destroy_streams_and_events() {
  for (const SlotEvents& e : slots_) {
    if (e.filled) cudaEventDestroy(e.filled);
    if (e.released) cudaEventDestroy(e.released);
  }
  slots_.clear();
  if (copy_stream_) cudaStreamDestroy(copy_stream_);
  if (stream_) cudaStreamDestroy(stream_);
  copy_stream_ = stream_ = nullptr;
}

void CudaDevice::make_current() const { STRATA_CUDA_CHECK(cudaSetDevice(index_)); }

void CudaDevice::memory_info(size_t& free, size_t& total) const {
  make_current();
  STRATA_CUDA_CHECK(cudaMemGetInfo(&free, &total));
}

void CudaDevice::copy_in(void* device_dst, const void* host_src, size_t bytes) {
  make_current();
  STRATA_CUDA_CHECK(cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  STRATA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  count_copy_in(bytes);
}

const CudaDevice::SlotEvents& CudaDevice::slot_events(size_t slot) {
  while (slots_.size() <= slot) {
    SlotEvents e;
    STRATA_CUDA_CHECK(cudaEventCreateWithFlags(&e.filled, cudaEventDisableTiming));
    const cudaError_t status = cudaEventCreateWithFlags(&e.released, cudaEventDisableTiming);
    if (status != cudaSuccess) {
      cudaEventDestroy(e.filled);
      throw_cuda_error("cudaEventCreateWithFlags", status);
    }
    slots_.push_back(e);
  }
  return slots_[slot];
}

// Waiting for an event never recorded (a slot's first fill) is a no-op in
// CUDA, so the first use of each slot needs no special case.
void CudaDevice::fill_slot(size_t slot, std::span<const HostCopy> copies) {
  make_current();
  const SlotEvents& e = slot_events(slot);
  STRATA_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, e.released, 0));
  try {
    for (const HostCopy& c : copies) {
      STRATA_CUDA_CHECK(cudaMemcpyAsync(c.dst, c.src, c.bytes, cudaMemcpyHostToDevice, copy_stream_));
      count_copy_in(c.bytes);
    }
    STRATA_CUDA_CHECK(cudaEventRecord(e.filled, copy_stream_));
  } catch (...) {
    // finish_fill would wait on an older record: the copies queued so far
    // end before their host memory may go.
    cudaStreamSynchronize(copy_stream_);
    throw;
  }
}

void CudaDevice::use_slot(size_t slot) {
  make_current();
  STRATA_CUDA_CHECK(cudaStreamWaitEvent(stream_, slot_events(slot).filled, 0));
}

void CudaDevice::release_slot(size_t slot) {
  make_current();
  STRATA_CUDA_CHECK(cudaEventRecord(slot_events(slot).released, stream_));
}

void CudaDevice::finish_fill(size_t slot) {
  make_current();
  STRATA_CUDA_CHECK(cudaEventSynchronize(slot_events(slot).filled));
}

void CudaDevice::copy_out(void* host_dst, const void* device_src, size_t bytes) {
  make_current();
  STRATA_CUDA_CHECK(cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, stream_));
  STRATA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

bool CudaDevice::pin_host(void* data, size_t bytes, std::string& failure) {
  make_current();
  // Portable: every GPU of the process copies from it at full speed.
  const cudaError_t status = cudaHostRegister(data, bytes, cudaHostRegisterPortable);
  if (status == cudaSuccess) return true;
  cudaGetLastError();
  failure = "could not page-lock " + format_bytes(static_cast<double>(bytes)) + " of host memory for " + name() +
            " (" + cudaGetErrorString(status) + "); its copies run slower";
  return false;
}

// It runs in destructors: nothing here throws, and a failure is cleared so
// that a later launch check does not report it.
void CudaDevice::unpin_host(void* data) {
  cudaSetDevice(index_);
  if (cudaHostUnregister(data) != cudaSuccess) cudaGetLastError();
}

void* CudaDevice::raw_allocate(size_t bytes) {
  make_current();
  const size_t size = rounded(bytes);
  if (const auto it = free_blocks_.find(size); it != free_blocks_.end()) {
    void* block = it->second;
    free_blocks_.erase(it);
    return block;
  }
  void* block = nullptr;
  cudaError_t status = cudaMalloc(&block, size);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    trim_pool();  // blocks cached for other sizes go back to the driver; try again
    status = cudaMalloc(&block, size);
  }
  if (status != cudaSuccess)
    throw_cuda_error(("cudaMalloc of " + std::to_string(size) + " bytes on " + name()).c_str(), status);
  return block;
}

// Memory is released when a session or a model ends, never per token: waiting
// here for both streams means a cached block is idle when it is handed out
// again, whichever stream its next user queues work on.
// It runs in destructors: nothing here throws.
void CudaDevice::raw_release(void* data, size_t bytes) {
  cudaSetDevice(index_);
  cudaStreamSynchronize(copy_stream_);
  cudaStreamSynchronize(stream_);
  free_blocks_.emplace(rounded(bytes), data);
}

void CudaDevice::trim_pool() {
  for (const auto& [size, block] : free_blocks_) cudaFree(block);
  free_blocks_.clear();
}

}  // namespace strata::cuda
