// T5 backbone: hand-worked relative position buckets, finite-difference gradient checks of every
// building block (RMS norm, attention core with bias / padding / causal mask / dropout, position
// bias) and of the whole model (every tensor, dropout on, padded inputs), AdamW against a
// hand-computed update, validation errors.
//
// The checker perturbs one float32 value at a time and evaluates the scalar loss
// L = sum(g * output) in double; central differences with a step of 1e-3 leave an error well
// below the tolerance (2% of the gradient's scale), while a wrong term in a gradient is off by
// much more than that. Where a ReLU input sits within the step of zero, the analytic gradient
// must match one of the one-sided differences instead.
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/error.h"
#include "tokenrec/parallel.h"
#include "tokenrec/t5.h"

using namespace tokenrec;
using Vec = std::vector<float>;

static double weighted_sum(const float* y, const Vec& g) {
  double s = 0;
  for (size_t i = 0; i < g.size(); ++i) s += double(y[i]) * g[i];
  return s;
}

// Compares analytic gradient entries with central differences of loss() on `param`.
// Checks `count` entries spread over the tensor (all when count >= size). Returns the worst
// relative error, where errors are measured against the largest analytic entry checked.
static double grad_check(const char* what, float* param, size_t size, const float* analytic,
                         const std::function<double()>& loss, size_t count = 1000000, float eps = 1e-3f,
                         double tol = 2e-2) {
  std::vector<size_t> idx;
  if (count >= size)
    for (size_t i = 0; i < size; ++i) idx.push_back(i);
  else
    for (size_t c = 0; c < count; ++c) idx.push_back((c * 2654435761u + 7) % size);
  double scale = 0, worst = 0;
  for (size_t i : idx) scale = std::max(scale, std::fabs(double(analytic[i])));
  scale = std::max(scale, 1e-3);
  size_t worst_i = 0;
  double worst_fd = 0;
  const double l0 = loss();
  for (size_t i : idx) {
    float keep = param[i];
    param[i] = keep + eps;
    double lp = loss();
    param[i] = keep - eps;
    double lm = loss();
    param[i] = keep;
    double fd = (lp - lm) / (2.0 * double(eps));
    double err = std::fabs(fd - analytic[i]) / scale;
    // At a ReLU kink within eps of the point, the central difference averages two slopes; the
    // analytic gradient is then one of the one-sided derivatives (a wrong gradient is neither).
    if (err > tol) {
      double one_sided = std::min(std::fabs((lp - l0) / eps - analytic[i]), std::fabs((l0 - lm) / eps - analytic[i])) / scale;
      if (one_sided <= tol) err = one_sided;
    }
    if (err > worst) {
      worst = err;
      worst_i = i;
      worst_fd = fd;
    }
  }
  if (worst > tol)
    std::printf("  %s: worst relative error %.3g at %zu (numeric %.6g, analytic %.6g, scale %.3g)\n", what, worst,
                worst_i, worst_fd, double(analytic[worst_i]), scale);
  return worst;
}

TEST(relative_position_buckets_hand_worked) {
  // Bidirectional, 32 buckets, max distance 128: 16 per side, exact below 8, then
  // 8 + floor(log(r/8) / log(16) * 8), capped at 15; positive offsets add 16.
  auto bi = [](int64_t r) { return t5::relative_position_bucket(r, true, 32, 128); };
  CHECK(bi(0) == 0);
  CHECK(bi(-1) == 1);
  CHECK(bi(1) == 17);
  CHECK(bi(-7) == 7);
  CHECK(bi(7) == 23);
  CHECK(bi(-8) == 8);
  CHECK(bi(-15) == 9);   // 8 + floor(log(15/8)/log(16)*8) = 8 + floor(1.81)
  CHECK(bi(-16) == 10);  // 8 + 2
  CHECK(bi(-127) == 15);
  CHECK(bi(-500) == 15);
  CHECK(bi(200) == 31);
  // Unidirectional (decoder): future offsets share bucket 0; exact below 16 for the past.
  auto uni = [](int64_t r) { return t5::relative_position_bucket(r, false, 32, 128); };
  CHECK(uni(5) == 0);
  CHECK(uni(0) == 0);
  CHECK(uni(-5) == 5);
  CHECK(uni(-15) == 15);
  CHECK(uni(-16) == 16);
  CHECK(uni(-32) == 21);  // 16 + floor(log(2)/log(8)*16) = 16 + floor(5.33)
  CHECK(uni(-128) == 31);
  CHECK(uni(-1000) == 31);
}

