// infer_auto_device_map of accelerate 0.33.0 (src/accelerate/utils/modeling.py),
// reproduced exactly: the same maps for the same tree and budgets.
#pragma once

#include <string>
#include <vector>

#include "plan/device.h"
#include "plan/module_sizes.h"
#include "plan/module_tree.h"

namespace strata::plan {

struct InferOptions {
  std::vector<std::string> no_split_module_classes;
  SizeOptions sizes;           // dtype= and special_dtypes=
  bool clean_result = true;    // run clean_device_map on the result
  bool offload_buffers = false;
};

struct InferResult {
  DeviceMap device_map;
  // Accelerate warns "Current model requires N bytes of buffer for offloaded
  // layers..." when the buffers of cpu/disk modules fit no GPU's remaining room.
  bool buffer_warning = false;
  double offloaded_buffer_bytes = 0;  // the N of that warning
};

// Places the tree's modules on the devices of `max_memory` (any key order; disk
// is appended, unlimited). Throws strata::Error for inconsistent tied groups.
InferResult infer_auto_device_map(const ModuleTree& tree, const MaxMemory& max_memory, const InferOptions& options);

}  // namespace strata::plan
