// Bad input to the planner is reported as strata::Error, never asserted.
#include <gtest/gtest.h>

#include "plan/balanced_memory.h"
#include "plan/clean_device_map.h"
#include "plan/device_map.h"
#include "plan/module_tree.h"
#include "strata/error.h"

namespace strata::plan {
namespace {

ModuleTree small_tree() {
  ModuleTree t;
  t.root = parse_module_tree_json(R"({"name": "", "class": "M", "params": {}, "buffers": {}, "children": [
      {"name": "a", "class": "Linear", "params": {"weight": {"shape": [4, 4], "dtype": "float32"}}, "children": []},
      {"name": "b", "class": "Linear", "params": {"weight": {"shape": [4, 4], "dtype": "float32"}}, "children": []}]})");
  return t;
}

TEST(PlanErrors, MalformedTreesThrow) {
  EXPECT_THROW(parse_module_tree_json("{"), Error);
  EXPECT_THROW(parse_module_tree_json(R"({"params": {"w": {"dtype": "float32"}}})"), Error);
  EXPECT_THROW(parse_module_tree_json(R"({"params": {"w": {"shape": [-1], "dtype": "float32"}}})"), Error);
  EXPECT_THROW(parse_module_tree_json(R"({"children": [{"class": "X"}]})"), Error);
}

TEST(PlanErrors, UnknownDtypeAndDeviceThrow) {
  ModuleTree t = small_tree();
  t.root.children[0].params[0].dtype = "float13";
  EXPECT_THROW(compute_module_sizes(t, {}), Error);
  EXPECT_THROW(parse_device("gpu0"), Error);
  EXPECT_THROW(normalize_max_memory({{Device::gpu_(0), 1}, {Device::gpu_(0), 2}}), Error);
  EXPECT_THROW(normalize_max_memory({{Device::cpu_(), -1}}), Error);
}

TEST(PlanErrors, BalancedRejectsDiskBudget) {
  // accelerate 0.33 raises here too (torch.device("disk")).
  EXPECT_THROW(get_balanced_memory(small_tree(), {{Device::gpu_(0), 100}, {Device::disk_(), 100}}, {}, {}, false),
               Error);
}

TEST(PlanErrors, TiedGroupOutsideTreeThrows) {
  ModuleTree t = small_tree();
  t.tied = {{"a.weight", "zzz.weight"}};
  EXPECT_THROW(infer_auto_device_map(t, {{Device::gpu_(0), 1000}}, {}), Error);
}

TEST(PlanCleanDeviceMap, MergesOnlyUniformPrefixes) {
  const DeviceMap m = clean_device_map({{"m.layers.1", Device::gpu_(0)},
                                        {"m.layers.10", Device::gpu_(1)},
                                        {"m.layers.2", Device::gpu_(0)},
                                        {"lm_head", Device::cpu_()}});
  const DeviceMap want = {{"m.layers.1", Device::gpu_(0)},
                          {"m.layers.10", Device::gpu_(1)},
                          {"m.layers.2", Device::gpu_(0)},
                          {"lm_head", Device::cpu_()}};
  EXPECT_EQ(m, want);
  const DeviceMap all = clean_device_map({{"a", Device::disk_()}, {"b.c", Device::disk_()}});
  EXPECT_EQ(all, (DeviceMap{{"", Device::disk_()}}));
}

}  // namespace
}  // namespace strata::plan
