#include "backend/rope.h"

#include <cmath>
#include <numbers>
#include <utility>

namespace strata {

Rope::Rope(int head_dim, double theta, const Llama3Scaling* llama3) : head_dim_(head_dim) {
  // inv_freq = 1 / theta^(2i / dim), in float32 as transformers computes it.
  const int half = head_dim / 2;
  inv_freq_.resize(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq_[static_cast<size_t>(i)] = 1.0f / std::pow(static_cast<float>(theta), exponent);
  }
  if (!llama3) return;
  // _compute_llama3_parameters in transformers' modeling_rope_utils.py.
  const double old_len = llama3->original_max_position_embeddings;
  const double low_wavelen = old_len / llama3->low_freq_factor;
  const double high_wavelen = old_len / llama3->high_freq_factor;
  for (float& f : inv_freq_) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (wavelen > low_wavelen) {
      f = f / llama3->factor;
    } else if (wavelen >= high_wavelen) {
      const float smooth = static_cast<float>((old_len / wavelen - llama3->low_freq_factor) /
                                              (llama3->high_freq_factor - llama3->low_freq_factor));
      f = (1.0f - smooth) * f / llama3->factor + smooth * f;
    }
  }
}

Rope::Rope(std::vector<float> inv_freq, float attention_scaling)
    : head_dim_(static_cast<int>(2 * inv_freq.size())),
      inv_freq_(std::move(inv_freq)),
      attention_scaling_(attention_scaling) {}

void Rope::apply(float* heads, int count, int64_t pos) const {
  const int half = head_dim_ / 2;
  const float p = static_cast<float>(pos);
  for (int i = 0; i < half; ++i) {
    const float angle = inv_freq_[static_cast<size_t>(i)] * p;
    float c = std::cos(angle);
    float s = std::sin(angle);
    // Skipped at 1 so that unscaled ropes keep exactly the code they had.
    if (attention_scaling_ != 1.0f) {
      c *= attention_scaling_;
      s *= attention_scaling_;
    }
    for (int h = 0; h < count; ++h) {
      float* x = heads + static_cast<size_t>(h) * static_cast<size_t>(head_dim_);
      const float x1 = x[i];
      const float x2 = x[i + half];
      x[i] = x1 * c - x2 * s;
      x[i + half] = x2 * c + x1 * s;
    }
  }
}

}  // namespace strata
