// FNV-1a (Fowler, Noll, Vo): a hash of bytes that is the same on every
// compiler and standard library (std::hash is not), for names that must
// stay stable across builds: synthetic weights' seeds, offload folders.
#pragma once

#include <cstdint>
#include <string_view>

namespace strata {

inline uint64_t fnv1a(std::string_view text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (const unsigned char c : text) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

}  // namespace strata
