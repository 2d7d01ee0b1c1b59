// Reading a max-memory budget as the command line writes it:
// "0=8GiB,1=8GiB,cpu=30GiB,disk". Pure: text in, budgets out.
#pragma once

#include <optional>
#include <string_view>

#include "plan/device.h"

namespace strata::plan {

// Parses comma-separated items KEY=SIZE. Keys: an accelerator ordinal ("0",
// "cuda:0" and "sim:0" all mean ordinal 0), "cpu", or "disk" (with or without
// "=SIZE"; the disk tier is unlimited, so its budget is +infinity whatever the
// size says, as Accelerate ignores it too). Sizes as parse_byte_size reads
// them; 0 is allowed. Whitespace around items, keys and sizes is ignored.
// Returns the budgets in device order (normalize_max_memory). Throws
// strata::Error naming the item for an empty item, a missing or bad size, an
// unknown key, or a device given twice.
MaxMemory parse_max_memory(std::string_view text);

// The accelerators and their budgets, in ordinal order; the lowest one with a
// budget above 0 is where strata executes offloaded modules (the "main
// accelerator"). nullopt when no accelerator has room.
std::optional<Device> main_accelerator_of(const MaxMemory& max_memory);

// The budget of `device`: +infinity for disk (always unlimited), 0 for a
// device the budget does not list.
double budget_of(const MaxMemory& max_memory, const Device& device);

}  // namespace strata::plan
