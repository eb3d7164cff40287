// The MQ-Tokenizer's training step: finite-difference gradients through mask, K encoders, the
// straight-through quantiser and the decoder; the encoders learn; determinism; inputs untouched.
#include <cmath>
#include <cstring>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/tokenizer.h"

using namespace tokenrec;

namespace {

std::vector<double> ref_mlp(const MlpShape& s, const double* p, const std::vector<double>& xin, int64_t B) {
  std::vector<double> X = xin;
  for (int64_t l = 0; l < s.layers(); ++l) {
    int64_t in = s.dims[size_t(l)], out = s.dims[size_t(l + 1)];
    std::vector<double> Y(size_t(B * out));
    const double* W = p + s.weight_offset(l);
    const double* bias = p + s.bias_offset(l);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t o = 0; o < out; ++o) {
        double acc = bias[o];
        for (int64_t i = 0; i < in; ++i) acc += W[o * in + i] * X[size_t(b * in + i)];
        if (l + 1 < s.layers() && acc < 0) acc = 0;
        Y[size_t(b * out + o)] = acc;
      }
    X.swap(Y);
  }
  return X;
}

// float64 reference of the training objective whose gradient the straight-through estimator
// computes. With the codes w0 and the offsets delta = c_w0 - a (both taken at the base point
// theta0) held fixed:
//   z(theta)  = mean_k (a^k(theta) + delta_k)           equals the quantised mean at theta0
//   F(theta)  = mse(x, dec(z)) + sum_k mse(a0^k, c^k_w0(theta)) + beta sum_k mse(a^k(theta), c0^k_w0)
// F(theta0) is the loss and grad F(theta0) is exactly the ST gradient (sg[.] = frozen at theta0).
struct Reference {
  const MqTokenizer& t;
  std::vector<double> x;                 // input (B, d)
  std::vector<std::vector<double>> xin;  // masked input of each encoder (K, B, d)
  int64_t B;
  std::vector<int32_t> w0;     // (B, K)
  std::vector<double> a0, c0;  // encoder outputs (B, K, dc) and chosen codewords (B, K, dc) at theta0

  std::vector<double> encoders(const std::vector<double>& p) const {
    const auto& c = t.config();
    std::vector<double> a(size_t(B * c.K * c.dc));
    for (int64_t k = 0; k < c.K; ++k) {
      auto out = ref_mlp(t.encoder_shape(), p.data() + t.encoder_offset(k), xin[size_t(k)], B);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t e = 0; e < c.dc; ++e) a[size_t((b * c.K + k) * c.dc + e)] = out[size_t(b * c.dc + e)];
    }
    return a;
  }

  double loss(const std::vector<double>& p, double* recon = nullptr, bool recon_only = false) const {
    const auto& c = t.config();
    auto a = encoders(p);
    const double* cb = p.data() + t.codebook_offset();
    std::vector<double> z(size_t(B * c.dc), 0.0);
    double cbl = 0, com = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < c.K; ++k)
        for (int64_t e = 0; e < c.dc; ++e) {
          size_t o = size_t((b * c.K + k) * c.dc + e);
          double delta = c0[o] - a0[o];
          z[size_t(b * c.dc + e)] += (a[o] + delta) / double(c.K);
          double cw = cb[(k * c.L + w0[size_t(b * c.K + k)]) * c.dc + e];
          cbl += (a0[o] - cw) * (a0[o] - cw);
          com += (a[o] - c0[o]) * (a[o] - c0[o]);
        }
    auto r = ref_mlp(t.decoder_shape(), p.data() + t.decoder_offset(), z, B);
    double rec = 0;
    for (size_t i = 0; i < r.size(); ++i) rec += (r[i] - x[i]) * (r[i] - x[i]);
    rec /= double(B * c.d);
    if (recon) *recon = rec;
    if (recon_only) return rec;
    return rec + (cbl + c.beta * com) / double(B * c.dc) + decorrelation(a);
  }

  // lambda * sum_{k<j} ||C_kj||^2 / (tr C_kk tr C_jj), straight from the definition in float64.
  double decorrelation(const std::vector<double>& a) const {
    const auto& c = t.config();
    if (c.decorrelation == 0.f) return 0;
    std::vector<double> ac = a;
    for (int64_t k = 0; k < c.K; ++k)
      for (int64_t e = 0; e < c.dc; ++e) {
        double m = 0;
        for (int64_t b = 0; b < B; ++b) m += ac[size_t((b * c.K + k) * c.dc + e)];
        for (int64_t b = 0; b < B; ++b) ac[size_t((b * c.K + k) * c.dc + e)] -= m / double(B);
      }
    auto cov = [&](int64_t k, int64_t j, int64_t p, int64_t q) {
      double v = 0;
      for (int64_t b = 0; b < B; ++b) v += ac[size_t((b * c.K + k) * c.dc + p)] * ac[size_t((b * c.K + j) * c.dc + q)];
      return v / double(B);
    };
    double total = 0;
    for (int64_t k = 0; k < c.K; ++k)
      for (int64_t j = k + 1; j < c.K; ++j) {
        double n = 0, sk = 0, sj = 0;
        for (int64_t p = 0; p < c.dc; ++p) {
          sk += cov(k, k, p, p);
          sj += cov(j, j, p, p);
          for (int64_t q = 0; q < c.dc; ++q) n += cov(k, j, p, q) * cov(k, j, p, q);
        }
        total += n / (sk * sj);
      }
    return double(c.decorrelation) * total;
  }
};

