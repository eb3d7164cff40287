// The MQ-Tokenizer model (tokenizer.h): forward, loss, gradients and AdamW for one batch.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "tokenrec/error.h"
#include "tokenrec/gemm.h"
#include "tokenrec/optim.h"
#include "tokenrec/parallel.h"
#include "tokenrec/tokenizer.h"

namespace tokenrec {

void MqConfig::validate() const {
  require(d > 0, "tokenizer: input dimension d must be > 0, got ", d);
  require(K > 0 && K <= 64, "tokenizer: K (codebooks) must be in [1, 64], got ", K);
  require(L > 1 && L <= (int64_t(1) << 24), "tokenizer: L (codewords per codebook) must be in [2, 2^24], got ", L);
  require(dc > 0, "tokenizer: codebook dimension must be > 0, got ", dc);
  for (int64_t h : enc_hidden) require(h > 0, "tokenizer: encoder hidden widths must be > 0, got ", h);
  for (int64_t h : dec_hidden) require(h > 0, "tokenizer: decoder hidden widths must be > 0, got ", h);
  require(mask_rate >= 0.f && mask_rate < 1.f, "tokenizer: mask rate must be in [0, 1), got ", mask_rate);
  require(std::isfinite(beta) && beta >= 0.f, "tokenizer: beta must be finite and >= 0, got ", beta);
  require(std::isfinite(lr) && lr > 0.f, "tokenizer: learning rate must be finite and > 0, got ", lr);
  require(beta1 >= 0.f && beta1 < 1.f && beta2 >= 0.f && beta2 < 1.f, "tokenizer: Adam betas must be in [0, 1)");
  require(eps > 0.f, "tokenizer: eps must be > 0, got ", eps);
  require(std::isfinite(weight_decay) && weight_decay >= 0.f, "tokenizer: weight decay must be >= 0, got ", weight_decay);
  require(std::isfinite(decorrelation) && decorrelation >= 0.f, "tokenizer: decorrelation weight must be finite and >= 0, got ",
          decorrelation);
}

namespace {

// Decorrelation term and its gradient (tokenizer.h). a: encoder outputs (B, K, dc); da: their
// gradient (B, K, dc), added to. Returns lambda * sum_{k<j} ||C_kj||^2 / (s_k s_j) with
// s_k = tr C_kk. The gradients are combinations of centred rows, so their column means are
// zero and the centring itself needs no backward step.
double decorrelation_loss_grad(const float* a, int64_t B, int64_t K, int64_t dc, float lambda, float* da,
                               std::vector<float>& centred, std::vector<float>& cross) {
  centred.assign(a, a + B * K * dc);
  std::vector<double> s(static_cast<size_t>(K), 0.0), mean(static_cast<size_t>(dc), 0.0);
  for (int64_t k = 0; k < K; ++k) {
    std::fill(mean.begin(), mean.end(), 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t e = 0; e < dc; ++e) mean[size_t(e)] += centred[size_t((b * K + k) * dc + e)];
    for (int64_t b = 0; b < B; ++b)
      for (int64_t e = 0; e < dc; ++e) {
        float& v = centred[size_t((b * K + k) * dc + e)];
        v -= float(mean[size_t(e)] / double(B));
        s[size_t(k)] += double(v) * v;
      }
    s[size_t(k)] /= double(B);
  }
  cross.resize(size_t(dc * dc));
  const int64_t ld = K * dc;
  double total = 0;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = k + 1; j < K; ++j) {
      // A constant encoder has no covariance with anything: nothing to decorrelate.
      if (s[size_t(k)] < 1e-20 || s[size_t(j)] < 1e-20) continue;
      const float* Ak = centred.data() + k * dc;
      const float* Aj = centred.data() + j * dc;
      // C (dc, dc) = A_k^T A_j / B
      sgemm(true, false, dc, dc, B, 1.f / float(B), Ak, ld, Aj, ld, 0.f, cross.data(), dc);
      double n = 0;
      for (float c : cross) n += double(c) * c;
      const double sk = s[size_t(k)], sj = s[size_t(j)];
      total += n / (sk * sj);
      // d/dA_k = 2/(B sk sj) A_j C^T - 2 n/(B sk^2 sj) A_k ; d/dA_j = 2/(B sk sj) A_k C - 2 n/(B sk sj^2) A_j
      const float g = float(2.0 * lambda / (double(B) * sk * sj));
      sgemm(false, true, B, dc, dc, g, Aj, ld, cross.data(), dc, 1.f, da + k * dc, ld);
      sgemm(false, false, B, dc, dc, g, Ak, ld, cross.data(), dc, 1.f, da + j * dc, ld);
      const float hk = float(2.0 * lambda * n / (double(B) * sk * sk * sj));
      const float hj = float(2.0 * lambda * n / (double(B) * sk * sj * sj));
      for (int64_t b = 0; b < B; ++b)
        for (int64_t e = 0; e < dc; ++e) {
          da[(b * K + k) * dc + e] -= hk * Ak[b * ld + e];
          da[(b * K + j) * dc + e] -= hj * Aj[b * ld + e];
        }
    }
  return double(lambda) * total;
}

}  // namespace

