// The T5 encoder-decoder (tokenrec/t5.h): parameters in one flat buffer laid out in Hugging Face
// tensor order, forward with cached activations, backward, AdamW.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "tokenrec/error.h"
#include "tokenrec/gemm.h"
#include "tokenrec/parallel.h"
#include "tokenrec/t5.h"

namespace tokenrec {
namespace {

using Vec = std::vector<float>;

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// y (N, out) = x (N, in) W^T with W (out, in): a torch Linear without bias.
void linear(const float* x, const float* W, int64_t N, int64_t in, int64_t out, float* y) {
  sgemm(false, true, N, out, in, 1.f, x, in, W, in, 0.f, y, out);
}
// dx (N, in) = dy (N, out) W (+ dx when accumulate); dW (out, in) += dy^T x.
void linear_backward(const float* x, const float* W, const float* dy, int64_t N, int64_t in, int64_t out, float* dx,
                     bool accumulate, float* dW) {
  if (dx) sgemm(false, false, N, in, out, 1.f, dy, out, W, in, accumulate ? 1.f : 0.f, dx, in);
  sgemm(true, false, out, in, N, 1.f, dy, out, x, in, 1.f, dW, in);
}

void resize(Vec& v, int64_t n) { v.resize(size_t(n)); }

// x += y * m (m null: no dropout), elementwise over n.
void add_dropped(float* x, const float* y, const float* m, int64_t n) {
  parallel_for(0, n, 1 << 14, [&](int64_t lo, int64_t hi) {
    if (m)
      for (int64_t i = lo; i < hi; ++i) x[i] += y[i] * m[i];
    else
      for (int64_t i = lo; i < hi; ++i) x[i] += y[i];
  });
}
// out = g * m (m null: copy).
void mul_mask(const float* g, const float* m, int64_t n, float* out) {
  parallel_for(0, n, 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = m ? g[i] * m[i] : g[i];
  });
}

}  // namespace

// ---- activations kept for backward -----------------------------------------------------------
struct SelfAttnCache {
  Vec x, inv, n, qkv, probs, drop, ctx, out, odrop;
};
struct CrossAttnCache {
  Vec x, inv, n, q, kv, probs, drop, ctx, out, odrop;
};
struct FFCache {
  Vec x, inv, n, h, hdrop, out, odrop;
};
struct Caches {
  int64_t B = 0, S = 0, T = 0;
  std::vector<int32_t> enc_ids, dec_ids, mask;
  bool has_mask = false;
  Vec enc_bias, dec_bias;  // (H, S, S), (H, T, T)
  Vec enc_embdrop, dec_embdrop;
  std::vector<SelfAttnCache> enc_attn, dec_attn;
  std::vector<CrossAttnCache> dec_cross;
  std::vector<FFCache> enc_ff, dec_ff;
  Vec enc_x, enc_inv, enc_out, enc_drop;  // final encoder norm: input, 1/rms, output (after dropout)
  Vec dec_x, dec_inv, dec_drop;           // final decoder norm
  bool train = false;
  bool ready = false;  // a train forward whose backward has not run yet
};

struct T5Model::Impl {
  Caches train, eval;
  Vec enc_in_grad, dec_in_grad;
  bool have_input_grads = false;
  // Offsets of each block's tensors.
  struct AttnW { int64_t q, o, ln; };
  struct FFW { int64_t wi, wo, ln; };
  std::vector<AttnW> enc_attn, dec_attn, dec_cross;
  std::vector<FFW> enc_ff, dec_ff;
  int64_t shared = 0, enc_rel = 0, dec_rel = 0, enc_final = 0, dec_final = 0;
};

void validate_t5_config(const T5Config& c) {
  auto pos = [](int64_t v, const char* name) { require(v >= 1, "T5 config: ", name, " must be >= 1, got ", v); };
  pos(c.vocab_size, "vocab_size");
  pos(c.d_model, "d_model");
  pos(c.d_kv, "d_kv");
  pos(c.d_ff, "d_ff");
  pos(c.num_heads, "num_heads");
  pos(c.num_encoder_layers, "num_encoder_layers");
  pos(c.num_decoder_layers, "num_decoder_layers");
  require(c.num_buckets >= 2, "T5 config: num_buckets must be >= 2, got ", c.num_buckets);
  pos(c.max_distance, "max_distance");
  require(c.vocab_size <= INT32_MAX, "T5 config: vocab_size too large: ", c.vocab_size);
  require(c.dropout_rate >= 0.f && c.dropout_rate < 1.f, "T5 config: dropout_rate must be in [0, 1), got ", c.dropout_rate);
  require(c.layer_norm_eps > 0.f, "T5 config: layer_norm_eps must be > 0, got ", c.layer_norm_eps);
}

