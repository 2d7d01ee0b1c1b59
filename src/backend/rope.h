// Rotary position embedding tables, as transformers' LlamaRotaryEmbedding
// computes them (including llama3 scaling), or frequencies a family computed
// itself (Phi-3's longrope) with their attention scaling. The frequencies
// are shared by every backend; apply() is the host implementation.
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
  // Default (or llama3) frequencies from theta; attention scaling 1.
  Rope(int head_dim, double theta, const Llama3Scaling* llama3);
  // Ready frequencies (head_dim = 2 * inv_freq.size()) and the factor that
  // multiplies cos and sin, as modeling_rope_utils.py returns them
  // (longrope: `cos = emb.cos() * attention_scaling`).
  Rope(std::vector<float> inv_freq, float attention_scaling);

  // Rotates heads [count, head_dim] of one token at position pos in place
  // (host memory), rotate-half style: x * cos + rotate_half(x) * sin, with
  // angle = inv_freq[i] * pos, cos and sin times attention_scaling, in float32.
  void apply(float* heads, int count, int64_t pos) const;
  int head_dim() const { return head_dim_; }
  // [head_dim / 2] frequencies.
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  float attention_scaling() const { return attention_scaling_; }

 private:
  int head_dim_;
  std::vector<float> inv_freq_;
  float attention_scaling_ = 1.0f;
};

}  // namespace strata
