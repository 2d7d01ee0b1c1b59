// strata serve: what GET /v1/strata/plan reports — the device map, the bytes
// one decode step moves from each tier, the rates of those tiers measured on
// this machine at start-up, and the tokens per second they allow.
#pragma once

#include <nlohmann/json.hpp>

#include "strata/model.h"
#include "strata/scheduler.h"

namespace strata::cli::serve {

// Measures host-memory, disk and copy rates on the bytes the model's steps
// read (a bounded sample of each, about a second at most) and returns the
// plan. Runs the model's thread pool: call it before the scheduler starts.
nlohmann::json measure_plan(Model& model, const SchedulerOptions& options);

}  // namespace strata::cli::serve
