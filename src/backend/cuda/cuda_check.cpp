#include "backend/cuda/cuda_check.h"

#include <string>

#include "strata/error.h"

namespace strata::cuda {

void throw_cuda_error(const char* call, cudaError_t status) {
  // Clear a sticky error so the caller may go on when the device still works.
  cudaGetLastError();
  throw Error(std::string("CUDA: ") + call + " failed: " + cudaGetErrorString(status));
}

void throw_cublas_error(const char* call, cublasStatus_t status) {
  throw Error(std::string("cuBLAS: ") + call + " failed: " + cublasGetStatusString(status));
}

}  // namespace strata::cuda