TEST(rmsnorm_gradients) {
  TestRng rng(1);
  const int64_t N = 5, D = 13;
  Vec x = rng.vec(N * D), w = rng.vec(D), g = rng.vec(N * D), y(N * D), inv(N);
  x[3] *= 20.f;  // rows of different scales
  auto loss = [&] {
    t5::rmsnorm_forward(x.data(), w.data(), N, D, 1e-6f, y.data(), inv.data());
    return weighted_sum(y.data(), g);
  };
  loss();
  Vec dx(N * D, 0.f), dw(D, 0.f);
  t5::rmsnorm_backward(x.data(), w.data(), inv.data(), g.data(), N, D, dx.data(), false, dw.data());
  CHECK(grad_check("rmsnorm dx", x.data(), x.size(), dx.data(), loss) < 2e-2);
  CHECK(grad_check("rmsnorm dw", w.data(), w.size(), dw.data(), loss) < 2e-2);
  // y has unit RMS when w = 1 (no mean subtraction: the mean is not zero).
  Vec ones(D, 1.f);
  t5::rmsnorm_forward(x.data(), ones.data(), N, D, 0.f + 1e-12f, y.data(), inv.data());
  double ss = 0, mean = 0;
  for (int64_t i = 0; i < D; ++i) ss += double(y[i]) * y[i], mean += y[i];
  CHECK_NEAR(ss / D, 1.0, 1e-5);
  // accumulate = true adds to dx.
  Vec dx2(N * D, 1.f), dw2(D, 0.f);
  t5::rmsnorm_backward(x.data(), w.data(), inv.data(), g.data(), N, D, dx2.data(), true, dw2.data());
}

