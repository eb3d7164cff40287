// CUDA AdamW; the contract is adamw_step_cpu's (include/tokenrec/optim.h). Same fp32 arithmetic in
// the same order as the CPU loop (sqrtf is correctly rounded on both), so results agree to rounding.
#include <cmath>

#include "tokenrec/cuda_util.h"
#include "tokenrec/optim.h"

namespace tokenrec {

namespace {

// p, g, m, v: (n) device arrays.
__global__ void adamw_step_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                                  float* __restrict__ v, int64_t n, float lr, float beta1, float beta2, float eps,
                                  float decay, float bc1, float bc2) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = g[i];
    const float mi = beta1 * m[i] + (1.f - beta1) * gi;
    const float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
  }
}

void check_args(int64_t n, int64_t step, float lr, float beta1, float beta2, float eps, float wd) {
  require(n >= 0, "adamw_step: n must be >= 0, got ", n);
  require(step >= 1, "adamw_step: step is 1-based, got ", step);
  require(std::isfinite(lr) && lr >= 0.f, "adamw_step: lr must be finite and >= 0, got ", lr);
  require(beta1 >= 0.f && beta1 < 1.f, "adamw_step: beta1 must be in [0, 1), got ", beta1);
  require(beta2 >= 0.f && beta2 < 1.f, "adamw_step: beta2 must be in [0, 1), got ", beta2);
  require(eps > 0.f, "adamw_step: eps must be > 0, got ", eps);
  require(std::isfinite(wd) && wd >= 0.f, "adamw_step: weight_decay must be finite and >= 0, got ", wd);
}

}  // namespace

void adamw_step_cuda_device(float* p, const float* g, float* m, float* v, int64_t n, int64_t step, float lr,
                            float beta1, float beta2, float eps, float wd) {
  check_args(n, step, lr, beta1, beta2, eps, wd);
  if (n == 0) return;
  const float bc1 = float(1.0 - std::pow(double(beta1), double(step)));
  const float bc2 = float(1.0 - std::pow(double(beta2), double(step)));
  const int threads = 256;
  const int blocks = int(std::min<int64_t>((n + threads - 1) / threads, 65535));
  adamw_step_kernel<<<blocks, threads>>>(p, g, m, v, n, lr, beta1, beta2, eps, 1.f - lr * wd, bc1, bc2);
  cuda_check(cudaGetLastError(), "adamw_step: kernel launch");
}

void adamw_step_cuda(float* p, const float* g, float* m, float* v, int64_t n, int64_t step, float lr, float beta1,
                     float beta2, float eps, float wd) {
  check_args(n, step, lr, beta1, beta2, eps, wd);
  if (n == 0) return;
  require(p && g && m && v, "adamw_step: params, grads, m and v are required");
  DeviceBuffer<float> dp(p, size_t(n)), dg(g, size_t(n)), dm(m, size_t(n)), dv(v, size_t(n));
  adamw_step_cuda_device(dp.get(), dg.get(), dm.get(), dv.get(), n, step, lr, beta1, beta2, eps, wd);
  cuda_check(cudaDeviceSynchronize(), "adamw_step: kernel");
  dp.download(p, size_t(n));
  dm.download(m, size_t(n));
  dv.download(v, size_t(n));
}

}  // namespace tokenrec
