// Byte counts as people write them ("8GiB", "500MB") and as tables print them.
// Pure functions; the planner, `strata synth --shard-size` and `--max-memory`
// share one reading of the units so a size means the same everywhere, and
// every message and table renders a byte count through format_bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace strata {

// Parses a byte count such as "2GB", "500MB", "1.5GiB" or "4096": GiB/MiB/KiB
// (and TiB) are powers of 2, GB/MB/KB (and TB) powers of 10, as in
// Accelerate's max_memory (convert_file_size_to_int); units are
// case-insensitive, a plain number is bytes, and a space may separate number
// and unit. Fractions are floored to whole bytes. Zero is refused unless
// allow_zero (a budget may be 0; a shard size may not). Throws strata::Error.
uint64_t parse_byte_size(std::string_view text, bool allow_zero = false);

// How format_bytes renders a count.
enum class ByteUnits {
  // Powers of 2 with three significant digits: "512 B", "64.0 MiB",
  // "1.50 GiB", "123 GiB" (plans, budgets, device memory).
  binary,
  // Powers of 10 with two decimals: "512 B", "1.50 GB", "123.45 GB" (the
  // command line's sizes of files and rates of reads and writes).
  decimal,
};

// Renders a byte count in `units`; infinity as "unlimited".
std::string format_bytes(double bytes, ByteUnits units = ByteUnits::binary);

// The text without leading and trailing white space (for list items such as
// "0=8GiB, cpu=30GiB").
std::string_view trim_space(std::string_view text);

}  // namespace strata
