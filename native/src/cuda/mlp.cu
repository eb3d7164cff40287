// CUDA masked MLP forward and backward; the contract is mlp_forward_cpu / mlp_backward_cpu's
// (include/tokenrec/mlp.h). Dense layers use a shared-memory tiled SGEMM (no cuBLAS: it is not
// available on every build machine). The mask is drawn by the same counter-based hash as on the
// CPU, inside the kernel that builds the first layer's input, so both backends mask the same elements.
#include <algorithm>
#include <cmath>
#include <vector>

#include "tokenrec/cuda_util.h"
#include "tokenrec/error.h"
#include "tokenrec/mlp.h"

namespace tokenrec {

namespace {

constexpr int TM = 64, TN = 64, TK = 16;

// C (M, N) = alpha op(A) op(B) + beta C, row-major; op(A) (M, Kd), op(B) (Kd, N). 256 threads,
// each computing a 4 x 4 tile of a 64 x 64 block. beta == 0 overwrites C (NaN-safe).
template <bool TA, bool TB>
__global__ void sgemm_kernel(int M, int N, int Kd, float alpha, const float* __restrict__ A, int lda,
                             const float* __restrict__ B, int ldb, float beta, float* __restrict__ C, int ldc) {
  __shared__ float As[TK][TM + 1];
  __shared__ float Bs[TK][TN + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int i0 = blockIdx.y * TM, j0 = blockIdx.x * TN;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < Kd; k0 += TK) {
    for (int t = threadIdx.x; t < TK * TM; t += blockDim.x) {
      // consecutive threads read consecutive addresses: along k when A is (M, K), along i when (K, M)
      int kk = TA ? t / TM : t % TK, ii = TA ? t % TM : t / TK;
      int i = i0 + ii, k = k0 + kk;
      As[kk][ii] = (i < M && k < Kd) ? (TA ? A[size_t(k) * lda + i] : A[size_t(i) * lda + k]) : 0.f;
    }
    for (int t = threadIdx.x; t < TK * TN; t += blockDim.x) {
      int kk = TB ? t % TK : t / TN, jj = TB ? t / TK : t % TN;
      int j = j0 + jj, k = k0 + kk;
      Bs[kk][jj] = (j < N && k < Kd) ? (TB ? B[size_t(j) * ldb + k] : B[size_t(k) * ldb + j]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < TK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) a[r] = As[kk][ty * 4 + r];
#pragma unroll
      for (int c = 0; c < 4; ++c) b[c] = Bs[kk][tx * 4 + c];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
    }
    __syncthreads();
  }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) {
      int i = i0 + ty * 4 + r, j = j0 + tx * 4 + c;
      if (i < M && j < N) {
        float* dst = C + size_t(i) * ldc + j;
        *dst = beta == 0.f ? alpha * acc[r][c] : alpha * acc[r][c] + beta * *dst;
      }
    }
}

void sgemm_device(bool ta, bool tb, int64_t M, int64_t N, int64_t Kd, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  dim3 grid(unsigned((N + TN - 1) / TN), unsigned((M + TM - 1) / TM));
  int m = int(M), n = int(N), k = int(Kd);
  if (!ta && !tb) sgemm_kernel<false, false><<<grid, 256>>>(m, n, k, alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
  else if (!ta && tb) sgemm_kernel<false, true><<<grid, 256>>>(m, n, k, alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
  else if (ta && !tb) sgemm_kernel<true, false><<<grid, 256>>>(m, n, k, alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
  else sgemm_kernel<true, true><<<grid, 256>>>(m, n, k, alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
  cuda_check(cudaGetLastError(), "mlp: sgemm launch");
}

// X0 (B, d) = x masked; row_ids (B) or null.
__global__ void mask_input_kernel(const float* __restrict__ x, float* __restrict__ x0, int64_t B, int64_t d,
                                  float rate, uint64_t seed, uint64_t epoch, const int32_t* __restrict__ row_ids) {
  MaskSpec m;
  m.rate = rate;
  m.seed = seed;
  m.epoch = epoch;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < B * d; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t b = i / d, j = i % d;
    uint64_t row = row_ids ? uint64_t(uint32_t(row_ids[b])) : uint64_t(b);
    x0[i] = mask_keep(m, row, uint64_t(j)) ? x[i] : 0.f;
  }
}

// Y (B, out) = bias broadcast.
__global__ void bias_rows_kernel(float* __restrict__ Y, const float* __restrict__ bias, int64_t B, int64_t out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < B * out; i += int64_t(gridDim.x) * blockDim.x)
    Y[i] = bias[i % out];
}

__global__ void relu_kernel(float* __restrict__ Y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    Y[i] = Y[i] > 0.f ? Y[i] : 0.f;
}

// g (n) zeroed where X (n) <= 0 (ReLU').
__global__ void relu_grad_kernel(float* __restrict__ g, const float* __restrict__ X, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    if (!(X[i] > 0.f)) g[i] = 0.f;
}

// db (out) = column sums of g (B, out), ascending b (deterministic), added when accumulate.
__global__ void colsum_kernel(const float* __restrict__ g, float* __restrict__ db, int64_t B, int64_t out, bool accumulate) {
  int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= out) return;
  float acc = 0.f;
  for (int64_t b = 0; b < B; ++b) acc += g[b * out + o];
  db[o] = accumulate ? db[o] + acc : acc;
}

int blocks_for(int64_t n) { return int(std::min<int64_t>((n + 255) / 256, 65535)); }

}  // namespace

void mlp_forward_cuda(const MlpShape& s, const float* params, const float* x, int64_t B, const MaskSpec* mask,
                      float* acts) {
  s.validate("mlp_forward");
  require(B >= 0, "mlp_forward: batch size must be >= 0, got ", B);
  if (B == 0) return;
  require(params && x && acts, "mlp_forward: params, x and acts are required");
  require(!mask || (mask->rate >= 0.f && mask->rate < 1.f), "mlp_forward: mask rate must be in [0, 1), got ",
          mask ? mask->rate : 0.f);
  for (int64_t i = 0; i < B * s.in(); ++i)
    if (!std::isfinite(x[i])) fail(ErrorCode::NotFinite, "mlp_forward: x[", i, "] is not finite (", x[i], ")");
  DeviceBuffer<float> dp(params, size_t(s.num_params())), dx(x, size_t(B * s.in())), da(size_t(s.acts_size(B)));
  DeviceBuffer<int32_t> dids;
  const bool masked = mask && mask->rate > 0.f;
  if (masked && mask->row_ids) dids = DeviceBuffer<int32_t>(mask->row_ids, size_t(B));
  mask_input_kernel<<<blocks_for(B * s.in()), 256>>>(dx.get(), da.get(), B, s.in(), masked ? mask->rate : 0.f,
                                                      masked ? mask->seed : 0, masked ? mask->epoch : 0,
                                                      masked && mask->row_ids ? dids.get() : nullptr);
  cuda_check(cudaGetLastError(), "mlp_forward: mask launch");
  for (int64_t l = 0; l < s.layers(); ++l) {
    int64_t in = s.dims[size_t(l)], out = s.dims[size_t(l + 1)];
    const float* X = da.get() + s.acts_offset(l, B);
    float* Y = da.get() + s.acts_offset(l + 1, B);
    bias_rows_kernel<<<blocks_for(B * out), 256>>>(Y, dp.get() + s.bias_offset(l), B, out);
    sgemm_device(false, true, B, out, in, 1.f, X, in, dp.get() + s.weight_offset(l), in, 1.f, Y, out);
    if (l + 1 < s.layers()) relu_kernel<<<blocks_for(B * out), 256>>>(Y, B * out);
  }
  cuda_check(cudaDeviceSynchronize(), "mlp_forward: kernels");
  da.download(acts, size_t(s.acts_size(B)));
}

void mlp_backward_cuda(const MlpShape& s, const float* params, const float* acts, int64_t B, const float* dy,
                       float* grads, float* dx, bool accumulate) {
  s.validate("mlp_backward");
  require(B >= 0, "mlp_backward: batch size must be >= 0, got ", B);
  require(params && acts && grads && (B == 0 || dy), "mlp_backward: params, acts, dy and grads are required");
  if (B == 0) {
    if (!accumulate) std::fill(grads, grads + s.num_params(), 0.f);
    return;
  }
  DeviceBuffer<float> dp(params, size_t(s.num_params())), da(acts, size_t(s.acts_size(B)));
  DeviceBuffer<float> dg(size_t(s.num_params()));
  if (accumulate) dg.upload(grads, size_t(s.num_params()));
  int64_t widest = 0;
  for (int64_t w : s.dims) widest = std::max(widest, w);
  DeviceBuffer<float> g(size_t(B * widest)), gprev(size_t(B * widest));
  g.upload(dy, size_t(B * s.out()));
  float* cur = g.get();
  float* prev = gprev.get();
  for (int64_t l = s.layers() - 1; l >= 0; --l) {
    int64_t in = s.dims[size_t(l)], out = s.dims[size_t(l + 1)];
    const float* X = da.get() + s.acts_offset(l, B);
    sgemm_device(true, false, out, in, B, 1.f, cur, out, X, in, accumulate ? 1.f : 0.f, dg.get() + s.weight_offset(l), in);
    colsum_kernel<<<int((out + 255) / 256), 256>>>(cur, dg.get() + s.bias_offset(l), B, out, accumulate);
    if (l == 0 && !dx) break;
    sgemm_device(false, false, B, in, out, 1.f, cur, out, dp.get() + s.weight_offset(l), in, 0.f, prev, in);
    if (l > 0) relu_grad_kernel<<<blocks_for(B * in), 256>>>(prev, X, B * in);
    std::swap(cur, prev);
  }
  cuda_check(cudaDeviceSynchronize(), "mlp_backward: kernels");
  dg.download(grads, size_t(s.num_params()));
  if (dx) cuda_check(cudaMemcpy(dx, cur, size_t(B * s.in()) * sizeof(float), cudaMemcpyDeviceToHost), "mlp_backward: dx");
}

}  // namespace tokenrec
