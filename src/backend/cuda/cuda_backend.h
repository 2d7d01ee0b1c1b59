// The CUDA backend's entry point, present in every build: with CUDA (the
// STRATA_CUDA CMake option, on when the toolkit is found) it opens the GPUs
// as devices cuda:0..N-1 with their own op set; without it, it opens none and
// says so. Everything else reaches a GPU only through the Device and Ops
// interfaces.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/device.h"

namespace strata::cuda {

// Whether this build has the CUDA backend.
bool built();

// The GPUs this process can use, in CUDA's order, as devices with ordinals
// first_ordinal.. and names cuda:<ordinal>; a GPU that cannot be set up is
// left out and `why` says so. Each one's capacity is its free
// memory once its context exists (the context itself takes memory), less a
// reserve for cuBLAS's workspace. When there are none, `why` says why (no
// CUDA in this build, no driver, no GPU).
std::vector<std::unique_ptr<Device>> open_devices(int first_ordinal, std::string& why);

}  // namespace strata::cuda