MqConfig tiny_config() {
  MqConfig c;
  c.d = 5;
  c.K = 2;
  c.L = 4;
  c.dc = 4;
  c.enc_hidden = {8, 6};
  c.dec_hidden = {8, 8};
  c.mask_rate = 0.3f;
  c.beta = 0.3f;
  c.seed = 12;
  return c;
}

}  // namespace

static void check_gradients(bool independent_masks, float decorrelation = 0.f) {
  MqConfig cfg = tiny_config();
  cfg.independent_masks = independent_masks;
  cfg.decorrelation = decorrelation;
  if (decorrelation > 0.f) cfg.K = 3;  // three pairs of encoders
  MqTokenizer t(cfg);
  TestRng rng(21);
  const int64_t B = 7;
  // Codewords spread like the encoder outputs, so that codes differ between samples.
  {
    std::vector<float> x0 = rng.vec(size_t(B * cfg.d)), a(size_t(B * cfg.K * cfg.dc));
    t.encoder_outputs(x0.data(), B, a.data());
    for (int64_t k = 0; k < cfg.K; ++k) {
      std::vector<float> vals(size_t(cfg.L * cfg.dc));
      std::vector<int32_t> rows(size_t(cfg.L));
      for (int64_t l = 0; l < cfg.L; ++l) {
        rows[size_t(l)] = int32_t(l);
        for (int64_t e = 0; e < cfg.dc; ++e) vals[size_t(l * cfg.dc + e)] = a[size_t((l * cfg.K + k) * cfg.dc + e)] + 0.1f * rng.symmetric();
      }
      t.set_codewords(k, rows.data(), cfg.L, vals.data());
    }
  }
  auto x = rng.vec(size_t(B * cfg.d));
  const auto x_copy = x;
  std::vector<int32_t> ids{3, 14, 15, 92, 65, 35, 89};
  const uint64_t epoch = 4;
  std::vector<int32_t> idx(size_t(B * cfg.K));
  MqStepStats st = t.loss_and_grads(x.data(), ids.data(), B, epoch, -1.f, idx.data());
  CHECK(x == x_copy);  // masking never writes the caller's data

  Reference ref{t, {}, {}, B, idx, {}, {}};
  ref.x.assign(x.begin(), x.end());
  int masked = 0, differ = 0;
  for (int64_t k = 0; k < cfg.K; ++k) {
    MaskSpec m{cfg.mask_rate, independent_masks ? mask_seed_of_encoder(cfg.seed, k) : cfg.seed, epoch, ids.data()};
    ref.xin.push_back(ref.x);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < cfg.d; ++j)
        if (!mask_keep(m, uint64_t(ids[size_t(b)]), uint64_t(j))) ref.xin.back()[size_t(b * cfg.d + j)] = 0, ++masked;
    if (k > 0) differ += ref.xin[size_t(k)] != ref.xin[0];
  }
  CHECK(masked > 0);  // the mask is really exercised
  CHECK((differ > 0) == independent_masks);
  std::vector<double> p0(t.params(), t.params() + t.num_params());
  ref.a0 = ref.encoders(p0);
  ref.c0.resize(ref.a0.size());
  int distinct = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < cfg.K; ++k) {
      distinct += idx[size_t(b * cfg.K + k)] != idx[size_t(k)];
      // the native codes are the float64 nearest codewords
      double best = 1e300;
      int32_t bi = -1;
      for (int64_t l = 0; l < cfg.L; ++l) {
        double s = 0;
        for (int64_t e = 0; e < cfg.dc; ++e) {
          double dd = ref.a0[size_t((b * cfg.K + k) * cfg.dc + e)] - p0[size_t(t.codebook_offset() + (k * cfg.L + l) * cfg.dc + e)];
          s += dd * dd;
        }
        if (s < best) best = s, bi = int32_t(l);
      }
      CHECK(bi == idx[size_t(b * cfg.K + k)]);
      for (int64_t e = 0; e < cfg.dc; ++e)
        ref.c0[size_t((b * cfg.K + k) * cfg.dc + e)] = p0[size_t(t.codebook_offset() + (k * cfg.L + bi) * cfg.dc + e)];
    }
  CHECK(distinct > 0);
  double recon = 0;
  double L0 = ref.loss(p0, &recon);
  CHECK_NEAR(st.loss, L0, 1e-5 * (1 + L0));
  CHECK_NEAR(st.recon, recon, 1e-5 * (1 + recon));
  CHECK_NEAR(st.decorrelation, ref.decorrelation(ref.a0), 1e-5);
  if (decorrelation > 0.f) CHECK(st.decorrelation > 1e-3);  // the term is really exercised

  const double h = 1e-6;
  int bad = 0, enc_nonzero = 0;
  for (int64_t i = 0; i < t.num_params(); ++i) {
    auto pp = p0, pm = p0;
    pp[size_t(i)] += h;
    pm[size_t(i)] -= h;
    double fd = (ref.loss(pp) - ref.loss(pm)) / (2 * h);
    double g = t.grads()[i];
    if (std::fabs(fd - g) > 2e-5 + 2e-3 * std::fabs(fd)) {
      if (bad < 10) std::printf("  param %ld: native %.8g, finite difference %.8g\n", long(i), g, fd);
      ++bad;
    }
    // the reconstruction term alone reaches the encoders (through the straight-through path)
    if (i < t.codebook_offset() && std::fabs(ref.loss(pp, nullptr, true) - ref.loss(pm, nullptr, true)) / (2 * h) > 1e-4)
      ++enc_nonzero;
  }
  CHECK(bad == 0);
  CHECK(enc_nonzero > 10);
}