static void attention_case(bool with_bias, bool with_mask, bool causal, bool with_drop, int64_t ld_extra) {
  TestRng rng(11 + with_bias + 2 * with_mask + 4 * causal + 8 * with_drop);
  t5::AttnDims d{2, 5, causal ? 5 : 7, 3, 4};
  const int64_t I = d.H * d.dk, ld = I + ld_extra;  // strided rows, as inside a fused QKV buffer
  Vec q = rng.vec(d.B * d.Lq * ld), k = rng.vec(d.B * d.Lk * ld), v = rng.vec(d.B * d.Lk * ld);
  Vec bias = with_bias ? rng.vec(d.H * d.Lq * d.Lk) : Vec();
  std::vector<int32_t> mask;
  if (with_mask) {
    mask.assign(size_t(d.B * d.Lk), 1);
    mask[size_t(d.Lk - 1)] = 0;             // sequence 0: last key is padding
    mask[size_t(d.Lk + d.Lk - 1)] = 0;      // sequence 1: last two
    mask[size_t(d.Lk + d.Lk - 2)] = 0;
  }
  Vec drop;
  if (with_drop) {
    drop.resize(size_t(d.B * d.H * d.Lq * d.Lk));
    for (auto& m : drop) m = rng.uniform() < 0.2f ? 0.f : 1.25f;
  }
  Vec probs(d.B * d.H * d.Lq * d.Lk), ctx(d.B * d.Lq * I), g = rng.vec(d.B * d.Lq * I);
  auto fwd = [&] {
    t5::attention_forward(d, q.data(), ld, k.data(), ld, v.data(), ld, with_bias ? bias.data() : nullptr,
                          with_mask ? mask.data() : nullptr, causal, with_drop ? drop.data() : nullptr, probs.data(),
                          ctx.data());
    return weighted_sum(ctx.data(), g);
  };
  fwd();
  // Masked keys get probability exactly 0; rows sum to 1.
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.H; ++h)
      for (int64_t i = 0; i < d.Lq; ++i) {
        double s = 0;
        for (int64_t j = 0; j < d.Lk; ++j) {
          float p = probs[size_t(((b * d.H + h) * d.Lq + i) * d.Lk + j)];
          s += p;
          if (with_mask && mask[size_t(b * d.Lk + j)] == 0) CHECK(p == 0.f);
          if (causal && j > i) CHECK(p == 0.f);
        }
        CHECK_NEAR(s, 1.0, 1e-5);
      }
  Vec dq(q.size(), 0.f), dk(k.size(), 0.f), dv(v.size(), 0.f), dbias(bias.size(), 0.f);
  t5::attention_backward(d, q.data(), ld, k.data(), ld, v.data(), ld, with_drop ? drop.data() : nullptr, probs.data(),
                         g.data(), dq.data(), dk.data(), dv.data(), with_bias ? dbias.data() : nullptr);
  CHECK(grad_check("attention dq", q.data(), q.size(), dq.data(), fwd) < 2e-2);
  CHECK(grad_check("attention dk", k.data(), k.size(), dk.data(), fwd) < 2e-2);
  CHECK(grad_check("attention dv", v.data(), v.size(), dv.data(), fwd) < 2e-2);
  if (with_bias) CHECK(grad_check("attention dbias", bias.data(), bias.size(), dbias.data(), fwd) < 2e-2);
}

TEST(attention_gradients_plain) { attention_case(false, false, false, false, 0); }
TEST(attention_gradients_bias_mask) { attention_case(true, true, false, false, 5); }
TEST(attention_gradients_causal_bias) { attention_case(true, false, true, false, 0); }
TEST(attention_gradients_dropout_mask) { attention_case(true, true, false, true, 3); }

TEST(attention_all_padding_is_an_error) {
  t5::AttnDims d{1, 2, 2, 1, 2};
  Vec q(4, 0.f), k(4, 0.f), v(4, 0.f), probs(4), ctx(4);
  int32_t mask[] = {0, 0};
  CHECK_THROWS(t5::attention_forward(d, q.data(), 2, k.data(), 2, v.data(), 2, nullptr, mask, false, nullptr,
                                     probs.data(), ctx.data()));
}

TEST(position_bias_gradients) {
  TestRng rng(5);
  const int64_t H = 3, L = 9, nb = 8, md = 12;
  for (bool bidir : {true, false}) {
    Vec table = rng.vec(nb * H), bias(H * L * L), g = rng.vec(H * L * L), dt(nb * H, 0.f);
    auto fwd = [&] {
      t5::position_bias_forward(table.data(), H, L, L, bidir, nb, md, bias.data());
      return weighted_sum(bias.data(), g);
    };
    fwd();
    t5::position_bias_backward(g.data(), H, L, L, bidir, nb, md, dt.data());
    CHECK(grad_check("position bias", table.data(), table.size(), dt.data(), fwd) < 1e-2);
    // Bias depends only on j - i: a Toeplitz matrix per head.
    CHECK(bias[size_t((1 * L + 2) * L + 5)] == bias[size_t((1 * L + 3) * L + 6)]);
  }
}

static T5Config tiny_config(float dropout) {
  T5Config c;
  c.vocab_size = 23;
  c.d_model = 12;
  c.d_kv = 4;
  c.d_ff = 20;
  c.num_heads = 2;
  c.num_encoder_layers = 2;
  c.num_decoder_layers = 2;
  c.num_buckets = 6;
  c.max_distance = 8;
  c.dropout_rate = dropout;
  c.layer_norm_eps = 1e-6f;
  return c;
}

