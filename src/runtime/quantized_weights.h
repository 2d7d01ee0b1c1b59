// Which matrices of a model are held quantized, and how their held bytes are
// made (DESIGN.md, "Weight formats"): those a pre-quantized checkpoint stores
// quantized, in its scheme's layout; with --quantize, every other float
// matrix but the ones kept_unquantized() names (unless --quantize-all), in
// strata's own group-wise layout; routed experts included. The planner, the
// weight store and the expert store ask the same object, so the plan counts
// exactly what the stores hold.
// Thread-safety: immutable after construction.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>

#include "format/quantized_checkpoint.h"
#include "models/causal_lm.h"
#include "quant/quantize.h"
#include "runtime/convert.h"
#include "runtime/offload_folder.h"
#include "strata/model_config.h"

namespace strata {

class QuantizedWeights {
 public:
  // stored: the checkpoint's own quantization; in_situ: --quantize's.
  QuantizedWeights(const ModelConfig& config, const Checkpoint& checkpoint, std::optional<QuantScheme> stored,
                   std::optional<InSituQuant> in_situ, bool quantize_all);
  QuantizedWeights(const QuantizedWeights&) = delete;
  QuantizedWeights& operator=(const QuantizedWeights&) = delete;

  // The layout the matrix weight `name` is held in, or null when it is held
  // as a float matrix.
  const QuantLayout* layout_of(const std::string& name) const;
  // How to make its held bytes from `checkpoint` (the one it was built
  // from); nullopt when it is not held quantized. Throws strata::Error naming
  // the tensor for stored tensors that do not fit the scheme.
  std::optional<QuantizedSource> source_of(const Checkpoint& checkpoint, const WeightSpec& weight) const;

  // Whether `name` is held in --quantize's layout (made from a float matrix,
  // through the offload folder), not as the checkpoint stores it.
  bool made_in_situ(const std::string& name) const { return layout_of(name) == &in_situ_layout_; }

  bool any() const { return stored_ || in_situ_; }
  const std::optional<QuantScheme>& stored() const { return stored_; }
  const std::optional<InSituQuant>& in_situ() const { return in_situ_; }

 private:
  std::optional<QuantScheme> stored_;
  std::optional<InSituQuant> in_situ_;
  QuantLayout in_situ_layout_;
  // Every matrix weight of the blocks and experts held quantized, decided at construction.
  std::unordered_map<std::string, const QuantLayout*> layouts_;
};

// A quantized matrix into its place at dst on home: repacked straight from a
// pre-quantized checkpoint (folder null), or copied from the offload folder
// that holds it quantized. A device other than the host gets it through one
// host buffer of its bytes.
void fill_quantized(const OffloadFolder* folder, const Checkpoint& checkpoint, const QuantizedSource& source,
                    size_t bytes, uint8_t* dst, Device& home, const Device& host, ThreadPool* pool);

// Parses --quantize's value: "int8", "int4", or with "-rtn" plain
// round-to-nearest ("int4-rtn", for comparison); "" or "none": nullopt.
// Throws strata::Error for anything else.
std::optional<InSituQuant> parse_quantize(const std::string& text);

}  // namespace strata