TEST(gradients_match_finite_differences_through_mask_encoders_st_decoder) { check_gradients(false); }
TEST(gradients_match_finite_differences_with_independent_masks) { check_gradients(true); }
TEST(gradients_match_finite_differences_with_decorrelation) { check_gradients(false, 0.7f); }

// Small model on clustered data (8 clusters in 8-D): something a tokenizer can learn quickly.
static MqConfig small_config() {
  MqConfig cfg;
  cfg.d = 8;
  cfg.K = 2;
  cfg.L = 8;
  cfg.dc = 16;
  cfg.enc_hidden = {16, 16};
  cfg.dec_hidden = {16, 16};
  cfg.lr = 3e-3f;
  cfg.seed = 5;
  return cfg;
}

static std::vector<float> clustered(int64_t B, int64_t d, uint64_t seed) {
  TestRng rng(seed);
  auto centers = rng.vec(size_t(8 * d));
  std::vector<float> x(size_t(B * d));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < d; ++j) x[size_t(b * d + j)] = centers[size_t((b % 8) * d + j)] + 0.05f * rng.symmetric();
  return x;
}

TEST(encoders_learn_from_reconstruction_alone) {
  // beta = 0: the only path to the encoders is the straight-through estimator. The reference
  // implementation lost it (PAPER.md section 4.1); ours must give them a gradient and move them.
  MqConfig cfg = small_config();
  cfg.beta = 0.f;
  MqTokenizer t(cfg);
  const int64_t B = 64;
  auto x = clustered(B, cfg.d, 2);
  std::vector<float> before(t.params(), t.params() + t.codebook_offset());
  t.loss_and_grads(x.data(), nullptr, B, 0, -1.f, nullptr);
  double gn = 0;
  for (int64_t i = 0; i < t.codebook_offset(); ++i) gn += double(t.grads()[i]) * t.grads()[i];
  CHECK(gn > 1e-10);
  for (int s = 0; s < 5; ++s) t.train_step(x.data(), nullptr, B, uint64_t(s), nullptr);
  int changed = 0;
  for (int64_t i = 0; i < t.codebook_offset(); ++i) changed += t.params()[i] != before[size_t(i)];
  CHECK(changed > t.codebook_offset() / 2);
}