T5Model::T5Model(const T5Config& c, uint64_t seed) : cfg_(c), impl_(new Impl) {
  validate_t5_config(c);
  const int64_t d = c.d_model, I = c.num_heads * c.d_kv, F = c.d_ff;
  int64_t off = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool decay) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    tensors_.push_back({name, shape, off, n, decay});
    off += n;
    return off - n;
  };
  // Same order as t5TensorShapes() in lib/t5/config.ts; q, k, v of one attention are adjacent,
  // so that they act as one fused (3I, d) matrix.
  impl_->shared = add("shared.weight", {c.vocab_size, d}, true);
  auto attn = [&](const std::string& p, Impl::AttnW& w) {
    w.q = add(p + ".q.weight", {I, d}, true);
    add(p + ".k.weight", {I, d}, true);
    add(p + ".v.weight", {I, d}, true);
    w.o = add(p + ".o.weight", {d, I}, true);
  };
  for (int64_t i = 0; i < c.num_encoder_layers; ++i) {
    std::string b = "encoder.block." + std::to_string(i);
    Impl::AttnW a;
    Impl::FFW f;
    attn(b + ".layer.0.SelfAttention", a);
    if (i == 0) impl_->enc_rel = add(b + ".layer.0.SelfAttention.relative_attention_bias.weight", {c.num_buckets, c.num_heads}, true);
    a.ln = add(b + ".layer.0.layer_norm.weight", {d}, false);
    f.wi = add(b + ".layer.1.DenseReluDense.wi.weight", {F, d}, true);
    f.wo = add(b + ".layer.1.DenseReluDense.wo.weight", {d, F}, true);
    f.ln = add(b + ".layer.1.layer_norm.weight", {d}, false);
    impl_->enc_attn.push_back(a);
    impl_->enc_ff.push_back(f);
  }
  impl_->enc_final = add("encoder.final_layer_norm.weight", {d}, false);
  for (int64_t i = 0; i < c.num_decoder_layers; ++i) {
    std::string b = "decoder.block." + std::to_string(i);
    Impl::AttnW a, x;
    Impl::FFW f;
    attn(b + ".layer.0.SelfAttention", a);
    if (i == 0) impl_->dec_rel = add(b + ".layer.0.SelfAttention.relative_attention_bias.weight", {c.num_buckets, c.num_heads}, true);
    a.ln = add(b + ".layer.0.layer_norm.weight", {d}, false);
    attn(b + ".layer.1.EncDecAttention", x);
    x.ln = add(b + ".layer.1.layer_norm.weight", {d}, false);
    f.wi = add(b + ".layer.2.DenseReluDense.wi.weight", {F, d}, true);
    f.wo = add(b + ".layer.2.DenseReluDense.wo.weight", {d, F}, true);
    f.ln = add(b + ".layer.2.layer_norm.weight", {d}, false);
    impl_->dec_attn.push_back(a);
    impl_->dec_cross.push_back(x);
    impl_->dec_ff.push_back(f);
  }
  impl_->dec_final = add("decoder.final_layer_norm.weight", {d}, false);
  params_.assign(size_t(off), 0.f);
  grads_.assign(size_t(off), 0.f);
  adam_m_.assign(size_t(off), 0.f);
  adam_v_.assign(size_t(off), 0.f);

  // Hugging Face's T5 initialisation (factor 1): N(0, std) with std from the fan-in.
  uint64_t state = splitmix(seed ^ 0x5157A11ull);
  auto normal = [&]() {
    double u1 = (double((state = splitmix(state)) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = double((state = splitmix(state)) >> 11) / 9007199254740992.0;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  };
  for (const T5Tensor& t : tensors_) {
    const std::string& n = t.name;
    double std_ = 1.0;
    auto ends = [&](const char* s) { size_t l = std::strlen(s); return n.size() >= l && n.compare(n.size() - l, l, s) == 0; };
    if (ends("layer_norm.weight")) {
      std::fill(params_.begin() + t.offset, params_.begin() + t.offset + t.size, 1.f);
      continue;
    }
    if (n == "shared.weight") std_ = 1.0;
    else if (ends(".q.weight")) std_ = 1.0 / std::sqrt(double(d * c.d_kv));
    else if (ends(".k.weight") || ends(".v.weight") || ends("relative_attention_bias.weight") || ends(".wi.weight")) std_ = 1.0 / std::sqrt(double(d));
    else if (ends(".o.weight")) std_ = 1.0 / std::sqrt(double(I));
    else if (ends(".wo.weight")) std_ = 1.0 / std::sqrt(double(F));
    for (int64_t i = 0; i < t.size; ++i) params_[size_t(t.offset + i)] = float(std_ * normal());
  }
  dropout_seed_ = splitmix(seed ^ 0xD50ull);
}

T5Model::~T5Model() { delete impl_; }

int T5Model::find_tensor(const std::string& name) const {
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (tensors_[i].name == name) return int(i);
  return -1;
}

void T5Model::set_dropout_seed(uint64_t seed) {
  dropout_seed_ = splitmix(seed ^ 0xD50ull);
  dropout_calls_ = 0;
}

const float* T5Model::encoder_input_grad() const { return impl_->have_input_grads ? impl_->enc_in_grad.data() : nullptr; }
const float* T5Model::decoder_input_grad() const { return impl_->have_input_grads ? impl_->dec_in_grad.data() : nullptr; }

std::pair<int64_t, int64_t> T5Model::input_grad_sizes() const {
  if (!impl_->have_input_grads) return {0, 0};
  return {int64_t(impl_->enc_in_grad.size()), int64_t(impl_->dec_in_grad.size())};
}

int64_t T5Model::pending_output_size() const {
  const Caches& K = impl_->train;
  return K.ready ? K.B * K.T * cfg_.d_model : 0;
}

void T5Model::zero_grad() { std::fill(grads_.begin(), grads_.end(), 0.f); }

// ---- forward ---------------------------------------------------------------------------------
void T5Model::forward(const T5Batch& bt, bool train, float* out) {
  const T5Config& c = cfg_;
  require(bt.B >= 1 && bt.S >= 1 && bt.T >= 1, "T5 forward: batch sizes must be >= 1, got B=", bt.B, " S=", bt.S, " T=", bt.T);
  require(bt.input_ids && bt.decoder_input_ids && out, "T5 forward: input_ids, decoder_input_ids and out must not be null");
  const int64_t B = bt.B, S = bt.S, T = bt.T, d = c.d_model, H = c.num_heads, dk = c.d_kv, I = H * dk, F = c.d_ff;
  const int64_t Ne = B * S, Nd = B * T;
  for (int64_t i = 0; i < Ne; ++i)
    if (bt.input_ids[i] < 0 || bt.input_ids[i] >= c.vocab_size)
      fail(ErrorCode::OutOfRange, "T5 forward: input_ids[", i, "] = ", bt.input_ids[i], " is outside [0, ", c.vocab_size, ")");
  for (int64_t i = 0; i < Nd; ++i)
    if (bt.decoder_input_ids[i] < 0 || bt.decoder_input_ids[i] >= c.vocab_size)
      fail(ErrorCode::OutOfRange, "T5 forward: decoder_input_ids[", i, "] = ", bt.decoder_input_ids[i], " is outside [0, ", c.vocab_size, ")");
  if (bt.attention_mask) {
    for (int64_t b = 0; b < B; ++b) {
      int64_t ones = 0;
      for (int64_t s = 0; s < S; ++s) {
        int32_t m = bt.attention_mask[b * S + s];
        if (m != 0 && m != 1) fail(ErrorCode::InvalidArgument, "T5 forward: attention_mask[", b * S + s, "] = ", m, " must be 0 or 1");
        ones += m;
      }
      if (ones == 0) fail(ErrorCode::InvalidArgument, "T5 forward: attention_mask row ", b, " is all padding");
    }
  }

  Caches& K = train ? impl_->train : impl_->eval;
  K.ready = false;
  K.train = train;
  K.B = B;
  K.S = S;
  K.T = T;
  K.enc_ids.assign(bt.input_ids, bt.input_ids + Ne);
  K.dec_ids.assign(bt.decoder_input_ids, bt.decoder_input_ids + Nd);
  K.has_mask = bt.attention_mask != nullptr;
  if (K.has_mask) K.mask.assign(bt.attention_mask, bt.attention_mask + Ne);
  const int32_t* mask = K.has_mask ? K.mask.data() : nullptr;
  const float* P = params_.data();

  const bool drop_on = train && c.dropout_rate > 0.f;
  const uint64_t call_seed = splitmix(dropout_seed_ + 0x1000003ull * (dropout_calls_++));
  uint64_t site = 0;
  // Dropout multipliers for n elements: 0 with probability p, else 1/(1-p). Counter-based, so
  // the result does not depend on the thread count.
  auto dropout = [&](Vec& m, int64_t n) {
    ++site;
    if (!drop_on) {
      m.clear();
      return;
    }
    resize(m, n);
    const uint64_t s0 = splitmix(call_seed ^ (site * 0xA24BAED4963EE407ull));
    const float p = c.dropout_rate, keep = 1.f / (1.f - p);
    // One 64-bit hash gives four 16-bit uniforms (keep probability resolved to 1/65536).
    const uint32_t cut = uint32_t(double(p) * 65536.0 + 0.5);
    parallel_for(0, (n + 3) / 4, 1 << 12, [&](int64_t lo, int64_t hi) {
      for (int64_t q = lo; q < hi; ++q) {
        uint64_t r = splitmix(s0 + uint64_t(q));
        for (int64_t e = 0; e < 4 && 4 * q + e < n; ++e) m[size_t(4 * q + e)] = uint32_t((r >> (16 * e)) & 0xFFFF) < cut ? 0.f : keep;
      }
    });
  };
  auto ptr = [](const Vec& v) -> const float* { return v.empty() ? nullptr : v.data(); };

  auto self_attn = [&](SelfAttnCache& C, const Impl::AttnW& w, float* x, int64_t L, const float* bias, const int32_t* kmask, bool causal) {
    const int64_t N = B * L;
    C.x.assign(x, x + N * d);
    resize(C.inv, N);
    resize(C.n, N * d);
    t5::rmsnorm_forward(x, P + w.ln, N, d, c.layer_norm_eps, C.n.data(), C.inv.data());
    resize(C.qkv, N * 3 * I);
    linear(C.n.data(), P + w.q, N, d, 3 * I, C.qkv.data());
    resize(C.probs, B * H * L * L);
    dropout(C.drop, B * H * L * L);
    resize(C.ctx, N * I);
    t5::AttnDims ad{B, L, L, H, dk};
    t5::attention_forward(ad, C.qkv.data(), 3 * I, C.qkv.data() + I, 3 * I, C.qkv.data() + 2 * I, 3 * I, bias, kmask, causal,
                          ptr(C.drop), C.probs.data(), C.ctx.data());
    resize(C.out, N * d);
    linear(C.ctx.data(), P + w.o, N, I, d, C.out.data());
    dropout(C.odrop, N * d);
    add_dropped(x, C.out.data(), ptr(C.odrop), N * d);
  };
  auto ff = [&](FFCache& C, const Impl::FFW& w, float* x, int64_t N) {
    C.x.assign(x, x + N * d);
    resize(C.inv, N);
    resize(C.n, N * d);
    t5::rmsnorm_forward(x, P + w.ln, N, d, c.layer_norm_eps, C.n.data(), C.inv.data());
    resize(C.h, N * F);
    linear(C.n.data(), P + w.wi, N, d, F, C.h.data());
    dropout(C.hdrop, N * F);
    const float* hm = ptr(C.hdrop);
    float* h = C.h.data();
    parallel_for(0, N * F, 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) h[i] = h[i] > 0.f ? (hm ? h[i] * hm[i] : h[i]) : 0.f;
    });
    resize(C.out, N * d);
    linear(h, P + w.wo, N, F, d, C.out.data());
    dropout(C.odrop, N * d);
    add_dropped(x, C.out.data(), ptr(C.odrop), N * d);
  };
  auto embed = [&](const int32_t* ids, int64_t N, Vec& x, Vec& m) {
    resize(x, N * d);
    for (int64_t n = 0; n < N; ++n) std::memcpy(x.data() + n * d, P + impl_->shared + int64_t(ids[n]) * d, sizeof(float) * size_t(d));
    dropout(m, N * d);
    if (!m.empty())
      for (int64_t i = 0; i < N * d; ++i) x[size_t(i)] *= m[size_t(i)];
  };

  // Encoder.
  Vec x;
  embed(K.enc_ids.data(), Ne, x, K.enc_embdrop);
  resize(K.enc_bias, H * S * S);
  t5::position_bias_forward(P + impl_->enc_rel, H, S, S, true, c.num_buckets, c.max_distance, K.enc_bias.data());
  K.enc_attn.resize(size_t(c.num_encoder_layers));
  K.enc_ff.resize(size_t(c.num_encoder_layers));
  for (int64_t l = 0; l < c.num_encoder_layers; ++l) {
    self_attn(K.enc_attn[size_t(l)], impl_->enc_attn[size_t(l)], x.data(), S, K.enc_bias.data(), mask, false);
    ff(K.enc_ff[size_t(l)], impl_->enc_ff[size_t(l)], x.data(), Ne);
  }
  K.enc_x = x;
  resize(K.enc_inv, Ne);
  resize(K.enc_out, Ne * d);
  t5::rmsnorm_forward(x.data(), P + impl_->enc_final, Ne, d, c.layer_norm_eps, K.enc_out.data(), K.enc_inv.data());
  dropout(K.enc_drop, Ne * d);
  if (!K.enc_drop.empty())
    for (int64_t i = 0; i < Ne * d; ++i) K.enc_out[size_t(i)] *= K.enc_drop[size_t(i)];

  // Decoder.
  Vec y;
  embed(K.dec_ids.data(), Nd, y, K.dec_embdrop);
  resize(K.dec_bias, H * T * T);
  t5::position_bias_forward(P + impl_->dec_rel, H, T, T, false, c.num_buckets, c.max_distance, K.dec_bias.data());
  K.dec_attn.resize(size_t(c.num_decoder_layers));
  K.dec_cross.resize(size_t(c.num_decoder_layers));
  K.dec_ff.resize(size_t(c.num_decoder_layers));
  for (int64_t l = 0; l < c.num_decoder_layers; ++l) {
    self_attn(K.dec_attn[size_t(l)], impl_->dec_attn[size_t(l)], y.data(), T, K.dec_bias.data(), nullptr, true);
    // Cross-attention: queries from the decoder, keys/values from the encoder output; no
    // position bias, padding keys masked.
    CrossAttnCache& C = K.dec_cross[size_t(l)];
    const Impl::AttnW& w = impl_->dec_cross[size_t(l)];
    C.x = y;
    resize(C.inv, Nd);
    resize(C.n, Nd * d);
    t5::rmsnorm_forward(y.data(), P + w.ln, Nd, d, c.layer_norm_eps, C.n.data(), C.inv.data());
    resize(C.q, Nd * I);
    linear(C.n.data(), P + w.q, Nd, d, I, C.q.data());
    resize(C.kv, Ne * 2 * I);
    linear(K.enc_out.data(), P + w.q + I * d, Ne, d, 2 * I, C.kv.data());
    resize(C.probs, B * H * T * S);
    dropout(C.drop, B * H * T * S);
    resize(C.ctx, Nd * I);
    t5::AttnDims ad{B, T, S, H, dk};
    t5::attention_forward(ad, C.q.data(), I, C.kv.data(), 2 * I, C.kv.data() + I, 2 * I, nullptr, mask, false, ptr(C.drop),
                          C.probs.data(), C.ctx.data());
    resize(C.out, Nd * d);
    linear(C.ctx.data(), P + w.o, Nd, I, d, C.out.data());
    dropout(C.odrop, Nd * d);
    add_dropped(y.data(), C.out.data(), ptr(C.odrop), Nd * d);
    ff(K.dec_ff[size_t(l)], impl_->dec_ff[size_t(l)], y.data(), Nd);
  }
  K.dec_x = y;
  resize(K.dec_inv, Nd);
  t5::rmsnorm_forward(y.data(), P + impl_->dec_final, Nd, d, c.layer_norm_eps, out, K.dec_inv.data());
  dropout(K.dec_drop, Nd * d);
  if (!K.dec_drop.empty())
    for (int64_t i = 0; i < Nd * d; ++i) out[i] *= K.dec_drop[size_t(i)];
  K.ready = train;
}

