// splitmix64 (Steele, Lea & Flood; Vigna's reference code at
// prng.di.unimi.it): a small, well-mixed generator whose sequence is the same
// on every platform, so a seed reproduces a sampled run, a synthetic
// checkpoint or a synthetic tokenizer anywhere. Not for cryptography.
#pragma once

#include <cstdint>

namespace strata {

// Advances `state` and returns the next value of its stream.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A double uniform in [0, 1) from the top 53 bits of `bits`.
inline double unit_interval(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

}  // namespace strata
