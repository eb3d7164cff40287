// The MQ-Tokenizer model (TokenRec, stage 1): masked input -> K encoders -> K codebooks ->
// mean of the K chosen codewords -> decoder -> reconstruction. One object holds every parameter
// in one flat buffer (so AdamW is one call), its gradients, the AdamW moments and reusable
// scratch space. Training runs one batch per call (train_step); the caller (TypeScript) drives
// epochs, codebook initialisation, dead-codeword re-seeding and statistics.
//
// Parameter buffer layout: [encoder 0, ..., encoder K-1, codebooks (K, L, dc), decoder], each
// encoder/decoder in the MlpShape layout (mlp.h).
//
// Loss of a batch of B samples (x: (B, d)):
//   recon      = mean_{b,j} (x[b,j] - r[b,j])^2                (r = decoder(mean_k c^k_{w_k}))
//   codebook   = sum_k mean_{b,e} (sg[a^k] - c^k_w)^2
//   commitment = beta * sum_k mean_{b,e} (a^k - sg[c^k_w])^2
//   decorrelation = lambda * sum_{k<j} ||C_kj||_F^2 / (tr C_kk * tr C_jj)      (off when lambda = 0)
//     where C_kj = A_k^T A_j / B is the cross-covariance of encoders k and j over the batch
//     (A_k: encoder k's outputs (B, dc), centred per column). Beyond the paper: with the mean
//     decoder every encoder gets the same straight-through gradient, so the K encoders drift to
//     the same function and their codebooks partition the items alike (collisions); this term,
//     in [0, lambda] per pair, pushes them onto unrelated directions of the input.
// with the straight-through estimator carrying dL/dz to every a^k (vq.h). The mask is applied to
// the encoders' input only; the reconstruction target is the unmasked x.
#pragma once
#include <cstdint>
#include <mutex>
#include <vector>

#include "tokenrec/mlp.h"
#include "tokenrec/vq.h"

namespace tokenrec {

struct MqConfig {
  int64_t d = 64;                              // input (collaborative vector) width
  int64_t K = 3;                               // number of codebooks / encoders
  int64_t L = 256;                             // codewords per codebook
  int64_t dc = 512;                            // codebook dimension
  std::vector<int64_t> enc_hidden{128, 256};   // encoder hidden widths: d -> ... -> dc
  std::vector<int64_t> dec_hidden{256, 128};   // decoder hidden widths: dc -> ... -> d
  float mask_rate = 0.2f;
  float beta = 0.25f;                          // commitment weight
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.01f;
  uint64_t seed = 1;
  // false: one masked input shared by the K encoders (the paper); true: each encoder draws its own
  // mask (seed mask_seed_of_encoder(seed, k)), which decorrelates the K codebooks' training signals.
  bool independent_masks = false;
  // Weight lambda of the cross-encoder decorrelation term (see the loss above); 0 = the paper's loss.
  float decorrelation = 0.f;

  void validate() const;
  MlpShape encoder_shape() const;
  MlpShape decoder_shape() const;
};

// Mask seed of encoder k when MqConfig::independent_masks is set.
inline uint64_t mask_seed_of_encoder(uint64_t seed, int64_t k) { return mix64(seed ^ (0x9E3779B97F4A7C15ull * uint64_t(k + 1))); }

struct MqStepStats {
  double loss = 0, recon = 0, codebook = 0, commitment = 0, decorrelation = 0;
};

class MqTokenizer {
 public:
  // Weights from `cfg.seed` (PyTorch-like init; codebooks ~ U(-1/L, 1/L) until k-means replaces them).
  explicit MqTokenizer(const MqConfig& cfg);

  const MqConfig& config() const { return cfg_; }
  int64_t num_params() const { return int64_t(params_.size()); }
  int64_t encoder_offset(int64_t k) const { return k * enc_.num_params(); }
  int64_t codebook_offset() const { return cfg_.K * enc_.num_params(); }
  int64_t decoder_offset() const { return codebook_offset() + cfg_.K * cfg_.L * cfg_.dc; }
  const MlpShape& encoder_shape() const { return enc_; }
  const MlpShape& decoder_shape() const { return dec_; }

  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  const float* grads() const { return grads_.data(); }
  int64_t step() const { return step_; }
  void set_step(int64_t s) { step_ = s; }
  // AdamW moments (same layout as params): saved with a checkpoint to resume training.
  std::vector<float>& adam_m() { return m_; }
  std::vector<float>& adam_v() { return v_; }

  // Loss and gradients (into grads()) of one batch, without updating. x: (B, d); row_ids: (B)
  // sample ids for the mask (null: 0..B-1); epoch: selects the mask draw; mask_rate < 0 uses the
  // config's rate (0 disables). idx_out: (B, K) chosen codewords, or null.
  MqStepStats loss_and_grads(const float* x, const int32_t* row_ids, int64_t B, uint64_t epoch,
                             float mask_rate, int32_t* idx_out);
  // loss_and_grads, then one AdamW update of every parameter.
  MqStepStats train_step(const float* x, const int32_t* row_ids, int64_t B, uint64_t epoch, int32_t* idx_out);

  // Inference (no mask; pure: reads only the parameters). a: (B, K, dc) encoder outputs.
  void encoder_outputs(const float* x, int64_t B, float* a) const;
  // codes: (B, K); dist: (B, K) or null.
  void encode(const float* x, int64_t B, int32_t* codes, float* dist) const;
  // r: (B, d) reconstruction through the quantiser; codes: (B, K) or null.
  void reconstruct(const float* x, int64_t B, float* r, int32_t* codes) const;

  // Replaces codewords (k, rows[i]) with values (n, dc) and clears their AdamW moments (a
  // re-seeded codeword starts fresh). rows: (n) in [0, L).
  void set_codewords(int64_t k, const int32_t* rows, int64_t n, const float* values);

  // Serialises calls from several worker threads on one object.
  std::mutex& mutex() const { return mu_; }

 private:
  MqConfig cfg_;
  MlpShape enc_, dec_;
  std::vector<float> params_, grads_, m_, v_;
  int64_t step_ = 0;
  // scratch, resized per batch
  std::vector<float> xin_, enc_acts_, a_, z_, dec_acts_, dr_, dz_, da_, da_k_;
  std::vector<float> centred_, cross_;  // decorrelation scratch: centred outputs (B, K, dc), C_kj (dc, dc)
  std::vector<int32_t> idx_;
  mutable std::mutex mu_;
};

}  // namespace tokenrec
