// AdamW against torch.optim.AdamW (values from scripts/fixtures/adamw_reference.py) and argument checks.
#include <vector>

#include "check.h"
#include "tokenrec/optim.h"

using namespace tokenrec;

TEST(adamw_matches_pytorch) {
  std::vector<float> p{0.5f, -1.25f, 2.0f, 0.0f, -0.03125f}, m(5, 0.f), v(5, 0.f);
  const float grads[3][5] = {{0.1f, -0.2f, 0.3f, 0.0f, 1.5f}, {-0.05f, 0.4f, 0.3f, 0.25f, -1.0f}, {0.2f, 0.0f, -0.7f, 0.125f, 0.5f}};
  const float want[3][5] = {
      {0.489500016f, -1.23874998f, 1.98800004f, 0.f, -0.0412187502f},
      {0.486347139f, -1.24117231f, 1.97601211f, -0.00744136749f, -0.0426227376f},
      {0.479279667f, -1.24276114f, 1.97549582f, -0.0154363383f, -0.0453652069f},
  };
  for (int s = 0; s < 3; ++s) {
    adamw_step(p.data(), grads[s], m.data(), v.data(), 5, s + 1, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f);
    for (int i = 0; i < 5; ++i) CHECK_NEAR(p[size_t(i)], want[s][i], 2e-6);
  }
}

TEST(adamw_zero_lr_is_identity_and_moments_update) {
  std::vector<float> p{1.f, 2.f}, g{0.5f, -0.5f}, m(2, 0.f), v(2, 0.f);
  adamw_step(p.data(), g.data(), m.data(), v.data(), 2, 1, 0.f, 0.9f, 0.999f, 1e-8f, 0.5f);
  CHECK(p[0] == 1.f && p[1] == 2.f);
  CHECK_NEAR(m[0], 0.05, 1e-7);
  CHECK_NEAR(v[1], 0.00025, 1e-8);  // (1 - 0.999f) is not exactly 1e-3 in fp32
}

TEST(adamw_rejects_bad_arguments) {
  std::vector<float> p(2), g(2), m(2), v(2);
  CHECK_THROWS(adamw_step(p.data(), g.data(), m.data(), v.data(), 2, 0, 0.1f, 0.9f, 0.999f, 1e-8f, 0.f));
  CHECK_THROWS(adamw_step(p.data(), g.data(), m.data(), v.data(), 2, 1, 0.1f, 1.0f, 0.999f, 1e-8f, 0.f));
  CHECK_THROWS(adamw_step(p.data(), g.data(), m.data(), v.data(), 2, 1, 0.1f, 0.9f, 0.999f, 0.f, 0.f));
  CHECK_THROWS(adamw_step(p.data(), g.data(), m.data(), v.data(), 2, 1, -1.f, 0.9f, 0.999f, 1e-8f, 0.f));
  CHECK_THROWS(adamw_step(nullptr, g.data(), m.data(), v.data(), 2, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.f));
}
