// CUDA AdamW equals the CPU one over many steps. Skipped without a GPU.
#include <cmath>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/optim.h"

using namespace tokenrec;

TEST(adamw_cuda_matches_cpu) {
  check::skip_without_cuda();
  TestRng rng(5);
  const int64_t n = 100003;
  auto p0 = rng.vec(size_t(n));
  std::vector<float> pc = p0, pg = p0, mc(size_t(n), 0.f), vc(size_t(n), 0.f), mg = mc, vg = vc;
  for (int64_t s = 1; s <= 5; ++s) {
    auto g = rng.vec(size_t(n));
    adamw_step_cpu(pc.data(), g.data(), mc.data(), vc.data(), n, s, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f);
    adamw_step_cuda(pg.data(), g.data(), mg.data(), vg.data(), n, s, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f);
  }
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) worst = std::fmax(worst, std::fabs(double(pc[size_t(i)]) - pg[size_t(i)]));
  CHECK(worst < 1e-6);
}
