// Bandwidths a streamed run is bounded by, measured in the same run: the
// disk's sequential direct-I/O read rate on the very files the disk tier
// reads, and the host->device copy rate of an accelerator.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/device.h"
#include "runtime/weight_store.h"

namespace strata::cli {

// Reads the byte ranges in order, up to `limit` bytes, with O_DIRECT in
// requests of up to 64 MiB (ranges that follow each other in a file are read
// as one); bytes per second. Given the ranges one pass of the disk tier
// reads, this is what the disk can do for exactly those bytes, right now:
// the data the host has cached recently is cached for both.
double measure_direct_read(const std::vector<WeightStore::DiskRange>& ranges, uint64_t limit);

// Copies a host buffer to `device` repeatedly through its copy_in, from
// memory the device pins if it pins any (as the weight store's host tiers
// are); bytes per second of the best of `repetitions`. Uses at most `bytes`
// of the device's free room.
double measure_copy_in(Device& device, uint64_t bytes, int repetitions);

}  // namespace strata::cli
