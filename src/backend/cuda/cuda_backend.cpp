// The CUDA entry point of a build with CUDA.
#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include "backend/cuda/cuda_device.h"
#include "strata/error.h"

namespace strata::cuda {
namespace {

// Kept free on each GPU beyond the plan: cuBLAS's workspace and kernel
// modules, which load lazily on first use; the op set's scratch (16 MiB);
// and the driver's 2 MiB granularity for large allocations, which the plan's
// 64-byte accounting does not see (one KV buffer per layer: ~250 MiB for a
// 126-layer model).
constexpr uint64_t kReserve = uint64_t{1} << 30;

}  // namespace

bool built() { return true; }

std::vector<std::unique_ptr<Device>> open_devices(int first_ordinal, std::string& why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    why = std::string("no GPU is usable: ") + cudaGetErrorString(status);
    return {};
  }
  if (count == 0) {
    why = "no GPU is visible (CUDA_VISIBLE_DEVICES?)";
    return {};
  }
  std::vector<std::unique_ptr<Device>> out;
  for (int i = 0; i < count; ++i) {
    try {
      out.push_back(std::make_unique<CudaDevice>(i, first_ordinal + static_cast<int>(out.size()), kReserve));
    } catch (const Error& e) {
      // A GPU that cannot be set up (out of memory, in exclusive use) is left out.
      why += (why.empty() ? "" : "; ") + ("cuda:" + std::to_string(i) + ": " + e.message());
    }
  }
  return out;
}

}  // namespace strata::cuda
