#include "runtime/kld.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "strata/error.h"

namespace strata {
namespace {

// log_softmax of one row, in float64.
void log_softmax(std::span<const float> row, std::vector<double>& out) {
  out.resize(row.size());
  const double top = *std::max_element(row.begin(), row.end());
  double sum = 0;
  for (size_t i = 0; i < row.size(); ++i) sum += std::exp(static_cast<double>(row[i]) - top);
  const double log_sum = std::log(sum) + top;
  for (size_t i = 0; i < row.size(); ++i) out[i] = static_cast<double>(row[i]) - log_sum;
}

}  // namespace

KldStats kl_divergence(std::span<const float> reference, std::span<const float> run, size_t vocab) {
  if (vocab == 0 || reference.size() != run.size() || reference.size() % vocab != 0)
    throw Error("logits to compare differ in size: " + std::to_string(reference.size()) + " and " +
                std::to_string(run.size()) + " values, vocabulary " + std::to_string(vocab));
  KldStats s;
  s.positions = reference.size() / vocab;
  std::vector<double> p, q;
  size_t agree = 0;
  for (size_t r = 0; r < s.positions; ++r) {
    const auto ref_row = reference.subspan(r * vocab, vocab), run_row = run.subspan(r * vocab, vocab);
    log_softmax(ref_row, p);
    log_softmax(run_row, q);
    double kld = 0;
    for (size_t i = 0; i < vocab; ++i) kld += std::exp(p[i]) * (p[i] - q[i]);
    s.mean += kld;
    s.max = std::max(s.max, kld);
    agree += std::max_element(ref_row.begin(), ref_row.end()) - ref_row.begin() ==
             std::max_element(run_row.begin(), run_row.end()) - run_row.begin();
  }
  if (s.positions > 0) {
    s.mean /= static_cast<double>(s.positions);
    s.top1_agreement = static_cast<double>(agree) / static_cast<double>(s.positions);
  }
  return s;
}

}  // namespace strata
