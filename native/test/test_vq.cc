// Batched nearest-codeword search against brute force (ties allowed), quantised mean, k-means.
#include <cmath>
#include <limits>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/vq.h"

using namespace tokenrec;

static double sqdist(const float* a, const float* c, int64_t dc) {
  double s = 0;
  for (int64_t e = 0; e < dc; ++e) s += (double(a[e]) - c[e]) * (double(a[e]) - c[e]);
  return s;
}

TEST(hand_worked_case) {
  // K = 2 codebooks of L = 3 codewords in 2-D.
  const float cb[2 * 3 * 2] = {0, 0, 1, 0, 0, 1, /* k=1 */ 5, 5, -1, -1, 2, 2};
  const float a[2 * 2 * 2] = {0.9f, 0.1f, 1.9f, 2.2f, /* b=1 */ 0.f, 0.6f, -3.f, -3.f};
  int32_t idx[4];
  float dist[4];
  vq_nearest_cpu(a, cb, 2, 2, 3, 2, idx, dist);
  CHECK(idx[0] == 1 && idx[1] == 2 && idx[2] == 2 && idx[3] == 1);
  CHECK_NEAR(dist[0], 0.02, 1e-6);
  CHECK_NEAR(dist[1], 0.05, 1e-6);
  CHECK_NEAR(dist[2], 0.16, 1e-6);
  CHECK_NEAR(dist[3], 8.0, 1e-5);
}

TEST(equals_brute_force_ties_allowed) {
  TestRng rng(3);
  for (int64_t dc : {1, 19, 64}) {
    const int64_t B = 700, K = 3, L = 37;
    auto a = rng.vec(size_t(B * K * dc));
    auto cb = rng.vec(size_t(K * L * dc));
    // duplicated codewords make exact ties; some samples sit exactly on a codeword
    for (int64_t k = 0; k < K; ++k)
      for (int64_t e = 0; e < dc; ++e) cb[size_t((k * L + 30) * dc + e)] = cb[size_t((k * L + 4) * dc + e)];
    for (int64_t b = 0; b < 20; ++b)
      for (int64_t e = 0; e < dc; ++e) a[size_t((b * K + 1) * dc + e)] = cb[size_t((1 * L + 4) * dc + e)];
    std::vector<int32_t> idx(size_t(B * K));
    std::vector<float> dist(size_t(B * K));
    vq_nearest_cpu(a.data(), cb.data(), B, K, L, dc, idx.data(), dist.data());
    int wrong = 0, ties = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < K; ++k) {
        const float* av = a.data() + (b * K + k) * dc;
        double best = std::numeric_limits<double>::infinity();
        int64_t bi = -1;
        for (int64_t l = 0; l < L; ++l) {
          double d = sqdist(av, cb.data() + (k * L + l) * dc, dc);
          if (d < best) best = d, bi = l;
        }
        int32_t got = idx[size_t(b * K + k)];
        double dgot = sqdist(av, cb.data() + (k * L + got) * dc, dc);
        // The chosen codeword is a nearest one up to float rounding of the GEMM expansion.
        double tol = 1e-5 * (1 + best + dc);
        if (dgot > best + tol) ++wrong;
        if (got != bi) ++ties;
        CHECK_NEAR(dist[size_t(b * K + k)], dgot, 1e-4 * (1 + dgot));
      }
    CHECK(wrong == 0);
    (void)ties;
  }
}

TEST(exact_ties_go_to_lowest_index) {
  const float cb[4 * 2] = {1, 0, 0, 1, 1, 0, -1, 0};
  const float a[2] = {2, 0};
  int32_t idx[1];
  vq_nearest_cpu(a, cb, 1, 1, 4, 2, idx, nullptr);
  CHECK(idx[0] == 0);
}

TEST(quantize_is_mean_of_chosen) {
  const float cb[2 * 2 * 2] = {1, 2, 3, 4, /* k=1 */ 10, 20, 30, 40};
  const int32_t idx[2] = {1, 0};
  float z[2];
  vq_quantize_cpu(cb, idx, 1, 2, 2, 2, z);
  CHECK_NEAR(z[0], 6.5, 1e-6);
  CHECK_NEAR(z[1], 12.0, 1e-6);
  const int32_t bad[2] = {2, 0};
  CHECK_THROWS(vq_quantize_cpu(cb, bad, 1, 2, 2, 2, z));
}

