// accelerate's clean_device_map: merge every prefix whose entries all share one device.
#pragma once

#include "plan/device.h"

namespace strata::plan {

// Returns the merged map. Accelerate walks children through a Python set, so its
// key order depends on PYTHONHASHSEED; ours keeps first-seen order. The content
// is the same.
DeviceMap clean_device_map(DeviceMap device_map);

}  // namespace strata::plan
