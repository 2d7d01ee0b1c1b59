// How far a run's logits are from reference logits, as llama.cpp's
// perplexity --kl-divergence reports it: the KL divergence of the run's
// token distribution from the reference's per position (in float64,
// softmax of each row), and how often the most likely token agrees.
#pragma once

#include <cstddef>
#include <span>

namespace strata {

struct KldStats {
  double mean = 0;          // mean over positions of KL(reference || run), in nats
  double max = 0;
  double top1_agreement = 0;  // share of positions whose argmax agrees
  size_t positions = 0;
};

// reference and run: [positions, vocab], row-major. Throws strata::Error
// when their sizes differ or are not a multiple of vocab.
KldStats kl_divergence(std::span<const float> reference, std::span<const float> run, size_t vocab);

}  // namespace strata
