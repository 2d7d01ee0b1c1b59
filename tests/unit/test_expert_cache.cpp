// The expert cache's books: least recently used replacement, the experts of
// the fetch in progress pinned, and forgotten entries never found.
#include <gtest/gtest.h>

#include "runtime/expert_cache.h"
#include "strata/error.h"

namespace strata {
namespace {

TEST(ExpertCache, ReplacesTheLeastRecentlyUsed) {
  ExpertCache cache(2, 10);
  cache.begin_fetch();
  const size_t a = cache.place(1);
  const size_t b = cache.place(2);
  EXPECT_NE(a, b);
  cache.begin_fetch();
  EXPECT_EQ(cache.find(1), a);  // 1 is now the most recent
  cache.begin_fetch();
  EXPECT_EQ(cache.place(3), b) << "2 was the least recently used";
  EXPECT_FALSE(cache.find(2).has_value());
  EXPECT_EQ(cache.find(1), a);
  EXPECT_EQ(cache.hits(), 2u);
  EXPECT_EQ(cache.misses(), 1u);
}

TEST(ExpertCache, AFetchNeverEvictsWhatItUses) {
  ExpertCache cache(2, 10);
  cache.begin_fetch();
  cache.place(1);
  cache.place(2);
  cache.begin_fetch();
  ASSERT_TRUE(cache.find(2).has_value());
  const size_t slot = cache.place(3);  // 1 goes: 2 is pinned by this fetch
  EXPECT_TRUE(cache.find(2).has_value());
  EXPECT_FALSE(cache.find(1).has_value());
  EXPECT_THROW(cache.place(4), Error) << "both slots are pinned by this fetch";
  EXPECT_EQ(cache.find(3), slot);
}

TEST(ExpertCache, ForgottenEntriesAreNotFoundAndTheirSlotGoesFirst) {
  ExpertCache cache(3, 10);
  cache.begin_fetch();
  cache.place(1);
  const size_t two = cache.place(2);
  cache.place(3);
  cache.forget(2);
  cache.forget(7);  // not cached: nothing happens
  cache.begin_fetch();
  EXPECT_FALSE(cache.find(2).has_value());
  EXPECT_EQ(cache.place(4), two) << "a forgotten slot is reused before any cached expert";
  EXPECT_TRUE(cache.find(1).has_value());
  EXPECT_TRUE(cache.find(3).has_value());
}

TEST(ExpertCache, LfuKeepsTheOftenUsedOverTheRecent) {
  ExpertCache cache(2, 10, ExpertCache::Policy::lfu);
  for (int step = 0; step < 3; ++step) {  // expert 1 is asked for three times
    cache.begin_fetch();
    if (!cache.find(1)) cache.place(1);
  }
  cache.begin_fetch();
  if (!cache.find(2)) cache.place(2);  // 2 once, and more recently
  cache.begin_fetch();
  ASSERT_FALSE(cache.find(3).has_value());
  cache.place(3);
  EXPECT_TRUE(cache.find(1).has_value()) << "lfu evicts the rarely used 2, not the often used 1";
  EXPECT_FALSE(cache.find(2).has_value());

  ExpertCache lru(2, 10, ExpertCache::Policy::lru);
  for (const size_t key : {1, 1, 1, 2}) {
    lru.begin_fetch();
    if (!lru.find(key)) lru.place(key);
  }
  lru.begin_fetch();
  lru.place(3);
  EXPECT_FALSE(lru.find(1).has_value()) << "lru evicts the least recent, 1";
}

}  // namespace
}  // namespace strata
