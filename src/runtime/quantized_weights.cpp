#include "runtime/quantized_weights.h"

#include <unordered_set>

#include "format/mapped_file.h"
#include "models/architecture.h"
#include "strata/error.h"

namespace strata {

QuantizedWeights::QuantizedWeights(const ModelConfig& config, const Checkpoint& checkpoint,
                                   std::optional<QuantScheme> stored, std::optional<InSituQuant> in_situ,
                                   bool quantize_all)
    : stored_(std::move(stored)),
      in_situ_(in_situ),
      in_situ_layout_(in_situ ? strata::in_situ_layout(*in_situ) : QuantLayout{}) {
  const std::unordered_set<std::string> kept = quantize_all ? std::unordered_set<std::string>{} : kept_unquantized(config);
  const auto decide = [&](const WeightSpec& w) {
    if (w.is_vector()) return;
    if (stored_ && stored_quantized_matrix(checkpoint, *stored_, w.name)) {
      layouts_[w.name] = &stored_->layout;
    } else if (in_situ_ && !kept.count(w.name)) {
      const TensorInfo* t = checkpoint.find(w.name);
      if (t && is_float(t->dtype)) layouts_[w.name] = &in_situ_layout_;
    }
  };
  for (const BlockSpec& block : model_blocks(config))
    for (const WeightSpec& w : block.weights) decide(w);
  // Routed experts: the expert store holds an expert's three matrices alike,
  // all quantized or none.
  for (const ExpertSpec& e : model_experts(config)) {
    for (const WeightSpec* w : e.weights()) decide(*w);
    const QuantLayout* gate = layout_of(e.gate.name);
    if (layout_of(e.up.name) != gate || layout_of(e.down.name) != gate)
      throw Error("an expert's matrices are quantized differently", checkpoint.dir().string(), e.module,
                  "strata holds an expert's gate, up and down projections alike");
  }
}

const QuantLayout* QuantizedWeights::layout_of(const std::string& name) const {
  const auto it = layouts_.find(name);
  return it == layouts_.end() ? nullptr : it->second;
}

std::optional<QuantizedSource> QuantizedWeights::source_of(const Checkpoint& checkpoint, const WeightSpec& weight) const {
  if (weight.is_vector()) return std::nullopt;
  const QuantLayout* layout = layout_of(weight.name);
  if (!layout) return std::nullopt;
  QuantizedSource s;
  s.layout = layout;
  s.rows = weight.shape[0];
  s.cols = weight.shape[1];
  if (layout == &in_situ_layout_) {
    s.plain = &checkpoint.get(weight.name);
    s.transposed = weight.transposed;
    s.in_situ = *in_situ_;
  } else {
    if (weight.transposed)
      throw Error("quantized Conv1D weights are not supported", checkpoint.dir().string(), weight.name);
    s.scheme = &*stored_;
    s.stored = *find_quantized(checkpoint, *stored_, weight.name, s.rows, s.cols);
  }
  return s;
}

void fill_quantized(const OffloadFolder* folder, const Checkpoint& checkpoint, const QuantizedSource& source,
                    size_t bytes, uint8_t* dst, Device& home, const Device& host, ThreadPool* pool) {
  if (folder) {
    const auto held = folder->data(source.plain->name);
    home.copy_in(dst, held.data(), bytes);
    release_mapped_pages(held);
    return;
  }
  std::vector<uint8_t> staging;
  uint8_t* to = dst;
  if (&home != &host) {
    staging.resize(bytes);
    to = staging.data();
  }
  make_quantized(checkpoint, source, to, pool);
  if (&home != &host) home.copy_in(dst, to, bytes);
  // The file pages were read once; keep them out of this process's memory.
  for (const TensorInfo* t : {source.stored.codes, source.stored.scales, source.stored.zeros, source.stored.group_index})
    if (t) release_mapped_pages(checkpoint.data(*t));
}

std::optional<InSituQuant> parse_quantize(const std::string& text) {
  if (text.empty() || text == "none") return std::nullopt;
  InSituQuant q;
  std::string bits = text;
  if (bits.size() > 4 && bits.ends_with("-rtn")) {
    q.method = QuantizeMethod::round_to_nearest;
    bits.resize(bits.size() - 4);
  }
  if (bits == "int8")
    q.bits = 8;
  else if (bits == "int4")
    q.bits = 4;
  else
    throw Error("unknown --quantize '" + text + "'", "", "", "use int8 or int4 (or int8-rtn, int4-rtn)");
  return q;
}

}  // namespace strata
