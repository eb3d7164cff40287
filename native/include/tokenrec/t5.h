// T5 (v1.0) encoder-decoder backbone on the CPU: forward, backward, AdamW.
//
// Conventions of the original T5 (and of Hugging Face's T5 checkpoints, whose tensor names and
// [out, in] shapes we keep, see lib/t5/config.ts): pre-norm residual blocks, RMS norm without
// mean subtraction and without bias, no biases anywhere, no 1/sqrt(d) scaling of attention
// scores, ReLU feed-forward, a bucketed relative position bias computed from the first block's
// table and shared by all layers of a stack (bidirectional buckets in the encoder,
// unidirectional in the decoder; none in cross-attention).
//
// The model's output is the decoder's final hidden states (B, T_dec, d_model) after the final
// norm (and dropout in training): heads sit on top of it elsewhere, and hand back the gradient
// of their loss with respect to those states.
//
// All matrices are row-major fp32. Every function validates its arguments and throws
// tokenrec::Error naming the bad one.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tokenrec {

struct T5Config {
  int64_t vocab_size = 0;
  int64_t d_model = 0;
  int64_t d_kv = 0;          // size of one attention head; num_heads * d_kv need not equal d_model
  int64_t d_ff = 0;
  int64_t num_heads = 0;
  int64_t num_encoder_layers = 0;
  int64_t num_decoder_layers = 0;
  int64_t num_buckets = 32;  // relative_attention_num_buckets
  int64_t max_distance = 128;  // relative_attention_max_distance
  float dropout_rate = 0.f;
  float layer_norm_eps = 1e-6f;
};

void validate_t5_config(const T5Config& c);

// One named parameter tensor of the model: its Hugging Face name, shape ([out, in] for linear
// layers) and place in the flat parameter buffer.
struct T5Tensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // into T5Model::params()
  int64_t size = 0;
  bool decay = true;   // AdamW weight decay applies (not to norm weights)
};

// A batch: B encoder sequences of length S (padded), B decoder sequences of length T.
struct T5Batch {
  int64_t B = 0, S = 0, T = 0;
  const int32_t* input_ids = nullptr;          // (B, S) token ids in [0, vocab)
  const int32_t* attention_mask = nullptr;     // (B, S) 1 = token, 0 = padding; null = all tokens
  const int32_t* decoder_input_ids = nullptr;  // (B, T) token ids in [0, vocab)
};

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.f;  // decoupled (AdamW): p -= lr * wd * p, on tensors with decay = true
  float clip_norm = 0.f;     // > 0: scale gradients so that their global L2 norm is at most this
};

class T5Model {
 public:
  // Random initialisation as in Hugging Face's T5 (normal, std depending on the fan-in; norms 1),
  // deterministic for a given seed. The seed also drives dropout.
  T5Model(const T5Config& config, uint64_t seed);
  ~T5Model();
  T5Model(const T5Model&) = delete;
  T5Model& operator=(const T5Model&) = delete;

  const T5Config& config() const { return cfg_; }
  const std::vector<T5Tensor>& tensors() const { return tensors_; }
  // Index of a tensor by Hugging Face name, or -1.
  int find_tensor(const std::string& name) const;
  int64_t num_parameters() const { return int64_t(params_.size()); }
  std::vector<float>& params() { return params_; }  // all tensors, flat, in tensors() order
  std::vector<float>& grads() { return grads_; }    // same layout; accumulated by backward()

  // out: (B, T, d_model) the decoder's final hidden states. train = true applies dropout and
  // keeps the activations for backward(); train = false keeps nothing.
  void forward(const T5Batch& batch, bool train, float* out);
  // grad_out: (B, T, d_model) dL/d(out) of the last train forward. Adds dL/dθ into grads().
  // Can be called once per train forward.
  void backward(const float* grad_out);
  // Size B * T * d_model of the output that backward() expects, or 0 when there is no train
  // forward waiting for its backward.
  int64_t pending_output_size() const;
  // d(loss)/d(embedding rows) of the last backward, by position: encoder (B, S, d_model) and
  // decoder (B, T, d_model) input embeddings (after the lookup, before dropout). Null before a
  // backward.
  const float* encoder_input_grad() const;
  const float* decoder_input_grad() const;
  // Element counts of those two arrays (B * S * d_model, B * T * d_model); 0 before a backward.
  std::pair<int64_t, int64_t> input_grad_sizes() const;
  void zero_grad();
  // Clips (when clip_norm > 0), then one AdamW update. Returns the global gradient norm before
  // clipping. Throws NotFinite (and changes nothing) when a gradient is NaN or infinite.
  double step(const AdamWOptions& opt);
  int64_t steps_taken() const { return adam_t_; }
  // AdamW's state, for checkpoints that resume training exactly: first and second moments in
  // the layout of params() (num_parameters() each) and the number of steps taken so far.
  const std::vector<float>& adam_m() const { return adam_m_; }
  const std::vector<float>& adam_v() const { return adam_v_; }
  // Replaces that state. m, v: (num_parameters()) each, flat in tensors() order; steps >= 0.
  // Checks everything before changing anything: sizes, finite moments, second moments >= 0,
  // and all-zero moments when steps == 0 (no step taken yet). Errors name the tensor and the
  // index within it.
  void set_optimizer_state(int64_t steps, const float* m, int64_t m_size, const float* v, int64_t v_size);
  // Restarts the dropout random stream (tests use it to repeat a train forward exactly).
  void set_dropout_seed(uint64_t seed);

