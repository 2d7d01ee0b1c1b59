#include "runtime/expert_cache.h"

#include "strata/error.h"

namespace strata {

ExpertCache::ExpertCache(size_t slots, size_t keys)
    : slot_key_(slots, kAbsent), pinned_by_(slots, 0), slot_of_(keys, kAbsent), position_(slots) {
  for (size_t s = 0; s < slots; ++s) position_[s] = recency_.insert(recency_.end(), s);
}

void ExpertCache::touch(size_t slot) {
  recency_.splice(recency_.end(), recency_, position_[slot]);
  pinned_by_[slot] = fetch_;
}

std::optional<size_t> ExpertCache::find(Key key) {
  const size_t slot = slot_of_[key];
  if (slot == kAbsent) {
    ++misses_;
    return std::nullopt;
  }
  ++hits_;
  touch(slot);
  return slot;
}

size_t ExpertCache::place(Key key) {
  // Free slots sit first in recency order (never used), then the least recent.
  for (const size_t slot : recency_) {
    if (pinned_by_[slot] == fetch_ && slot_key_[slot] != kAbsent) continue;
    if (slot_key_[slot] != kAbsent) slot_of_[slot_key_[slot]] = kAbsent;
    slot_key_[slot] = key;
    slot_of_[key] = slot;
    touch(slot);
    return slot;
  }
  throw Error("internal: an expert fetch asked for more experts than the cache's " + std::to_string(slots()) +
              " slots");
}

void ExpertCache::forget(Key key) {
  const size_t slot = slot_of_[key];
  if (slot == kAbsent) return;
  slot_of_[key] = kAbsent;
  slot_key_[slot] = kAbsent;
  recency_.splice(recency_.begin(), recency_, position_[slot]);  // free: first to be reused
}

}  // namespace strata