// ---- backward --------------------------------------------------------------------------------
void T5Model::backward(const float* grad_out) {
  Caches& K = impl_->train;
  require(K.ready, "T5 backward: no train forward to differentiate (call forward with train = true first; backward runs once per forward)");
  require(grad_out != nullptr, "T5 backward: grad_out is null");
  const T5Config& c = cfg_;
  const int64_t B = K.B, S = K.S, T = K.T, d = c.d_model, H = c.num_heads, dk = c.d_kv, I = H * dk, F = c.d_ff;
  const int64_t Ne = B * S, Nd = B * T;
  for (int64_t i = 0; i < Nd * d; ++i)
    if (!std::isfinite(grad_out[i])) fail(ErrorCode::NotFinite, "T5 backward: grad_out[", i, "] = ", grad_out[i], " is not finite");
  const float* P = params_.data();
  float* G = grads_.data();
  auto ptr = [](const Vec& v) -> const float* { return v.empty() ? nullptr : v.data(); };

  Vec tmp_d, tmp_n, tmp_ctx, tmp_qkv, tmp_h;
  auto self_attn_back = [&](SelfAttnCache& C, const Impl::AttnW& w, float* dx, int64_t L, float* dbias) {
    const int64_t N = B * L;
    resize(tmp_d, N * d);
    mul_mask(dx, ptr(C.odrop), N * d, tmp_d.data());
    resize(tmp_ctx, N * I);
    linear_backward(C.ctx.data(), P + w.o, tmp_d.data(), N, I, d, tmp_ctx.data(), false, G + w.o);
    resize(tmp_qkv, N * 3 * I);
    t5::AttnDims ad{B, L, L, H, dk};
    float* g = tmp_qkv.data();
    t5::attention_backward(ad, C.qkv.data(), 3 * I, C.qkv.data() + I, 3 * I, C.qkv.data() + 2 * I, 3 * I, ptr(C.drop),
                           C.probs.data(), tmp_ctx.data(), g, g + I, g + 2 * I, dbias);
    resize(tmp_n, N * d);
    linear_backward(C.n.data(), P + w.q, g, N, d, 3 * I, tmp_n.data(), false, G + w.q);
    t5::rmsnorm_backward(C.x.data(), P + w.ln, C.inv.data(), tmp_n.data(), N, d, dx, true, G + w.ln);
  };
  auto ff_back = [&](FFCache& C, const Impl::FFW& w, float* dx, int64_t N) {
    resize(tmp_d, N * d);
    mul_mask(dx, ptr(C.odrop), N * d, tmp_d.data());
    resize(tmp_h, N * F);
    linear_backward(C.h.data(), P + w.wo, tmp_d.data(), N, F, d, tmp_h.data(), false, G + w.wo);
    // Through dropout and ReLU: C.h holds relu(h) * mask, which is > 0 exactly where both pass.
    const float* hm = ptr(C.hdrop);
    float* gh = tmp_h.data();
    const float* h = C.h.data();
    parallel_for(0, N * F, 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) gh[i] = h[i] > 0.f ? (hm ? gh[i] * hm[i] : gh[i]) : 0.f;
    });
    resize(tmp_n, N * d);
    linear_backward(C.n.data(), P + w.wi, gh, N, d, F, tmp_n.data(), false, G + w.wi);
    t5::rmsnorm_backward(C.x.data(), P + w.ln, C.inv.data(), tmp_n.data(), N, d, dx, true, G + w.ln);
  };

  // Decoder, top down.
  Vec dy(size_t(Nd * d));
  {
    Vec g(size_t(Nd * d));
    mul_mask(grad_out, ptr(K.dec_drop), Nd * d, g.data());
    t5::rmsnorm_backward(K.dec_x.data(), P + impl_->dec_final, K.dec_inv.data(), g.data(), Nd, d, dy.data(), false,
                         G + impl_->dec_final);
  }
  Vec denc(size_t(Ne * d), 0.f);  // d loss / d encoder output (after its final norm and dropout)
  Vec dbias_dec(size_t(H * T * T), 0.f);
  for (int64_t l = c.num_decoder_layers - 1; l >= 0; --l) {
    ff_back(K.dec_ff[size_t(l)], impl_->dec_ff[size_t(l)], dy.data(), Nd);
    CrossAttnCache& C = K.dec_cross[size_t(l)];
    const Impl::AttnW& w = impl_->dec_cross[size_t(l)];
    resize(tmp_d, Nd * d);
    mul_mask(dy.data(), ptr(C.odrop), Nd * d, tmp_d.data());
    resize(tmp_ctx, Nd * I);
    linear_backward(C.ctx.data(), P + w.o, tmp_d.data(), Nd, I, d, tmp_ctx.data(), false, G + w.o);
    Vec dq(size_t(Nd * I)), dkv(size_t(Ne * 2 * I));
    t5::AttnDims ad{B, T, S, H, dk};
    t5::attention_backward(ad, C.q.data(), I, C.kv.data(), 2 * I, C.kv.data() + I, 2 * I, ptr(C.drop), C.probs.data(),
                           tmp_ctx.data(), dq.data(), dkv.data(), dkv.data() + I, nullptr);
    linear_backward(K.enc_out.data(), P + w.q + I * d, dkv.data(), Ne, d, 2 * I, denc.data(), true, G + w.q + I * d);
    resize(tmp_n, Nd * d);
    linear_backward(C.n.data(), P + w.q, dq.data(), Nd, d, I, tmp_n.data(), false, G + w.q);
    t5::rmsnorm_backward(C.x.data(), P + w.ln, C.inv.data(), tmp_n.data(), Nd, d, dy.data(), true, G + w.ln);
    self_attn_back(K.dec_attn[size_t(l)], impl_->dec_attn[size_t(l)], dy.data(), T, dbias_dec.data());
  }
  t5::position_bias_backward(dbias_dec.data(), H, T, T, false, c.num_buckets, c.max_distance, G + impl_->dec_rel);

  // Encoder, top down.
  Vec dx(size_t(Ne * d));
  mul_mask(denc.data(), ptr(K.enc_drop), Ne * d, denc.data());
  t5::rmsnorm_backward(K.enc_x.data(), P + impl_->enc_final, K.enc_inv.data(), denc.data(), Ne, d, dx.data(), false,
                       G + impl_->enc_final);
  Vec dbias_enc(size_t(H * S * S), 0.f);
  for (int64_t l = c.num_encoder_layers - 1; l >= 0; --l) {
    ff_back(K.enc_ff[size_t(l)], impl_->enc_ff[size_t(l)], dx.data(), Ne);
    self_attn_back(K.enc_attn[size_t(l)], impl_->enc_attn[size_t(l)], dx.data(), S, dbias_enc.data());
  }
  t5::position_bias_backward(dbias_enc.data(), H, S, S, true, c.num_buckets, c.max_distance, G + impl_->enc_rel);

  // Embeddings: gradient of the looked-up rows (through the embedding dropout), then a
  // deterministic scatter-add into the shared table, split over columns.
  resize(impl_->enc_in_grad, Ne * d);
  resize(impl_->dec_in_grad, Nd * d);
  mul_mask(dx.data(), ptr(K.enc_embdrop), Ne * d, impl_->enc_in_grad.data());
  mul_mask(dy.data(), ptr(K.dec_embdrop), Nd * d, impl_->dec_in_grad.data());
  impl_->have_input_grads = true;
  float* gs = G + impl_->shared;
  parallel_for(0, d, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t n = 0; n < Ne; ++n) {
      const float* g = impl_->enc_in_grad.data() + n * d;
      float* row = gs + int64_t(K.enc_ids[size_t(n)]) * d;
      for (int64_t i = lo; i < hi; ++i) row[i] += g[i];
    }
    for (int64_t n = 0; n < Nd; ++n) {
      const float* g = impl_->dec_in_grad.data() + n * d;
      float* row = gs + int64_t(K.dec_ids[size_t(n)]) * d;
      for (int64_t i = lo; i < hi; ++i) row[i] += g[i];
    }
  });
  K.ready = false;
}

