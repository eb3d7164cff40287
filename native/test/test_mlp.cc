// Masked MLP: forward against a float64 reference, finite-difference gradients (weights and
// input), mask statistics and the caller's input left untouched.
#include <cmath>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/mlp.h"

using namespace tokenrec;

// float64 reference forward; returns the output (B, out). xin: the already-masked input.
static std::vector<double> ref_forward(const MlpShape& s, const std::vector<double>& p, const std::vector<double>& xin, int64_t B) {
  std::vector<double> X = xin;
  for (int64_t l = 0; l < s.layers(); ++l) {
    int64_t in = s.dims[size_t(l)], out = s.dims[size_t(l + 1)];
    std::vector<double> Y(size_t(B * out));
    const double* W = p.data() + s.weight_offset(l);
    const double* bias = p.data() + s.bias_offset(l);
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

// Loss = sum(w . Y) with fixed random weights w, so dL/dY = w.
static double ref_loss(const MlpShape& s, const std::vector<double>& p, const std::vector<double>& xin, int64_t B,
                       const std::vector<double>& w) {
  auto y = ref_forward(s, p, xin, B);
  double L = 0;
  for (size_t i = 0; i < y.size(); ++i) L += w[i] * y[i];
  return L;
}

static std::vector<double> masked(const MlpShape& s, const std::vector<float>& x, int64_t B, const MaskSpec& m) {
  std::vector<double> out(x.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < s.in(); ++j) {
      uint64_t row = m.row_ids ? uint64_t(m.row_ids[b]) : uint64_t(b);
      out[size_t(b * s.in() + j)] = mask_keep(m, row, uint64_t(j)) ? x[size_t(b * s.in() + j)] : 0.0;
    }
  return out;
}

TEST(forward_matches_float64_reference_with_mask) {
  TestRng rng(1);
  MlpShape s{{7, 11, 5, 3}};
  const int64_t B = 9;
  std::vector<float> p(size_t(s.num_params()));
  mlp_init(s, 3, p.data());
  auto x = rng.vec(size_t(B * 7));
  const auto x_copy = x;
  std::vector<int32_t> ids{40, 3, 17, 99, 5, 6, 7, 1000, 2};
  MaskSpec m{0.3f, 77, 2, ids.data()};
  std::vector<float> acts(size_t(s.acts_size(B)));
  mlp_forward_cpu(s, p.data(), x.data(), B, &m, acts.data());
  CHECK(x == x_copy);  // the caller's input is never written
  std::vector<double> pd(p.begin(), p.end());
  auto xin = masked(s, x, B, m);
  auto y = ref_forward(s, pd, xin, B);
  const float* out = acts.data() + s.acts_offset(3, B);
  for (size_t i = 0; i < y.size(); ++i) CHECK_NEAR(out[i], y[i], 1e-5);
  // X_0 in acts is the masked input exactly
  for (size_t i = 0; i < xin.size(); ++i) CHECK(acts[i] == float(xin[i]));
}

TEST(gradients_match_finite_differences) {
  TestRng rng(2);
  MlpShape s{{6, 8, 7, 4}};
  const int64_t B = 5;
  std::vector<float> p(size_t(s.num_params()));
  mlp_init(s, 9, p.data());
  auto x = rng.vec(size_t(B * 6));
  std::vector<int32_t> ids{0, 1, 2, 3, 4};
  MaskSpec m{0.25f, 5, 1, ids.data()};
  auto wv = rng.vec(size_t(B * 4));
  std::vector<double> w(wv.begin(), wv.end());
  std::vector<float> acts(size_t(s.acts_size(B))), grads(size_t(s.num_params())), dx(size_t(B * 6));
  mlp_forward_cpu(s, p.data(), x.data(), B, &m, acts.data());
  mlp_backward_cpu(s, p.data(), acts.data(), B, wv.data(), grads.data(), dx.data());
  std::vector<double> pd(p.begin(), p.end());
  auto xin = masked(s, x, B, m);
  const double h = 1e-6;
  int bad = 0;
  for (size_t i = 0; i < pd.size(); ++i) {
    auto pp = pd, pm = pd;
    pp[i] += h;
    pm[i] -= h;
    double fd = (ref_loss(s, pp, xin, B, w) - ref_loss(s, pm, xin, B, w)) / (2 * h);
    if (std::fabs(fd - grads[i]) > 1e-4 + 1e-3 * std::fabs(fd)) ++bad;
  }
  CHECK(bad == 0);
  for (size_t i = 0; i < xin.size(); ++i) {
    auto xp = xin, xm = xin;
    xp[i] += h;
    xm[i] -= h;
    double fd = (ref_loss(s, pd, xp, B, w) - ref_loss(s, pd, xm, B, w)) / (2 * h);
    CHECK_NEAR(dx[i], fd, 1e-4 + 1e-3 * std::fabs(fd));
  }
  // accumulate adds to what is there
  std::vector<float> g2 = grads;
  mlp_backward_cpu(s, p.data(), acts.data(), B, wv.data(), g2.data(), nullptr, true);
  for (size_t i = 0; i < g2.size(); ++i) CHECK_NEAR(g2[i], 2 * grads[i], 1e-5 + 1e-5 * std::fabs(grads[i]));
}

TEST(mask_statistics_match_rate) {
  // Each element masked with probability rho, independently per element, per sample, per epoch.
  for (float rho : {0.2f, 0.5f}) {
    MaskSpec e1{rho, 123, 1, nullptr}, e2{rho, 123, 2, nullptr};
    const int64_t rows = 2000, d = 64, n = rows * d;
    int64_t masked1 = 0, both = 0, same_row_pairs = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < d; ++j) {
        bool m1 = !mask_keep(e1, uint64_t(r), uint64_t(j)), m2 = !mask_keep(e2, uint64_t(r), uint64_t(j));
        masked1 += m1;
        both += m1 && m2;
        // neighbouring rows are independent draws too
        same_row_pairs += m1 && !mask_keep(e1, uint64_t(r + 1), uint64_t(j));
      }
    double sd = std::sqrt(rho * (1 - rho) / double(n));
    CHECK_NEAR(double(masked1) / n, rho, 5 * sd);
    CHECK_NEAR(double(both) / n, double(rho) * rho, 5 * std::sqrt(rho * rho / double(n)));
    CHECK_NEAR(double(same_row_pairs) / n, double(rho) * rho, 5 * std::sqrt(rho * rho / double(n)));
  }
  MaskSpec off{0.f, 1, 1, nullptr};
  for (int j = 0; j < 100; ++j) CHECK(mask_keep(off, 3, uint64_t(j)));
}

TEST(rejects_bad_arguments) {
  MlpShape s{{3, 2}};
  std::vector<float> p(size_t(s.num_params())), acts(size_t(s.acts_size(1)));
  float x[3] = {1.f, NAN, 0.f};
  CHECK_THROWS(mlp_forward_cpu(s, p.data(), x, 1, nullptr, acts.data()));
  float y[3] = {1.f, 2.f, 3.f};
  MaskSpec m{1.0f, 0, 0, nullptr};
  CHECK_THROWS(mlp_forward_cpu(s, p.data(), y, 1, &m, acts.data()));
  MlpShape bad{{3}};
  CHECK_THROWS(mlp_forward_cpu(bad, p.data(), y, 1, nullptr, acts.data()));
  MlpShape zero{{3, 0}};
  CHECK_THROWS(mlp_forward_cpu(zero, p.data(), y, 1, nullptr, acts.data()));
}