MlpShape MqConfig::encoder_shape() const {
  MlpShape s;
  s.dims.push_back(d);
  for (int64_t h : enc_hidden) s.dims.push_back(h);
  s.dims.push_back(dc);
  return s;
}

MlpShape MqConfig::decoder_shape() const {
  MlpShape s;
  s.dims.push_back(dc);
  for (int64_t h : dec_hidden) s.dims.push_back(h);
  s.dims.push_back(d);
  return s;
}

MqTokenizer::MqTokenizer(const MqConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  enc_ = cfg_.encoder_shape();
  dec_ = cfg_.decoder_shape();
  const int64_t n = cfg_.K * enc_.num_params() + cfg_.K * cfg_.L * cfg_.dc + dec_.num_params();
  params_.assign(size_t(n), 0.f);
  grads_.assign(size_t(n), 0.f);
  m_.assign(size_t(n), 0.f);
  v_.assign(size_t(n), 0.f);
  // Each encoder gets its own seed: K independent MLPs, not K copies of one.
  for (int64_t k = 0; k < cfg_.K; ++k) mlp_init(enc_, mix64(cfg_.seed * 31 + uint64_t(k) + 1), params_.data() + encoder_offset(k));
  mlp_init(dec_, mix64(cfg_.seed * 31 + 1000003), params_.data() + decoder_offset());
  uint64_t state = mix64(cfg_.seed ^ 0xC0DEB00Cull);
  float* cb = params_.data() + codebook_offset();
  const float bound = 1.f / float(cfg_.L);
  for (int64_t i = 0; i < cfg_.K * cfg_.L * cfg_.dc; ++i) {
    state += 0x9E3779B97F4A7C15ull;
    cb[i] = (2.f * (float(mix64(state) >> 40) * (1.0f / 16777216.0f)) - 1.f) * bound;
  }
}

MqStepStats MqTokenizer::loss_and_grads(const float* x, const int32_t* row_ids, int64_t B, uint64_t epoch,
                                        float mask_rate, int32_t* idx_out) {
  require(B > 0, "tokenizer: a training batch needs at least one row, got ", B);
  require(x, "tokenizer: x is required");
  const int64_t K = cfg_.K, L = cfg_.L, dc = cfg_.dc, d = cfg_.d;
  MaskSpec mask;
  mask.rate = mask_rate < 0.f ? cfg_.mask_rate : mask_rate;
  require(mask.rate < 1.f, "tokenizer: mask rate must be < 1, got ", mask.rate);
  mask.seed = cfg_.seed;
  mask.epoch = epoch;
  mask.row_ids = row_ids;
  const int64_t enc_acts = enc_.acts_size(B);
  enc_acts_.resize(size_t(K * enc_acts));
  a_.resize(size_t(B * K * dc));
  idx_.resize(size_t(B * K));
  z_.resize(size_t(B * dc));
  dec_acts_.resize(size_t(dec_.acts_size(B)));
  dr_.resize(size_t(B * d));
  dz_.resize(size_t(B * dc));
  da_.resize(size_t(B * K * dc));
  da_k_.resize(size_t(B * dc));
  // K encoders on the masked input, outputs gathered into a (B, K, dc).
  for (int64_t k = 0; k < K; ++k) {
    float* acts = enc_acts_.data() + k * enc_acts;
    // One masked input q' for all K encoders (the paper), or an independent mask per encoder.
    MaskSpec mk = mask;
    if (cfg_.independent_masks) mk.seed = mask_seed_of_encoder(cfg_.seed, k);
    mlp_forward_cpu(enc_, params_.data() + encoder_offset(k), x, B, mask.rate > 0.f ? &mk : nullptr, acts);
    const float* out = acts + enc_.acts_offset(enc_.layers(), B);
    for (int64_t b = 0; b < B; ++b) std::memcpy(a_.data() + (b * K + k) * dc, out + b * dc, size_t(dc) * sizeof(float));
  }
  const float* cb = params_.data() + codebook_offset();
  vq_nearest_cpu(a_.data(), cb, B, K, L, dc, idx_.data(), nullptr);
  vq_quantize_cpu(cb, idx_.data(), B, K, L, dc, z_.data());
  mlp_forward_cpu(dec_, params_.data() + decoder_offset(), z_.data(), B, nullptr, dec_acts_.data());
  const float* r = dec_acts_.data() + dec_.acts_offset(dec_.layers(), B);
  // Reconstruction loss against the unmasked input, and its gradient.
  double se = 0;
  const float scale = 2.f / float(B * d);
  for (int64_t i = 0; i < B * d; ++i) {
    float diff = r[i] - x[i];
    se += double(diff) * diff;
    dr_[size_t(i)] = scale * diff;
  }
  MqStepStats st;
  st.recon = se / double(B * d);
  mlp_backward_cpu(dec_, params_.data() + decoder_offset(), dec_acts_.data(), B, dr_.data(),
                   grads_.data() + decoder_offset(), dz_.data());
  VqLosses vl = vq_backward_cpu(a_.data(), cb, idx_.data(), B, K, L, dc, cfg_.beta, dz_.data(), da_.data(),
                                grads_.data() + codebook_offset());
  st.codebook = vl.codebook;
  st.commitment = vl.commitment;
  if (cfg_.decorrelation > 0.f && K > 1 && B > 1)
    st.decorrelation = decorrelation_loss_grad(a_.data(), B, K, dc, cfg_.decorrelation, da_.data(), centred_, cross_);
  st.loss = st.recon + st.codebook + st.commitment + st.decorrelation;
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t b = 0; b < B; ++b) std::memcpy(da_k_.data() + b * dc, da_.data() + (b * K + k) * dc, size_t(dc) * sizeof(float));
    mlp_backward_cpu(enc_, params_.data() + encoder_offset(k), enc_acts_.data() + k * enc_acts, B, da_k_.data(),
                     grads_.data() + encoder_offset(k), nullptr);
  }
  if (idx_out) std::memcpy(idx_out, idx_.data(), size_t(B * K) * sizeof(int32_t));
  if (!std::isfinite(st.loss))
    fail(ErrorCode::NotFinite, "tokenizer: the loss became non-finite (", st.loss, "); lower the learning rate");
  return st;
}

