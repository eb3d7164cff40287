// softmax_xent_rows against a double-precision reference: loss and gradient, excluded (-inf)
// entries, large logits (no overflow), NaN rows, bad targets.
#include <cmath>
#include <limits>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/error.h"
#include "tokenrec/loss.h"
#include "tokenrec/parallel.h"

using namespace tokenrec;
static const float kInf = std::numeric_limits<float>::infinity();

// Reference: loss of one row and its gradient (scale * (softmax - onehot)), in double.
static double reference(const std::vector<float>& row, int t, double scale, std::vector<double>& grad) {
  double m = -INFINITY;
  for (float x : row) m = std::max(m, double(x));
  double s = 0;
  for (float x : row) s += std::exp(double(x) - m);
  grad.assign(row.size(), 0.0);
  for (size_t i = 0; i < row.size(); ++i) grad[i] = scale * std::exp(double(row[i]) - m) / s;
  grad[size_t(t)] -= scale;
  return m + std::log(s) - double(row[size_t(t)]);
}

TEST(matches_reference_with_exclusions_and_threads) {
  for (int threads : {1, 3}) {
    set_num_threads(threads);
    TestRng rng(5);
    const int64_t B = 7, N = 301;
    std::vector<float> L(size_t(B * N));
    for (auto& x : L) x = 8.f * rng.symmetric();
    std::vector<int32_t> t(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) t[size_t(b)] = rng.below(int(N));
    // Exclude a few items per row (never the target).
    for (int64_t b = 0; b < B; ++b)
      for (int k = 0; k < 20; ++k) {
        int i = rng.below(int(N));
        if (i != t[size_t(b)]) L[size_t(b * N + i)] = -kInf;
      }
    std::vector<float> G = L;
    double loss = softmax_xent_rows(G.data(), B, N, t.data(), 0.25f);
    double want = 0, worst = 0;
    for (int64_t b = 0; b < B; ++b) {
      std::vector<float> row(L.begin() + b * N, L.begin() + (b + 1) * N);
      std::vector<double> g;
      want += reference(row, t[size_t(b)], 0.25, g);
      for (int64_t i = 0; i < N; ++i) {
        worst = std::max(worst, std::fabs(double(G[size_t(b * N + i)]) - g[size_t(i)]));
        if (std::isinf(row[size_t(i)])) CHECK(G[size_t(b * N + i)] == 0.f);
      }
    }
    CHECK_NEAR(loss, want, 1e-4 * B);
    CHECK(worst < 1e-6);
  }
  set_num_threads(0);
}

TEST(large_logits_do_not_overflow) {
  std::vector<float> L = {1000.f, 999.f, -1000.f};
  int32_t t = 1;
  double loss = softmax_xent_rows(L.data(), 1, 3, &t, 1.f);
  CHECK_NEAR(loss, std::log(1.0 + std::exp(1.0)), 1e-5);  // logsumexp - 999
  CHECK(std::isfinite(L[0]) && std::isfinite(L[1]) && L[2] == 0.f);
  CHECK_NEAR(L[0] + L[1] + L[2], 0.0, 1e-6);  // the gradient of a softmax row sums to 0
}

TEST(a_nan_row_gives_nan_not_a_crash) {
  std::vector<float> L = {0.f, std::nanf(""), 1.f, 0.f, 1.f, 2.f};
  int32_t t[2] = {0, 2};
  double loss = softmax_xent_rows(L.data(), 2, 3, t, 1.f);
  CHECK(std::isnan(loss));
  CHECK(std::isnan(L[0]));
  CHECK(std::isfinite(L[3]) && std::isfinite(L[5]));
}

TEST(bad_targets_throw) {
  std::vector<float> L = {0.f, 1.f, -kInf};
  int32_t bad = 3, minus = -1, excluded = 2;
  CHECK_THROWS(softmax_xent_rows(L.data(), 1, 3, &bad, 1.f));
  CHECK_THROWS(softmax_xent_rows(L.data(), 1, 3, &minus, 1.f));
  CHECK_THROWS(softmax_xent_rows(L.data(), 1, 3, &excluded, 1.f));
  CHECK_THROWS(softmax_xent_rows(L.data(), 1, 0, &bad, 1.f));
}