TEST(model_tensor_names_and_shapes) {
  T5Model m(tiny_config(0.f), 1);
  CHECK(m.tensors().front().name == "shared.weight");
  int q = m.find_tensor("decoder.block.1.layer.1.EncDecAttention.q.weight");
  CHECK(q >= 0 && m.tensors()[size_t(q)].shape == std::vector<int64_t>({8, 12}));
  int rb = m.find_tensor("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
  CHECK(rb >= 0 && m.tensors()[size_t(rb)].shape == std::vector<int64_t>({6, 2}));
  CHECK(m.find_tensor("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight") < 0);
  CHECK(m.find_tensor("decoder.block.0.layer.2.DenseReluDense.wo.weight") >= 0);
  // shared + enc 2 * (4 + ln + wi + wo + ln) + rel bias + final + dec 2 * (4 + ln + 4 + ln + wi + wo + ln) + rel bias + final
  CHECK(m.tensors().size() == size_t(1 + 2 * 8 + 1 + 1 + 2 * 13 + 1 + 1));
  int64_t total = 0;
  for (auto& t : m.tensors()) total += t.size;
  CHECK(total == m.num_parameters());
}

struct ModelFixture {
  T5Config cfg;
  T5Model model;
  int64_t B = 2, S = 7, T = 5;
  std::vector<int32_t> ids, mask, dids;
  Vec g, out;
  explicit ModelFixture(float dropout) : cfg(tiny_config(dropout)), model(cfg, 42) {
    TestRng rng(3);
    for (int64_t i = 0; i < B * S; ++i) ids.push_back(rng.below(int(cfg.vocab_size)));
    mask.assign(size_t(B * S), 1);
    mask[size_t(S - 1)] = 0;  // sequence 0 padded by one, sequence 1 by three
    for (int64_t j = S - 3; j < S; ++j) mask[size_t(S + j)] = 0;
    ids[size_t(S + S - 1)] = 0;
    for (int64_t i = 0; i < B * T; ++i) dids.push_back(rng.below(int(cfg.vocab_size)));
    dids[0] = ids[0];  // a token used by both stacks: its embedding gradient adds both
    g = rng.vec(size_t(B * T * cfg.d_model));
    out.resize(g.size());
  }
  T5Batch batch() const { return T5Batch{B, S, T, ids.data(), mask.data(), dids.data()}; }
  double loss() {
    model.set_dropout_seed(99);
    model.forward(batch(), true, out.data());
    return weighted_sum(out.data(), g);
  }
};

static void model_gradcheck(float dropout) {
  ModelFixture f(dropout);
  f.loss();
  f.model.zero_grad();
  f.model.backward(f.g.data());
  Vec grads = f.model.grads();
  auto loss = [&] { return f.loss(); };
  for (const T5Tensor& t : f.model.tensors()) {
    double err = grad_check(t.name.c_str(), f.model.params().data() + t.offset, size_t(t.size), grads.data() + t.offset,
                            loss, 24);
    if (err >= 2e-2) std::printf("  tensor %s failed (dropout %g)\n", t.name.c_str(), double(dropout));
    CHECK(err < 2e-2);
  }
}

TEST(model_gradients_every_tensor_no_dropout) { model_gradcheck(0.f); }
TEST(model_gradients_every_tensor_with_dropout) { model_gradcheck(0.1f); }

TEST(model_padding_does_not_leak) {
  // Changing a padded token (mask 0) must not change any output.
  ModelFixture f(0.f);
  Vec a(f.out.size()), b(f.out.size());
  f.model.forward(f.batch(), false, a.data());
  f.ids[size_t(f.S - 1)] = 5;
  f.ids[size_t(2 * f.S - 2)] = 9;
  f.model.forward(f.batch(), false, b.data());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  // ... while changing a real token does.
  f.ids[0] = (f.ids[0] + 1) % 23;
  f.model.forward(f.batch(), false, b.data());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0);
}

