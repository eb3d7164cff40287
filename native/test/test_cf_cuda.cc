// CUDA mirrors of the CF kernels against the CPU ones. Skipped without a GPU.
#include <cmath>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/cf.h"

using namespace tokenrec;

static CfGraph random_graph(int64_t U, int64_t I, int maxk, uint64_t seed) {
  TestRng r(seed);
  std::vector<int32_t> ptr{0}, idx;
  for (int64_t u = 0; u < U; ++u) {
    for (int k = 1 + r.below(maxk); k > 0; --k) idx.push_back(r.below(int(I)));
    ptr.push_back(int32_t(idx.size()));
  }
  return build_cf_graph(U, I, ptr.data(), idx.data());
}

static double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

TEST(cuda_propagation_matches_cpu) {
  check::skip_without_cuda();
  CfGraph g = random_graph(500, 300, 40, 1);
  TestRng r(2);
  for (int64_t D : {1, 33, 64}) {
    auto x = r.vec(size_t(g.nodes() * D));
    for (int L : {0, 1, 3}) {
      std::vector<float> a(x.size()), b(x.size());
      cf_propagate_cpu(g.view(), x.data(), D, L, a.data());
      cf_propagate_cuda(g.view(), x.data(), D, L, b.data());
      CHECK(max_abs_diff(a, b) < 1e-5);
    }
  }
}

TEST(cuda_bpr_and_adam_match_cpu) {
  check::skip_without_cuda();
  const int64_t U = 200, I = 150, D = 64, B = 1000;
  TestRng r(3);
  auto F = r.vec(size_t((U + I) * D));
  std::vector<int32_t> us(B), ps(B), ns(B);
  for (int64_t k = 0; k < B; ++k) {
    us[size_t(k)] = r.below(int(U));
    ps[size_t(k)] = r.below(int(I));
    ns[size_t(k)] = r.below(int(I));
  }
  BprBatch b{us.data(), ps.data(), ns.data(), B};
  std::vector<float> ga(F.size(), 0.f), gb(F.size(), 0.f);
  double la = bpr_loss_grad_cpu(F.data(), U, I, D, b, ga.data());
  double lb = bpr_loss_grad_cuda(F.data(), U, I, D, b, gb.data());
  CHECK_NEAR(la, lb, 1e-5);
  CHECK(max_abs_diff(ga, gb) < 1e-6);

  auto p1 = r.vec(F.size()), g = r.vec(F.size());
  auto p2 = p1;
  std::vector<float> m1(F.size(), 0.f), v1(F.size(), 0.f), m2 = m1, v2 = v1;
  AdamConfig c;
  for (int t = 1; t <= 3; ++t) {
    adam_step_cpu(p1.data(), g.data(), m1.data(), v1.data(), int64_t(p1.size()), c, t);
    adam_step_cuda(p2.data(), g.data(), m2.data(), v2.data(), int64_t(p2.size()), c, t);
  }
  CHECK(max_abs_diff(p1, p2) < 1e-6);
  CHECK(max_abs_diff(v1, v2) < 1e-7);
}

TEST(cuda_training_tracks_cpu) {
  check::skip_without_cuda();
  std::vector<int32_t> ptr{0}, idx;
  TestRng r(5);
  for (int u = 0; u < 100; ++u) {
    for (int k = 1 + r.below(10); k > 0; --k) idx.push_back(r.below(80));
    ptr.push_back(int32_t(idx.size()));
  }
  CfTrainConfig c;
  c.dim = 16;
  c.layers = 3;
  c.batch_size = 64;
  CfTrainer a(100, 80, ptr.data(), idx.data(), c);
  c.cuda = true;
  CfTrainer b(100, 80, ptr.data(), idx.data(), c);
  a.begin_epoch(0);
  b.begin_epoch(0);
  EpochStats sa = a.train_batches(1 << 30), sb = b.train_batches(1 << 30);
  CHECK_NEAR(sa.bpr_sum, sb.bpr_sum, 1e-3);
  CHECK(max_abs_diff(a.ego(), b.ego()) < 1e-3);
}
