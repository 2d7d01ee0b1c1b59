// A cache of routed experts in a fixed number of equal slots (DESIGN.md,
// "Devices, tiers and the unit of placement"): host RAM for experts read
// from disk, accelerator memory for experts copied from RAM. It only keeps
// the books — which expert each slot holds — so one class serves both.
//
// Replacement is least recently used (lru), or frequency-weighted (lfu):
// the expert asked for least often goes, the least recent among equals, with
// counts that outlive eviction and halve as they age, so hot experts stay
// while the routing drifts. Either way the experts of the fetch in progress
// are pinned, so a fetch never evicts what it just brought in.
// Thread-safety: used by the one thread that runs the model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <vector>

namespace strata {

class ExpertCache {
 public:
  // Experts are numbered 0..keys-1 by whoever uses the cache.
  using Key = size_t;
  static constexpr size_t kAbsent = static_cast<size_t>(-1);

  enum class Policy { lru, lfu };

  ExpertCache() = default;
  ExpertCache(size_t slots, size_t keys, Policy policy = Policy::lru);
  size_t slots() const { return slot_key_.size(); }

  // A new fetch begins: the experts it finds or places are pinned until the next.
  void begin_fetch() { ++fetch_; }
  // The slot holding `key`, now most recently used and pinned; nullopt when absent.
  std::optional<size_t> find(Key key);
  // A slot for `key`, which is not cached: a free one, else the least
  // recently used that this fetch has not pinned (its expert is dropped).
  // The caller fills it. Throws strata::Error when every slot is pinned
  // (a fetch asked for more experts than the cache holds).
  size_t place(Key key);
  // Drops `key` if cached: its slot was placed but never filled (a step
  // that failed midway), so it must not be found.
  void forget(Key key);

  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }

 private:
  void touch(size_t slot);
  void count(Key key);

  std::vector<Key> slot_key_;         // kAbsent: free
  std::vector<uint64_t> pinned_by_;  // the fetch that last used each slot
  std::vector<size_t> slot_of_;      // per key: its slot, or kAbsent
  std::list<size_t> recency_;  // least recently used first
  std::vector<std::list<size_t>::iterator> position_;
  Policy policy_ = Policy::lru;
  std::vector<uint32_t> uses_;  // lfu: requests per key, halved every keys requests
  uint64_t requests_ = 0;
  uint64_t fetch_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace strata
