// Rotary position embedding tables, as transformers' LlamaRotaryEmbedding
// computes them (including llama3 scaling). The frequencies are shared by
// every backend; apply() is the host implementation.
#pragma once

#include <cstdint>
#include <vector>

namespace strata {

class Rope {
 public:
  struct Llama3Scaling {
    float factor = 8.0f;
    float low_freq_factor = 1.0f;
    float high_freq_factor = 4.0f;
    float original_max_position_embeddings = 8192.0f;
  };
  Rope(int head_dim, double theta, const Llama3Scaling* llama3);

  // Rotates heads [count, head_dim] of one token at position pos in place
  // (host memory), rotate-half style: x * cos + rotate_half(x) * sin, with
  // angle = inv_freq[i] * pos in float32.
  void apply(float* heads, int count, int64_t pos) const;
  int head_dim() const { return head_dim_; }
  // [head_dim / 2] frequencies.
  const std::vector<float>& inv_freq() const { return inv_freq_; }

 private:
  int head_dim_;
  std::vector<float> inv_freq_;
};

}  // namespace strata
