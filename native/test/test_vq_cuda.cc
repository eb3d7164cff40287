// CUDA VQ kernels equal the CPU ones: nearest codeword (ties allowed), quantised mean, and the
// codebook / commitment / straight-through gradients. Skipped without a GPU.
#include <cmath>
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

TEST(vq_nearest_cuda_matches_cpu) {
  check::skip_without_cuda();
  TestRng rng(13);
  for (int64_t dc : {3, 64, 512}) {
    for (int64_t L : {5, 256, 300}) {
      const int64_t B = 2049, K = 3;
      auto a = rng.vec(size_t(B * K * dc)), cb = rng.vec(size_t(K * L * dc));
      for (int64_t e = 0; e < dc; ++e) cb[size_t((L - 1) * dc + e)] = cb[size_t(e)];  // exact tie in codebook 0
      std::vector<int32_t> ic(size_t(B * K)), ig(ic.size());
      std::vector<float> dc_(ic.size()), dg(ic.size());
      vq_nearest_cpu(a.data(), cb.data(), B, K, L, dc, ic.data(), dc_.data());
      vq_nearest_cuda(a.data(), cb.data(), B, K, L, dc, ig.data(), dg.data());
      int bad = 0;
      for (int64_t o = 0; o < B * K; ++o) {
        int64_t k = o % K;
        const float* av = a.data() + o * dc;
        double d1 = sqdist(av, cb.data() + (k * L + ic[size_t(o)]) * dc, dc);
        double d2 = sqdist(av, cb.data() + (k * L + ig[size_t(o)]) * dc, dc);
        if (std::fabs(d1 - d2) > 1e-4 * (1 + d1)) ++bad;  // different index only on a (near) tie
        if (std::fabs(dc_[size_t(o)] - dg[size_t(o)]) > 1e-3 * (1 + d1)) ++bad;
      }
      CHECK(bad == 0);
    }
  }
}

TEST(vq_quantize_and_backward_cuda_match_cpu) {
  check::skip_without_cuda();
  TestRng rng(14);
  const int64_t B = 777, K = 3, L = 64, dc = 96;
  auto a = rng.vec(size_t(B * K * dc)), cb = rng.vec(size_t(K * L * dc)), dz = rng.vec(size_t(B * dc));
  std::vector<int32_t> idx(size_t(B * K));
  vq_nearest_cpu(a.data(), cb.data(), B, K, L, dc, idx.data(), nullptr);
  std::vector<float> zc(size_t(B * dc)), zg(zc.size());
  vq_quantize_cpu(cb.data(), idx.data(), B, K, L, dc, zc.data());
  vq_quantize_cuda(cb.data(), idx.data(), B, K, L, dc, zg.data());
  double w = 0;
  for (size_t i = 0; i < zc.size(); ++i) w = std::fmax(w, std::fabs(zc[i] - zg[i]));
  CHECK(w < 1e-6);
  std::vector<float> dac(a.size()), dag(a.size()), gcc(cb.size()), gcg(cb.size());
  VqLosses lc = vq_backward_cpu(a.data(), cb.data(), idx.data(), B, K, L, dc, 0.25f, dz.data(), dac.data(), gcc.data());
  VqLosses lg = vq_backward_cuda(a.data(), cb.data(), idx.data(), B, K, L, dc, 0.25f, dz.data(), dag.data(), gcg.data());
  CHECK_NEAR(lc.codebook, lg.codebook, 1e-5 * lc.codebook);
  CHECK_NEAR(lc.commitment, lg.commitment, 1e-5 * lc.commitment);
  w = 0;
  for (size_t i = 0; i < dac.size(); ++i) w = std::fmax(w, std::fabs(dac[i] - dag[i]));
  CHECK(w < 1e-6);
  w = 0;
  for (size_t i = 0; i < gcc.size(); ++i) w = std::fmax(w, std::fabs(gcc[i] - gcg[i]));
  CHECK(w < 1e-6);
}