// ---- AdamW -----------------------------------------------------------------------------------
void T5Model::set_optimizer_state(int64_t steps, const float* m, int64_t m_size, const float* v, int64_t v_size) {
  const int64_t n = num_parameters();
  require(steps >= 0, "T5 optimizer state: steps must be >= 0, got ", steps);
  require(m != nullptr && v != nullptr, "T5 optimizer state: the moments must not be null");
  require(m_size == n, "T5 optimizer state: first moments have ", m_size, " values, the model has ", n, " parameters");
  require(v_size == n, "T5 optimizer state: second moments have ", v_size, " values, the model has ", n, " parameters");
  for (const T5Tensor& t : tensors_) {
    for (int64_t i = 0; i < t.size; ++i) {
      const float mi = m[t.offset + i], vi = v[t.offset + i];
      if (!std::isfinite(mi)) fail(ErrorCode::NotFinite, "T5 optimizer state: first moment of '", t.name, "'[", i, "] is ", mi);
      if (!std::isfinite(vi)) fail(ErrorCode::NotFinite, "T5 optimizer state: second moment of '", t.name, "'[", i, "] is ", vi);
      if (vi < 0.f) fail(ErrorCode::InvalidArgument, "T5 optimizer state: second moment of '", t.name, "'[", i, "] is negative (", vi, ")");
      if (steps == 0 && (mi != 0.f || vi != 0.f))
        fail(ErrorCode::InvalidArgument, "T5 optimizer state: steps is 0 but the moments of '", t.name, "'[", i, "] are not zero");
    }
  }
  std::copy(m, m + n, adam_m_.begin());
  std::copy(v, v + n, adam_v_.begin());
  adam_t_ = steps;
}

