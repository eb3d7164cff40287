// Dense multi-layer perceptrons for the MQ-Tokenizer's encoders and decoder, with an optional
// Bernoulli input mask fused into the first layer.
//
// An MLP with n layers has dims[0..n] (dims[0] = input width, dims[n] = output width). Layer l maps
// (B, dims[l]) -> (B, dims[l+1]) as Y = X W_l^T + b_l, followed by ReLU on every layer but the
// last. The parameters of one MLP are one flat fp32 buffer, layer after layer:
//   [W_0 (dims[1], dims[0]) row-major, b_0 (dims[1]), W_1 (dims[2], dims[1]), b_1 (dims[2]), ...]
// (the PyTorch nn.Linear layout), so one AdamW call updates a whole model.
//
// Activations buffer `acts` (filled by forward, read by backward), flat, layer after layer:
//   [X_0 (B, dims[0]) = the (masked) input, X_1 (B, dims[1]), ..., X_n (B, dims[n]) = output]
// X_l for 0 < l < n holds post-ReLU values (ReLU'(pre) = [post > 0], so pre-activations are not kept).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#ifdef __CUDACC__
#define TOKENREC_HD __host__ __device__
#else
#define TOKENREC_HD
#endif

namespace tokenrec {

// ---- masking ---------------------------------------------------------------------------------
// Element (row, j) of the input is zeroed with probability `rate`, drawn independently per element,
// per sample (row = the sample's id, not its position in the batch) and per epoch, from a
// counter-based hash: the same (seed, epoch, row, j) always gives the same draw, on the CPU and on
// the GPU, whatever the batch composition or thread count. Zeroed elements are not rescaled
// (masking is input corruption, as in the paper, not inverted dropout).
struct MaskSpec {
  float rate = 0.f;                 // in [0, 1); 0 disables the mask
  uint64_t seed = 0;
  uint64_t epoch = 0;
  const int32_t* row_ids = nullptr; // (B) sample ids, or null: row b has id b
};

TOKENREC_HD inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform draw in [0, 1) for element (row, j) of `epoch`; 24 bits, exactly representable in fp32.
TOKENREC_HD inline float mask_uniform(uint64_t seed, uint64_t epoch, uint64_t row, uint64_t j) {
  uint64_t h = mix64(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull);
  h = mix64(h ^ (epoch * 0xD1B54A32D192ED03ull));
  h = mix64(h ^ (row * 0xAEF17502108EF2D9ull));
  h = mix64(h ^ (j + 0x2545F4914F6CDD1Dull));
  return float(h >> 40) * (1.0f / 16777216.0f);
}

// True when the element is kept (not masked).
TOKENREC_HD inline bool mask_keep(const MaskSpec& m, uint64_t row, uint64_t j) {
  return m.rate <= 0.f || mask_uniform(m.seed, m.epoch, row, j) >= m.rate;
}

// ---- shapes ----------------------------------------------------------------------------------
struct MlpShape {
  std::vector<int64_t> dims;  // n + 1 widths, each > 0, n >= 1

  int64_t layers() const { return int64_t(dims.size()) - 1; }
  int64_t in() const { return dims.front(); }
  int64_t out() const { return dims.back(); }
  // Number of fp32 parameters (all W and b).
  int64_t num_params() const;
  // Offsets of W_l and b_l in the flat parameter buffer.
  int64_t weight_offset(int64_t l) const;
  int64_t bias_offset(int64_t l) const { return weight_offset(l) + dims[size_t(l + 1)] * dims[size_t(l)]; }
  // Floats in the activations buffer for a batch of B rows: B * sum(dims).
  int64_t acts_size(int64_t B) const;
  // Offset of X_l in the activations buffer.
  int64_t acts_offset(int64_t l, int64_t B) const;
  // Throws naming the bad width.
  void validate(const char* what) const;
};

// PyTorch nn.Linear's default initialisation: W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// drawn from a seeded generator. params: (shape.num_params()).
void mlp_init(const MlpShape& shape, uint64_t seed, float* params);

// Forward pass. params: (num_params); x: (B, in) row-major, never modified; mask: null or the mask
// applied while copying x into X_0; acts: (acts_size(B)) output. The output is X_n inside acts.
void mlp_forward_cpu(const MlpShape& shape, const float* params, const float* x, int64_t B,
                     const MaskSpec* mask, float* acts);

// Backward pass from dL/dY. params, acts: as left by forward; dy: (B, out) gradient of the loss
// w.r.t. the output; grads: (num_params) output, overwritten (or added to when accumulate);
// dx: (B, in) output gradient w.r.t. X_0 (the masked input), or null when not needed.
void mlp_backward_cpu(const MlpShape& shape, const float* params, const float* acts, int64_t B,
                      const float* dy, float* grads, float* dx, bool accumulate = false);

// CUDA mirrors (same contract, host pointers; data is copied to the device and back). Throw
// ErrorCode::Cuda when CUDA is not compiled in or no device is usable.
void mlp_forward_cuda(const MlpShape& shape, const float* params, const float* x, int64_t B,
                      const MaskSpec* mask, float* acts);
void mlp_backward_cuda(const MlpShape& shape, const float* params, const float* acts, int64_t B,
                       const float* dy, float* grads, float* dx, bool accumulate = false);

}  // namespace tokenrec
