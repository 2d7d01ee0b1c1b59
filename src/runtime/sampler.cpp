// Token choice, following transformers' LogitsWarpers in the order generate()
// applies them: TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
// then a multinomial draw from the softmax.
#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "strata/error.h"
#include "strata/generate.h"

namespace strata {

Sampler::Sampler(const SamplingOptions& options) : options_(options), state_(options.seed) {
  if (options.temperature < 0) throw Error("temperature must be >= 0");
  if (options.top_k < 0) throw Error("top-k must be >= 0");
  if (!(options.top_p > 0 && options.top_p <= 1)) throw Error("top-p must be in (0, 1]");
}

// splitmix64: the same sequence on every platform, so a seed reproduces a run anywhere.
double Sampler::next_uniform() { return unit_interval(splitmix64(state_)); }

int32_t Sampler::pick(std::span<const float> logits) {
  if (logits.empty()) throw Error("cannot sample from empty logits");
  if (options_.temperature == 0.0) {
    // torch.argmax: the first of equal maxima.
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  const float temperature = static_cast<float>(options_.temperature);
  candidates_.clear();
  for (size_t i = 0; i < logits.size(); ++i) candidates_.emplace_back(logits[i] / temperature, static_cast<int32_t>(i));
  // Best first; ties by lower id, so the order is fully determined.
  auto better = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };

  size_t keep = candidates_.size();
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < keep) {
    std::nth_element(candidates_.begin(), candidates_.begin() + options_.top_k - 1, candidates_.end(), better);
    // Like TopKLogitsWarper, keep everything tied with the k-th score.
    const float kth = candidates_[static_cast<size_t>(options_.top_k - 1)].first;
    keep = static_cast<size_t>(std::partition(candidates_.begin(), candidates_.end(),
                                              [&](const auto& c) { return c.first >= kth; }) -
                               candidates_.begin());
  }
  std::sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(keep), better);
  candidates_.resize(keep);

  // Softmax over the survivors.
  probs_.resize(keep);
  const double max_score = candidates_.front().first;
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += probs_[i] = std::exp(static_cast<double>(candidates_[i].first) - max_score);
  for (double& p : probs_) p /= sum;

  if (options_.top_p < 1.0) {
    // TopPLogitsWarper removes the tokens whose ascending cumulative
    // probability is <= 1 - top_p; from the best down, that keeps tokens
    // until the probability mass above them reaches top_p (at least one).
    double above = 0;
    size_t n = 0;
    while (n < keep && (n == 0 || above < options_.top_p)) above += probs_[n++];
    keep = n;
    double renorm = 0;
    for (size_t i = 0; i < keep; ++i) renorm += probs_[i];
    for (size_t i = 0; i < keep; ++i) probs_[i] /= renorm;
  }

  const double u = next_uniform();
  double cumulative = 0;
  for (size_t i = 0; i < keep; ++i) {
    cumulative += probs_[i];
    if (u < cumulative) return candidates_[i].second;
  }
  return candidates_[keep - 1].second;
}

}  // namespace strata
