// The disk's sequential direct-I/O read rate on the very bytes the disk tier
// reads, measured in the same run (the copy rate to an accelerator is
// runtime/offload_compute.h's measure_copy_in).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/weight_store.h"

namespace strata::cli {

// Reads the byte ranges in order, up to `limit` bytes, with O_DIRECT in
// requests of up to 64 MiB (ranges that follow each other in a file are read
// as one); bytes per second. Given the ranges one pass of the disk tier
// reads, this is what the disk can do for exactly those bytes, right now:
// the data the host has cached recently is cached for both.
double measure_direct_read(const std::vector<WeightStore::DiskRange>& ranges, uint64_t limit);

}  // namespace strata::cli
