// CUDA masked MLP forward/backward equal the CPU ones (same mask, same gradients up to fp32
// rounding). Skipped without a GPU.
#include <cmath>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/mlp.h"

using namespace tokenrec;

static double max_rel(const std::vector<float>& x, const std::vector<float>& y) {
  double w = 0, scale = 1e-6;
  for (float v : x) scale = std::fmax(scale, std::fabs(v));
  for (size_t i = 0; i < x.size(); ++i) w = std::fmax(w, std::fabs(double(x[i]) - y[i]) / scale);
  return w;
}

TEST(mlp_cuda_matches_cpu) {
  check::skip_without_cuda();
  TestRng rng(3);
  for (int64_t B : {1, 37, 512, 1000}) {
    MlpShape s{{64, 128, 256, 512}};
    std::vector<float> p(size_t(s.num_params()));
    mlp_init(s, 7, p.data());
    auto x = rng.vec(size_t(B * 64));
    std::vector<int32_t> ids(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) ids[size_t(b)] = int32_t(b * 7 + 3);
    MaskSpec m{0.2f, 9, 3, ids.data()};
    std::vector<float> ac(size_t(s.acts_size(B))), ag(ac.size());
    mlp_forward_cpu(s, p.data(), x.data(), B, &m, ac.data());
    mlp_forward_cuda(s, p.data(), x.data(), B, &m, ag.data());
    // X_0 (the masked input) must be identical: same mask draws
    bool same_mask = true;
    for (int64_t i = 0; i < B * 64; ++i) same_mask &= ac[size_t(i)] == ag[size_t(i)];
    CHECK(same_mask);
    CHECK(max_rel(ac, ag) < 1e-4);
    auto dy = rng.vec(size_t(B * 512));
    std::vector<float> gc(p.size()), gg(p.size()), dxc(size_t(B * 64)), dxg(size_t(B * 64));
    mlp_backward_cpu(s, p.data(), ac.data(), B, dy.data(), gc.data(), dxc.data());
    mlp_backward_cuda(s, p.data(), ac.data(), B, dy.data(), gg.data(), dxg.data());
    CHECK(max_rel(gc, gg) < 1e-4);
    CHECK(max_rel(dxc, dxg) < 1e-4);
  }
}