TEST(training_reduces_the_loss_and_is_deterministic) {
  MqConfig cfg = small_config();
  const int64_t B = 64;
  auto x = clustered(B, cfg.d, 9);
  auto run = [&](std::vector<int32_t>& codes) {
    MqTokenizer t(cfg);
    double first = 0, last = 0;
    for (int s = 0; s < 300; ++s) {
      MqStepStats st = t.train_step(x.data(), nullptr, B, uint64_t(s), nullptr);
      if (s == 0) first = st.recon;
      last = st.recon;
    }
    codes.resize(size_t(B * cfg.K));
    t.encode(x.data(), B, codes.data(), nullptr);
    return std::make_pair(first, last);
  };
  std::vector<int32_t> c1, c2;
  auto r1 = run(c1);
  auto r2 = run(c2);
  CHECK(r1.second < 0.5 * r1.first);
  CHECK(r1 == r2);
  CHECK(c1 == c2);  // same seed, same codes
}

TEST(encode_is_pure_and_batch_independent) {
  MqConfig cfg = tiny_config();
  MqTokenizer t(cfg);
  TestRng rng(4);
  const int64_t B = 10;
  auto x = rng.vec(size_t(B * cfg.d));
  const auto x_copy = x;
  std::vector<int32_t> all(size_t(B * cfg.K)), again(size_t(B * cfg.K)), one(size_t(cfg.K));
  t.encode(x.data(), B, all.data(), nullptr);
  t.encode(x.data(), B, again.data(), nullptr);
  CHECK(all == again);
  CHECK(x == x_copy);
  for (int64_t b = 0; b < B; ++b) {
    t.encode(x.data() + b * cfg.d, 1, one.data(), nullptr);
    for (int64_t k = 0; k < cfg.K; ++k) CHECK(one[size_t(k)] == all[size_t(b * cfg.K + k)]);
  }
}

TEST(rejects_bad_configs) {
  MqConfig c = tiny_config();
  c.K = 0;
  CHECK_THROWS(MqTokenizer{c});
  c = tiny_config();
  c.mask_rate = 1.f;
  CHECK_THROWS(MqTokenizer{c});
  c = tiny_config();
  c.L = 1;
  CHECK_THROWS(MqTokenizer{c});
  c = tiny_config();
  c.decorrelation = -0.1f;
  CHECK_THROWS(MqTokenizer{c});
  c.decorrelation = std::nanf("");
  CHECK_THROWS(MqTokenizer{c});
  MqTokenizer t(tiny_config());
  float v[3] = {0, 0, 0};
  int32_t row = 4;
  CHECK_THROWS(t.set_codewords(0, &row, 1, v));
  CHECK_THROWS(t.set_codewords(2, &row, 1, v));
}