TEST(model_decoder_is_causal) {
  // Decoder position t depends on decoder inputs 0..t only.
  ModelFixture f(0.f);
  Vec a(f.out.size()), b(f.out.size());
  f.model.forward(f.batch(), false, a.data());
  f.dids[size_t(3)] = (f.dids[size_t(3)] + 1) % 23;  // sequence 0, position 3
  f.model.forward(f.batch(), false, b.data());
  const int64_t d = f.cfg.d_model;
  CHECK(std::memcmp(a.data(), b.data(), size_t(3 * d) * sizeof(float)) == 0);
  CHECK(std::memcmp(a.data() + 3 * d, b.data() + 3 * d, size_t(d) * sizeof(float)) != 0);
}

TEST(model_eval_is_deterministic_and_thread_independent) {
  ModelFixture f(0.1f);
  Vec a(f.out.size()), b(f.out.size());
  set_num_threads(1);
  f.model.forward(f.batch(), false, a.data());
  set_num_threads(2);
  f.model.forward(f.batch(), false, b.data());
  set_num_threads(0);
  for (size_t i = 0; i < a.size(); ++i) CHECK_NEAR(a[i], b[i], 1e-5);
  // Train mode with dropout differs from eval; two train forwards draw different masks.
  Vec t1(f.out.size()), t2(f.out.size());
  f.model.forward(f.batch(), true, t1.data());
  f.model.forward(f.batch(), true, t2.data());
  CHECK(std::memcmp(t1.data(), a.data(), a.size() * sizeof(float)) != 0);
  CHECK(std::memcmp(t1.data(), t2.data(), a.size() * sizeof(float)) != 0);
}

TEST(adamw_step_matches_hand_computation) {
  T5Model m(tiny_config(0.f), 7);
  Vec p0 = m.params();
  TestRng rng(8);
  for (auto& g : m.grads()) g = rng.symmetric();
  Vec g0 = m.grads();
  double ss = 0;
  for (float g : g0) ss += double(g) * g;
  AdamWOptions o;
  o.lr = 0.01f;
  o.weight_decay = 0.1f;
  o.clip_norm = 1.f;
  double norm = m.step(o);
  CHECK_NEAR(norm, std::sqrt(ss), 1e-6 * std::sqrt(ss));
  double scale = 1.0 / (std::sqrt(ss) + 1e-6);
  for (const T5Tensor& t : m.tensors()) {
    for (int64_t i = 0; i < t.size; i += 7) {
      size_t k = size_t(t.offset + i);
      // First step: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps) = lr * sign(g).
      double g = g0[k] * scale;
      double expect = p0[k] * (t.decay ? 1.0 - 0.01 * 0.1 : 1.0) - 0.01 * g / (std::fabs(g) + 1e-8);
      CHECK_NEAR(m.params()[k], expect, 1e-5);
    }
  }
  CHECK(m.steps_taken() == 1);
  // A NaN gradient is an error and leaves the parameters alone.
  Vec p1 = m.params();
  m.grads()[3] = NAN;
  CHECK_THROWS(m.step(o));
  CHECK(std::memcmp(p1.data(), m.params().data(), p1.size() * sizeof(float)) == 0);
}

TEST(model_validation_errors) {
  ModelFixture f(0.f);
  Vec out(f.out.size());
  CHECK_THROWS(f.model.backward(f.g.data()));  // no train forward yet
  f.ids[2] = 23;
  CHECK_THROWS(f.model.forward(f.batch(), false, out.data()));
  f.ids[2] = 1;
  f.dids[1] = -1;
  CHECK_THROWS(f.model.forward(f.batch(), false, out.data()));
  f.dids[1] = 1;
  f.mask[0] = 2;
  CHECK_THROWS(f.model.forward(f.batch(), false, out.data()));
  for (int64_t s = 0; s < f.S; ++s) f.mask[size_t(s)] = 0;
  CHECK_THROWS(f.model.forward(f.batch(), false, out.data()));
  T5Config bad = tiny_config(0.f);
  bad.dropout_rate = 1.f;
  CHECK_THROWS(T5Model(bad, 1));
  bad = tiny_config(0.f);
  bad.num_heads = 0;
  CHECK_THROWS(T5Model(bad, 1));
  // backward runs once per train forward.
  ModelFixture h(0.f);
  h.loss();
  h.model.backward(h.g.data());
  CHECK_THROWS(h.model.backward(h.g.data()));
}

