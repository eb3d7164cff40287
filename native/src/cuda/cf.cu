// CUDA mirrors of the collaborative-filtering kernels (contracts in include/tokenrec/cf.h).
//
// Same signatures as the CPU kernels, host pointers in and out: each call uploads its inputs,
// runs on the device and downloads the result. The propagation keeps its L layers on the device
// (one upload of the graph per call). The BPR scatter uses atomicAdd, so on the GPU the order of
// additions to a repeated row (and the last bits of the result) may vary from run to run; the CPU
// path is the deterministic reference the tests compare against.
#include <algorithm>
#include <cmath>
#include <vector>

#include "tokenrec/cf.h"
#include "tokenrec/cuda_util.h"
#include "tokenrec/error.h"

namespace tokenrec {

namespace {

constexpr int THREADS = 256;

// One warp per output row: lanes stride over the D columns; y (rows, D) = A x.
__global__ void cf_spmm_kernel(int rows, int D, const int* __restrict__ ptr, const int* __restrict__ idx,
                               const float* __restrict__ val, const float* __restrict__ x, float* __restrict__ y) {
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (warp >= rows) return;
  const int s = ptr[warp], e = ptr[warp + 1];
  for (int d0 = 0; d0 < D; d0 += 32) {
    const int d = d0 + lane;
    if (d >= D) break;
    float acc = 0.f;
    for (int k = s; k < e; ++k) acc = fmaf(val[k], x[size_t(idx[k]) * D + d], acc);
    y[size_t(warp) * D + d] = acc;
  }
}

// out += y, scaled by `scale` when it is not 1 (the last layer divides the sum by L+1).
__global__ void cf_accumulate_kernel(size_t n, const float* __restrict__ y, float* __restrict__ out, float scale) {
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = (out[i] + y[i]) * scale;
}

// One warp per triple: dot products by warp reduction, then atomic scatter of the gradient.
// F, G (N, D); users/pos/neg (B); loss (B) per-sample softplus.
__global__ void bpr_loss_grad_kernel(const float* __restrict__ F, int U, int D, int B, const int* __restrict__ users,
                                     const int* __restrict__ pos, const int* __restrict__ neg, float* __restrict__ G,
                                     double* __restrict__ loss) {
  const int k = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (k >= B) return;
  const float* fu = F + size_t(users[k]) * D;
  const float* fp = F + size_t(U + pos[k]) * D;
  const float* fn = F + size_t(U + neg[k]) * D;
  float sp = 0.f, sn = 0.f;
  for (int d = lane; d < D; d += 32) {
    sp = fmaf(fu[d], fp[d], sp);
    sn = fmaf(fu[d], fn[d], sn);
  }
  for (int off = 16; off > 0; off >>= 1) {
    sp += __shfl_xor_sync(0xffffffffu, sp, off);
    sn += __shfl_xor_sync(0xffffffffu, sn, off);
  }
  const double x = double(sn) - double(sp);
  const double sig = x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
  if (lane == 0) loss[k] = x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
  const float c = float(sig / double(B));
  float* gu = G + size_t(users[k]) * D;
  float* gp = G + size_t(U + pos[k]) * D;
  float* gn = G + size_t(U + neg[k]) * D;
  for (int d = lane; d < D; d += 32) {
    atomicAdd(gu + d, c * (fn[d] - fp[d]));
    atomicAdd(gp + d, -c * fu[d]);
    atomicAdd(gn + d, c * fu[d]);
  }
}

__global__ void adam_kernel(size_t n, float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                            float* __restrict__ v, float b1, float b2, float step, float inv_sqrt_bc2, float eps) {
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float gi = g[i];
  const float mi = b1 * m[i] + (1.f - b1) * gi;
  const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  p[i] -= step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
}

unsigned blocks_for(size_t n, int threads) { return unsigned((n + size_t(threads) - 1) / size_t(threads)); }

struct DeviceCsr {
  DeviceBuffer<int32_t> ptr, idx;
  DeviceBuffer<float> val;
  explicit DeviceCsr(const CsrView& A)
      : ptr(A.ptr, size_t(A.rows + 1)),
        idx(A.idx, std::max<size_t>(size_t(A.ptr[A.rows]), 1)),
        val(A.val, std::max<size_t>(size_t(A.ptr[A.rows]), 1)) {}
};

void launch_spmm(const CsrView& A, const DeviceCsr& dA, const float* dx, int64_t D, float* dy) {
  const size_t threads = size_t(A.rows) * 32;
  cf_spmm_kernel<<<blocks_for(threads, THREADS), THREADS>>>(int(A.rows), int(D), dA.ptr.get(), dA.idx.get(),
                                                             dA.val.get(), dx, dy);
  cuda_check(cudaGetLastError(), "cf: spmm launch");
}

}  // namespace

void cf_spmm_cuda(const CsrView& A, const float* x, int64_t D, float* y) {
  require(D > 0, "cf: dimension must be > 0, got ", D);
  if (A.rows == 0) return;
  DeviceCsr dA(A);
  DeviceBuffer<float> dx(x, size_t(A.cols * D)), dy(size_t(A.rows * D));
  launch_spmm(A, dA, dx.get(), D, dy.get());
  cuda_check(cudaDeviceSynchronize(), "cf: spmm");
  dy.download(y, size_t(A.rows * D));
}

void cf_propagate_cuda(const CsrView& A, const float* x, int64_t D, int L, float* out) {
  require(L >= 0, "cf: layers must be >= 0, got ", L);
  require(A.rows == A.cols, "cf: the adjacency must be square");
  require(D > 0, "cf: dimension must be > 0, got ", D);
  const size_t n = size_t(A.rows * D);
  if (L == 0 || n == 0) {
    std::copy(x, x + n, out);
    return;
  }
  DeviceCsr dA(A);
  DeviceBuffer<float> a(x, n), b(n), acc(x, n);
  float* cur = a.get();
  float* nxt = b.get();
  for (int l = 1; l <= L; ++l) {
    launch_spmm(A, dA, cur, D, nxt);
    cf_accumulate_kernel<<<blocks_for(n, THREADS), THREADS>>>(n, nxt, acc.get(), l == L ? 1.f / float(L + 1) : 1.f);
    cuda_check(cudaGetLastError(), "cf: accumulate launch");
    std::swap(cur, nxt);
  }
  cuda_check(cudaDeviceSynchronize(), "cf: propagate");
  acc.download(out, n);
}

double bpr_loss_grad_cuda(const float* F, int64_t U, int64_t I, int64_t D, const BprBatch& b, float* G) {
  require(b.B > 0, "cf: batch size must be > 0, got ", b.B);
  for (int64_t k = 0; k < b.B; ++k)
    if (b.users[k] < 0 || b.users[k] >= U || b.pos[k] < 0 || b.pos[k] >= I || b.neg[k] < 0 || b.neg[k] >= I)
      fail(ErrorCode::OutOfRange, "cf: batch triple ", k, " (", b.users[k], ", ", b.pos[k], ", ", b.neg[k],
           ") is out of range");
  const size_t n = size_t((U + I) * D);
  DeviceBuffer<float> dF(F, n), dG(G, n);
  DeviceBuffer<int32_t> du(b.users, size_t(b.B)), dp(b.pos, size_t(b.B)), dn(b.neg, size_t(b.B));
  DeviceBuffer<double> dl(size_t(b.B));
  bpr_loss_grad_kernel<<<blocks_for(size_t(b.B) * 32, THREADS), THREADS>>>(dF.get(), int(U), int(D), int(b.B), du.get(),
                                                                            dp.get(), dn.get(), dG.get(), dl.get());
  cuda_check(cudaGetLastError(), "cf: bpr launch");
  cuda_check(cudaDeviceSynchronize(), "cf: bpr");
  dG.download(G, n);
  std::vector<double> loss(size_t(b.B));
  dl.download(loss.data(), loss.size());
  double total = 0;
  for (double x : loss) total += x;
  return total / double(b.B);
}

void adam_step_cuda(float* p, const float* g, float* m, float* v, int64_t n, const AdamConfig& c, int64_t t) {
  require(t >= 1, "adam: step must be >= 1, got ", t);
  if (n == 0) return;
  const float bc1 = float(1.0 - std::pow(double(c.beta1), double(t)));
  const float bc2 = float(1.0 - std::pow(double(c.beta2), double(t)));
  DeviceBuffer<float> dp(p, size_t(n)), dg(g, size_t(n)), dm(m, size_t(n)), dv(v, size_t(n));
  adam_kernel<<<blocks_for(size_t(n), THREADS), THREADS>>>(size_t(n), dp.get(), dg.get(), dm.get(), dv.get(), c.beta1,
                                                           c.beta2, c.lr / bc1, 1.f / std::sqrt(bc2), c.eps);
  cuda_check(cudaGetLastError(), "adam: launch");
  cuda_check(cudaDeviceSynchronize(), "adam");
  dp.download(p, size_t(n));
  dm.download(m, size_t(n));
  dv.download(v, size_t(n));
}

}  // namespace tokenrec