double T5Model::step(const AdamWOptions& o) {
  require(std::isfinite(o.lr) && o.lr >= 0.f, "T5 step: lr must be a finite number >= 0, got ", o.lr);
  require(std::isfinite(o.weight_decay) && o.weight_decay >= 0.f, "T5 step: weightDecay must be >= 0, got ", o.weight_decay);
  require(std::isfinite(o.clip_norm) && o.clip_norm >= 0.f, "T5 step: clipNorm must be >= 0 (0 = no clipping), got ", o.clip_norm);
  require(o.beta1 >= 0.f && o.beta1 < 1.f && o.beta2 >= 0.f && o.beta2 < 1.f && o.eps > 0.f, "T5 step: bad Adam betas/eps");
  const int64_t n = int64_t(grads_.size());
  // Global norm, in double; per-chunk partial sums combined in a fixed order.
  const int64_t chunk = 1 << 16, nchunks = (n + chunk - 1) / chunk;
  std::vector<double> part(size_t(nchunks), 0.0);
  parallel_for(0, nchunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t cix = lo; cix < hi; ++cix) {
      double s = 0;
      for (int64_t i = cix * chunk, e = std::min(n, i + chunk); i < e; ++i) s += double(grads_[size_t(i)]) * grads_[size_t(i)];
      part[size_t(cix)] = s;
    }
  });
  double ss = 0;
  for (double p : part) ss += p;
  double norm = std::sqrt(ss);
  if (!std::isfinite(norm)) fail(ErrorCode::NotFinite, "T5 step: the gradient holds NaN or infinity (norm ", norm, "); no update made");
  float scale = (o.clip_norm > 0.f && norm > o.clip_norm) ? float(o.clip_norm / (norm + 1e-6)) : 1.f;
  ++adam_t_;
  const float bc1 = float(1.0 - std::pow(double(o.beta1), double(adam_t_)));
  const float bc2 = float(1.0 - std::pow(double(o.beta2), double(adam_t_)));
  for (const T5Tensor& t : tensors_) {
    const float decay = t.decay ? 1.f - o.lr * o.weight_decay : 1.f;
    float *p = params_.data() + t.offset, *g = grads_.data() + t.offset, *m = adam_m_.data() + t.offset, *v = adam_v_.data() + t.offset;
    parallel_for(0, t.size, 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        float gi = g[i] * scale;
        m[i] = o.beta1 * m[i] + (1.f - o.beta1) * gi;
        v[i] = o.beta2 * v[i] + (1.f - o.beta2) * gi * gi;
        float mh = m[i] / bc1, vh = v[i] / bc2;
        p[i] = p[i] * decay - o.lr * mh / (std::sqrt(vh) + o.eps);
      }
    });
  }
  return norm;
}

}  // namespace tokenrec