  // Serialises calls from several threads (the Node binding runs them on libuv workers).
  std::mutex& mutex() { return mu_; }

 private:
  struct Impl;
  T5Config cfg_;
  std::vector<T5Tensor> tensors_;
  std::vector<float> params_, grads_, adam_m_, adam_v_;
  int64_t adam_t_ = 0;
  uint64_t dropout_seed_ = 0, dropout_calls_ = 0;
  Impl* impl_ = nullptr;
  std::mutex mu_;
};

// ---- building blocks, exposed for the gradient checks ----------------------------------------
namespace t5 {

// T5's bucket of the relative position (memory index - query index).
// Bidirectional: half the buckets for each sign; unidirectional: only non-positive offsets
// (the past) get distinct buckets. Within a side, offsets below half its buckets get a bucket
// each, larger ones share log-spaced buckets up to max_distance, then the last bucket.
int64_t relative_position_bucket(int64_t relative_position, bool bidirectional, int64_t num_buckets,
                                 int64_t max_distance);

// bias: (H, Lq, Lk) out; table: (num_buckets, H) the relative_attention_bias weight.
void position_bias_forward(const float* table, int64_t H, int64_t Lq, int64_t Lk, bool bidirectional,
                           int64_t num_buckets, int64_t max_distance, float* bias);
// dbias: (H, Lq, Lk); dtable: (num_buckets, H) accumulated.
void position_bias_backward(const float* dbias, int64_t H, int64_t Lq, int64_t Lk, bool bidirectional,
                            int64_t num_buckets, int64_t max_distance, float* dtable);

// y = w * x / sqrt(mean(x^2) + eps), row by row. x, y: (N, D); w: (D); inv_rms: (N) out.
void rmsnorm_forward(const float* x, const float* w, int64_t N, int64_t D, float eps, float* y,
                     float* inv_rms);
// dy: (N, D); dx: (N, D) written (accumulate = false) or added to; dw: (D) accumulated.
void rmsnorm_backward(const float* x, const float* w, const float* inv_rms, const float* dy, int64_t N,
                      int64_t D, float* dx, bool accumulate, float* dw);

struct AttnDims {
  int64_t B = 0, Lq = 0, Lk = 0, H = 0, dk = 0;
};

// Scaled-free dot-product attention of H heads:
//   scores[b,h,i,j] = q[b,i,h,:] . k[b,j,h,:] + bias[h,i,j] (+ -inf where key_mask[b,j] == 0 or,
//   when causal, j > i); probs = softmax_j(scores); ctx[b,i,h,:] = sum_j (probs * drop)[b,h,i,j] v[b,j,h,:]
// q: (B, Lq, H*dk) rows ldq apart; k, v: (B, Lk, H*dk) rows ldk / ldv apart; bias: (H, Lq, Lk) or
// null; key_mask: (B, Lk) or null; drop: (B, H, Lq, Lk) dropout multipliers (0 or 1/(1-p)) or
// null; probs: (B, H, Lq, Lk) out (before dropout); ctx: (B, Lq, H*dk) out, dense.
// Every query row must have at least one key it may attend to.
void attention_forward(const AttnDims& d, const float* q, int64_t ldq, const float* k, int64_t ldk,
                       const float* v, int64_t ldv, const float* bias, const int32_t* key_mask, bool causal,
                       const float* drop, float* probs, float* ctx);
// dctx: (B, Lq, H*dk). dq, dk, dv written (same layouts/strides as q, k, v); dbias: (H, Lq, Lk)
// accumulated (summed over the batch), or null.
void attention_backward(const AttnDims& d, const float* q, int64_t ldq, const float* k, int64_t ldk,
                        const float* v, int64_t ldv, const float* drop, const float* probs,
                        const float* dctx, float* dq, float* dk, float* dv, float* dbias);

}  // namespace t5
}  // namespace tokenrec
