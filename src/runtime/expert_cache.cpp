#include "runtime/expert_cache.h"

#include "strata/error.h"

namespace strata {

ExpertCache::ExpertCache(size_t slots, size_t keys, Policy policy)
    : slot_key_(slots, kAbsent), pinned_by_(slots, 0), slot_of_(keys, kAbsent), position_(slots), policy_(policy),
      uses_(policy == Policy::lfu ? keys : 0, 0) {
  for (size_t s = 0; s < slots; ++s) position_[s] = recency_.insert(recency_.end(), s);
}

void ExpertCache::touch(size_t slot) {
  recency_.splice(recency_.end(), recency_, position_[slot]);
  pinned_by_[slot] = fetch_;
}

void ExpertCache::count(Key key) {
  if (policy_ != Policy::lfu) return;
  ++uses_[key];
  // Aging: every `keys` requests all counts halve, so old popularity fades.
  if (++requests_ % uses_.size() == 0)
    for (uint32_t& u : uses_) u /= 2;
}

std::optional<size_t> ExpertCache::find(Key key) {
  count(key);
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
  // Free slots sit first in recency order (never used or forgotten), then
  // the least recent; lfu takes the least used of the unpinned ones.
  size_t chosen = kAbsent;
  for (const size_t slot : recency_) {
    if (slot_key_[slot] == kAbsent) {
      chosen = slot;
      break;
    }
    if (pinned_by_[slot] == fetch_) continue;
    if (chosen == kAbsent) chosen = slot;
    if (policy_ == Policy::lru) break;
    if (uses_[slot_key_[slot]] < uses_[slot_key_[chosen]]) chosen = slot;
  }
  if (chosen != kAbsent) {
    if (slot_key_[chosen] != kAbsent) slot_of_[slot_key_[chosen]] = kAbsent;
    slot_key_[chosen] = key;
    slot_of_[key] = chosen;
    touch(chosen);
    return chosen;
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
