#include "backend/ops.h"

#include <string>

#include "strata/error.h"

namespace strata {

ComputeMode parse_compute_mode(std::string_view text) {
  if (text == "exact") return ComputeMode::exact;
  if (text == "fast") return ComputeMode::fast;
  throw Error("--compute must be exact or fast, not '" + std::string(text) + "'");
}

}  // namespace strata
