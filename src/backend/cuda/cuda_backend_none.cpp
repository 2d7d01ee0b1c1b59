// The CUDA entry point of a build without CUDA (STRATA_CUDA off or no
// toolkit found): no devices, and the reason.
#include "backend/cuda/cuda_backend.h"

namespace strata::cuda {

bool built() { return false; }

std::vector<std::unique_ptr<Device>> open_devices(int, std::string& why) {
  why = "strata was built without CUDA (cmake -DSTRATA_CUDA=ON with the CUDA toolkit enables it)";
  return {};
}

}  // namespace strata::cuda