// The optimiser state round-trips: a model given another's moments and step count takes the
// same next step, bit for bit; bad states are refused before anything changes.
TEST(optimizer_state_round_trip_and_validation) {
  AdamWOptions o;
  o.lr = 0.01f;
  o.weight_decay = 0.1f;
  T5Model a(tiny_config(0.f), 3);
  TestRng rng(11);
  for (int s = 0; s < 3; ++s) {
    for (auto& g : a.grads()) g = rng.symmetric();
    a.step(o);
  }
  // b: same weights, fresh optimiser, then a's state.
  T5Model b(tiny_config(0.f), 4);
  b.params() = a.params();
  const int64_t n = a.num_parameters();
  b.set_optimizer_state(a.steps_taken(), a.adam_m().data(), n, a.adam_v().data(), n);
  CHECK(b.steps_taken() == 3);
  Vec g(static_cast<size_t>(n));
  for (auto& x : g) x = rng.symmetric();
  a.grads() = g;
  b.grads() = g;
  a.step(o);
  b.step(o);
  CHECK(std::memcmp(a.params().data(), b.params().data(), size_t(n) * sizeof(float)) == 0);
  CHECK(std::memcmp(a.adam_v().data(), b.adam_v().data(), size_t(n) * sizeof(float)) == 0);

  // Bad states: wrong sizes, NaN, negative second moment, non-zero moments at step 0, negative
  // steps. Each leaves b unchanged.
  Vec m = a.adam_m(), v = a.adam_v();
  Vec keep_m = b.adam_m(), keep_v = b.adam_v();
  const int64_t keep_t = b.steps_taken();
  auto unchanged = [&] {
    return b.steps_taken() == keep_t && std::memcmp(b.adam_m().data(), keep_m.data(), size_t(n) * sizeof(float)) == 0 &&
           std::memcmp(b.adam_v().data(), keep_v.data(), size_t(n) * sizeof(float)) == 0;
  };
  auto message = [&](auto fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  CHECK_THROWS(b.set_optimizer_state(4, m.data(), n - 1, v.data(), n));
  CHECK_THROWS(b.set_optimizer_state(4, m.data(), n, v.data(), n + 1));
  CHECK_THROWS(b.set_optimizer_state(-1, m.data(), n, v.data(), n));
  m[5] = NAN;
  std::string e1 = message([&] { b.set_optimizer_state(4, m.data(), n, v.data(), n); });
  CHECK(e1.find("first moment of 'shared.weight'[5]") != std::string::npos);
  m[5] = 0.f;
  const T5Tensor& last = a.tensors().back();
  v[size_t(last.offset + 1)] = -1e-3f;
  std::string e2 = message([&] { b.set_optimizer_state(4, m.data(), n, v.data(), n); });
  CHECK(e2.find("second moment of '" + last.name + "'[1] is negative") != std::string::npos);
  v[size_t(last.offset + 1)] = INFINITY;
  CHECK_THROWS(b.set_optimizer_state(4, m.data(), n, v.data(), n));
  v[size_t(last.offset + 1)] = 0.f;
  CHECK_THROWS(b.set_optimizer_state(0, m.data(), n, v.data(), n));
  CHECK(unchanged());
  // A fresh state (step 0, zero moments) is accepted.
  Vec z(static_cast<size_t>(n), 0.f);
  b.set_optimizer_state(0, z.data(), n, z.data(), n);
  CHECK(b.steps_taken() == 0);
}