TEST(backward_matches_finite_differences_of_the_vq_losses) {
  // With dz = null the quantiser gradients are exactly those of codebook + beta * commitment
  // (for fixed idx), differentiated w.r.t. the codewords (a frozen) and a (codewords frozen).
  TestRng rng(4);
  const int64_t B = 6, K = 2, L = 3, dc = 4;
  const float beta = 0.37f;
  auto a = rng.vec(size_t(B * K * dc)), cb = rng.vec(size_t(K * L * dc));
  std::vector<int32_t> idx(size_t(B * K));
  vq_nearest_cpu(a.data(), cb.data(), B, K, L, dc, idx.data(), nullptr);
  std::vector<float> da(a.size()), dcb(cb.size());
  VqLosses ls = vq_backward_cpu(a.data(), cb.data(), idx.data(), B, K, L, dc, beta, nullptr, da.data(), dcb.data());
  auto mse = [&](const std::vector<double>& av, const std::vector<double>& cv) {
    double s = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t e = 0; e < dc; ++e) {
          double d = av[size_t((b * K + k) * dc + e)] - cv[size_t((k * L + idx[size_t(b * K + k)]) * dc + e)];
          s += d * d;
        }
    return s / double(B * dc);
  };
  std::vector<double> ad(a.begin(), a.end()), cd(cb.begin(), cb.end());
  CHECK_NEAR(ls.codebook, mse(ad, cd), 1e-6);
  CHECK_NEAR(ls.commitment, beta * mse(ad, cd), 1e-6);
  const double h = 1e-6;
  for (size_t i = 0; i < ad.size(); ++i) {
    auto p = ad, m = ad;
    p[i] += h, m[i] -= h;
    CHECK_NEAR(da[i], beta * (mse(p, cd) - mse(m, cd)) / (2 * h), 1e-5);
  }
  for (size_t i = 0; i < cd.size(); ++i) {
    auto p = cd, m = cd;
    p[i] += h, m[i] -= h;
    CHECK_NEAR(dcb[i], (mse(ad, p) - mse(ad, m)) / (2 * h), 1e-5);
  }
}

TEST(kmeans_finds_separated_clusters) {
  TestRng rng(8);
  const int64_t C = 6, per = 50, D = 5, N = C * per;
  std::vector<float> centers(size_t(C * D)), data(size_t(N * D));
  for (auto& c : centers) c = 20.f * rng.symmetric();
  for (int64_t i = 0; i < N; ++i)
    for (int64_t e = 0; e < D; ++e) data[size_t(i * D + e)] = centers[size_t((i % C) * D + e)] + 0.1f * rng.symmetric();
  std::vector<float> cent(size_t(C * D));
  double mse = kmeans_cpu(data.data(), N, D, C, 20, 1, cent.data());
  CHECK(mse < 0.1);
  // every true center has a centroid within 0.2
  for (int64_t c = 0; c < C; ++c) {
    double best = 1e30;
    for (int64_t l = 0; l < C; ++l) best = std::fmin(best, sqdist(centers.data() + c * D, cent.data() + l * D, D));
    CHECK(best < 0.04);
  }
  // more centroids than samples still works (repeats are jittered)
  std::vector<float> many(size_t(2 * N * D));
  CHECK(kmeans_cpu(data.data(), N, D, 2 * N, 2, 1, many.data()) >= 0.0);
}

TEST(rejects_bad_arguments) {
  const float cb[4] = {0, 0, 1, 1};
  float a[2] = {NAN, 0};
  int32_t idx[1];
  CHECK_THROWS(vq_nearest_cpu(a, cb, 1, 1, 2, 2, idx, nullptr));
  float ok[2] = {0, 0};
  CHECK_THROWS(vq_nearest_cpu(ok, cb, 1, 0, 2, 2, idx, nullptr));
  CHECK_THROWS(vq_nearest_cpu(ok, cb, 1, 1, 2, 0, idx, nullptr));
  CHECK_THROWS(kmeans_cpu(ok, 0, 2, 2, 1, 1, a));
}
