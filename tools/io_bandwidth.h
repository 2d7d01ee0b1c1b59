// Bandwidths a streamed run is bounded by, measured in the same run: the
// disk's sequential direct-I/O read rate on the very files the disk tier
// reads, and the host->device copy rate of an accelerator.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "backend/device.h"

namespace strata::cli {

// Reads up to `limit` bytes of the files (in turn, from their start) with
// O_DIRECT in 64 MiB requests; bytes per second.
double measure_direct_read(const std::vector<std::filesystem::path>& files, uint64_t limit);

// Copies a host buffer to `device` repeatedly through its copy_in; bytes per
// second of the best of `repetitions`. Uses at most `bytes` of its free room.
double measure_copy_in(Device& device, uint64_t bytes, int repetitions);

}  // namespace strata::cli
