#include "tokenrec/optim.h"

#include <cmath>

#include "tokenrec/error.h"
#include "tokenrec/parallel.h"

namespace tokenrec {

void adamw_step_cpu(float* p, const float* g, float* m, float* v, int64_t n, int64_t step, float lr, float beta1,
                    float beta2, float eps, float wd) {
  require(n >= 0, "adamw_step: n must be >= 0, got ", n);
  require(step >= 1, "adamw_step: step is 1-based, got ", step);
  require(std::isfinite(lr) && lr >= 0.f, "adamw_step: lr must be finite and >= 0, got ", lr);
  require(beta1 >= 0.f && beta1 < 1.f, "adamw_step: beta1 must be in [0, 1), got ", beta1);
  require(beta2 >= 0.f && beta2 < 1.f, "adamw_step: beta2 must be in [0, 1), got ", beta2);
  require(eps > 0.f, "adamw_step: eps must be > 0, got ", eps);
  require(std::isfinite(wd) && wd >= 0.f, "adamw_step: weight_decay must be finite and >= 0, got ", wd);
  if (n == 0) return;
  require(p && g && m && v, "adamw_step: params, grads, m and v are required");
  // Bias corrections in double: beta^step underflows gracefully and stays exact for small steps.
  const float bc1 = float(1.0 - std::pow(double(beta1), double(step)));
  const float bc2 = float(1.0 - std::pow(double(beta2), double(step)));
  const float decay = 1.f - lr * wd;
  parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float gi = g[i];
      float mi = beta1 * m[i] + (1.f - beta1) * gi;
      float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] * decay - lr * (mi / bc1) / (std::sqrt(vi / bc2) + eps);
    }
  });
}

#ifndef TOKENREC_HAVE_CUDA
void adamw_step_cuda(float*, const float*, float*, float*, int64_t, int64_t, float, float, float, float, float) {
  fail(ErrorCode::Cuda, "adamw_step: CUDA kernels were not compiled into this build");
}
void adamw_step_cuda_device(float*, const float*, float*, float*, int64_t, int64_t, float, float, float, float, float) {
  fail(ErrorCode::Cuda, "adamw_step: CUDA kernels were not compiled into this build");
}
#endif

}  // namespace tokenrec