MqStepStats MqTokenizer::train_step(const float* x, const int32_t* row_ids, int64_t B, uint64_t epoch, int32_t* idx_out) {
  MqStepStats st = loss_and_grads(x, row_ids, B, epoch, -1.f, idx_out);
  ++step_;
  adamw_step_cpu(params_.data(), grads_.data(), m_.data(), v_.data(), num_params(), step_, cfg_.lr, cfg_.beta1,
                 cfg_.beta2, cfg_.eps, cfg_.weight_decay);
  return st;
}

void MqTokenizer::encoder_outputs(const float* x, int64_t B, float* a) const {
  require(B >= 0, "tokenizer: batch size must be >= 0, got ", B);
  if (B == 0) return;
  require(x && a, "tokenizer: x and the output are required");
  const int64_t K = cfg_.K, dc = cfg_.dc;
  std::vector<float> acts(size_t(enc_.acts_size(B)));
  for (int64_t k = 0; k < K; ++k) {
    mlp_forward_cpu(enc_, params_.data() + encoder_offset(k), x, B, nullptr, acts.data());
    const float* out = acts.data() + enc_.acts_offset(enc_.layers(), B);
    for (int64_t b = 0; b < B; ++b) std::memcpy(a + (b * K + k) * dc, out + b * dc, size_t(dc) * sizeof(float));
  }
}

void MqTokenizer::encode(const float* x, int64_t B, int32_t* codes, float* dist) const {
  if (B == 0) return;
  require(codes, "tokenizer: codes output is required");
  std::vector<float> a(size_t(B * cfg_.K * cfg_.dc));
  encoder_outputs(x, B, a.data());
  vq_nearest_cpu(a.data(), params_.data() + codebook_offset(), B, cfg_.K, cfg_.L, cfg_.dc, codes, dist);
}

void MqTokenizer::reconstruct(const float* x, int64_t B, float* r, int32_t* codes) const {
  if (B == 0) return;
  require(r, "tokenizer: reconstruction output is required");
  std::vector<int32_t> idx(size_t(B * cfg_.K));
  encode(x, B, idx.data(), nullptr);
  std::vector<float> z(size_t(B * cfg_.dc)), acts(size_t(dec_.acts_size(B)));
  vq_quantize_cpu(params_.data() + codebook_offset(), idx.data(), B, cfg_.K, cfg_.L, cfg_.dc, z.data());
  mlp_forward_cpu(dec_, params_.data() + decoder_offset(), z.data(), B, nullptr, acts.data());
  std::memcpy(r, acts.data() + dec_.acts_offset(dec_.layers(), B), size_t(B * cfg_.d) * sizeof(float));
  if (codes) std::memcpy(codes, idx.data(), idx.size() * sizeof(int32_t));
}

void MqTokenizer::set_codewords(int64_t k, const int32_t* rows, int64_t n, const float* values) {
  require(k >= 0 && k < cfg_.K, "tokenizer: codebook index ", k, " is outside [0, ", cfg_.K, ")");
  require(n >= 0, "tokenizer: number of codewords must be >= 0");
  if (n == 0) return;
  require(rows && values, "tokenizer: rows and values are required");
  const int64_t dc = cfg_.dc;
  for (int64_t i = 0; i < n; ++i) {
    require(rows[i] >= 0 && rows[i] < cfg_.L, "tokenizer: rows[", i, "] = ", rows[i], " is outside [0, ", cfg_.L, ")");
    for (int64_t e = 0; e < dc; ++e)
      if (!std::isfinite(values[i * dc + e])) fail(ErrorCode::NotFinite, "tokenizer: values[", i * dc + e, "] is not finite");
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t o = codebook_offset() + (k * cfg_.L + rows[i]) * dc;
    std::memcpy(params_.data() + o, values + i * dc, size_t(dc) * sizeof(float));
    std::fill(m_.begin() + o, m_.begin() + o + dc, 0.f);
    std::fill(v_.begin() + o, v_.begin() + o + dc, 0.f);
  }
}

}  // namespace tokenrec
