// Turning CUDA and cuBLAS status codes into strata::Error, naming the call.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace strata::cuda {

[[noreturn]] void throw_cuda_error(const char* call, cudaError_t status);
[[noreturn]] void throw_cublas_error(const char* call, cublasStatus_t status);

}  // namespace strata::cuda

#define STRATA_CUDA_CHECK(call)                                                     \
  do {                                                                              \
    const cudaError_t strata_status_ = (call);                                      \
    if (strata_status_ != cudaSuccess) ::strata::cuda::throw_cuda_error(#call, strata_status_); \
  } while (0)

#define STRATA_CUBLAS_CHECK(call)                                                       \
  do {                                                                                  \
    const cublasStatus_t strata_status_ = (call);                                       \
    if (strata_status_ != CUBLAS_STATUS_SUCCESS) ::strata::cuda::throw_cublas_error(#call, strata_status_); \
  } while (0)

namespace strata::cuda {

// After a kernel launch: its own error (a bad configuration), raised at once.
inline void check_launch() { STRATA_CUDA_CHECK(cudaGetLastError()); }

}  // namespace strata::cuda
