// CUDA vector quantisation; the contracts are those of vq_nearest_cpu, vq_quantize_cpu and
// vq_backward_cpu (include/tokenrec/vq.h).
//
// vq_nearest: a GEMM-shaped search. One block takes 32 rows of one codebook; it sweeps the
// codebook in tiles of 64 codewords, with the rows' and codewords' slices staged through shared
// memory (16 dimensions at a time). Each thread scores 2 rows x 4 codewords as ||c||^2 - 2 a.c and
// keeps its best; the 16 partial winners of a row are merged in ascending codeword order, so ties
// go to the lowest index, as on the CPU.
#include <algorithm>
#include <cmath>
#include <vector>

#include "tokenrec/cuda_util.h"
#include "tokenrec/error.h"
#include "tokenrec/vq.h"

namespace tokenrec {

namespace {

constexpr int ROWS = 32, CODES = 64, DK = 16;

void check_dims(const char* fn, int64_t B, int64_t K, int64_t L, int64_t dc) {
  require(B >= 0, fn, ": batch size B must be >= 0, got ", B);
  require(K > 0, fn, ": number of codebooks K must be > 0, got ", K);
  require(L > 0 && L <= (int64_t(1) << 31) - 1, fn, ": codebook size L must be in [1, 2^31), got ", L);
  require(dc > 0, fn, ": codebook dimension dc must be > 0, got ", dc);
}

void check_finite(const char* fn, const float* x, int64_t n, const char* name) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) fail(ErrorCode::NotFinite, fn, ": ", name, "[", i, "] is not finite (", x[i], ")");
}

void check_idx(const char* fn, const int32_t* idx, int64_t n, int64_t L) {
  for (int64_t i = 0; i < n; ++i)
    if (idx[i] < 0 || idx[i] >= L) fail(ErrorCode::OutOfRange, fn, ": idx[", i, "] = ", idx[i], " is outside [0, ", L, ")");
}

int blocks_for(int64_t n) { return int(std::min<int64_t>((n + 255) / 256, 65535)); }

// out (rows) = squared norm of each row of x (rows, dc).
__global__ void row_norms_kernel(const float* __restrict__ x, int64_t rows, int64_t dc, float* __restrict__ out) {
  for (int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; r < rows; r += int64_t(gridDim.x) * blockDim.x) {
    const float* v = x + r * dc;
    float s = 0.f;
    for (int64_t e = 0; e < dc; ++e) s = fmaf(v[e], v[e], s);
    out[r] = s;
  }
}

// a (B, K, dc), cb (K, L, dc), cn (K, L) codeword norms, an (B*K) row norms; idx, dist (B, K).
// grid: (ceil(B / ROWS), K); 256 threads = 16 (ty: 2 rows each) x 16 (tx: 4 codewords each).
__global__ void vq_nearest_kernel(const float* __restrict__ a, const float* __restrict__ cb,
                                  const float* __restrict__ cn, const float* __restrict__ an, int B, int K, int L,
                                  int dc, int32_t* __restrict__ idx, float* __restrict__ dist) {
  __shared__ float As[DK][ROWS + 1];
  __shared__ float Cs[DK][CODES + 1];
  __shared__ float best_v[ROWS][16];
  __shared__ int best_i[ROWS][16];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int k = blockIdx.y;
  const int b0 = blockIdx.x * ROWS;
  float bv[2] = {INFINITY, INFINITY};
  int bi[2] = {0x7fffffff, 0x7fffffff};
  for (int l0 = 0; l0 < L; l0 += CODES) {
    float acc[2][4] = {};
    for (int e0 = 0; e0 < dc; e0 += DK) {
      for (int t = threadIdx.x; t < ROWS * DK; t += blockDim.x) {
        int r = t / DK, e = t % DK;
        int b = b0 + r;
        As[e][r] = (b < B && e0 + e < dc) ? a[(size_t(b) * K + k) * dc + e0 + e] : 0.f;
      }
      for (int t = threadIdx.x; t < CODES * DK; t += blockDim.x) {
        int c = t / DK, e = t % DK;
        int l = l0 + c;
        Cs[e][c] = (l < L && e0 + e < dc) ? cb[(size_t(k) * L + l) * dc + e0 + e] : 0.f;
      }
      __syncthreads();
#pragma unroll
      for (int e = 0; e < DK; ++e) {
        float ar0 = As[e][ty * 2], ar1 = As[e][ty * 2 + 1];
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          float cv = Cs[e][tx + 16 * c];
          acc[0][c] = fmaf(ar0, cv, acc[0][c]);
          acc[1][c] = fmaf(ar1, cv, acc[1][c]);
        }
      }
      __syncthreads();
    }
    // codewords l0 + tx + 16 c, visited in ascending order per thread
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      int l = l0 + tx + 16 * c;
      if (l >= L) continue;
      float cnl = cn[size_t(k) * L + l];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float v = cnl - 2.f * acc[r][c];
        if (v < bv[r]) bv[r] = v, bi[r] = l;
      }
    }
  }
  for (int r = 0; r < 2; ++r) {
    best_v[ty * 2 + r][tx] = bv[r];
    best_i[ty * 2 + r][tx] = bi[r];
  }
  __syncthreads();
  if (threadIdx.x < ROWS) {
    int r = threadIdx.x, b = b0 + r;
    if (b < B) {
      float v = best_v[r][0];
      int i = best_i[r][0];
      for (int t = 1; t < 16; ++t) {
        float w = best_v[r][t];
        int j = best_i[r][t];
        if (w < v || (w == v && j < i)) v = w, i = j;
      }
      idx[size_t(b) * K + k] = i;
      if (dist) dist[size_t(b) * K + k] = fmaxf(0.f, an[size_t(b) * K + k] + v);
    }
  }
}

// z (B, dc) = mean over k of cb[k, idx[b,k]].
__global__ void vq_quantize_kernel(const float* __restrict__ cb, const int32_t* __restrict__ idx, int64_t B, int K,
                                   int64_t L, int64_t dc, float* __restrict__ z) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < B * dc; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t b = i / dc, e = i % dc;
    float s = 0.f;
    for (int k = 0; k < K; ++k) s += cb[(k * L + idx[b * K + k]) * dc + e];
    z[i] = s * (1.f / float(K));
  }
}

// da (B, K, dc) and the squared error per element sq (B, K, dc).
__global__ void vq_da_kernel(const float* __restrict__ a, const float* __restrict__ cb, const int32_t* __restrict__ idx,
                             int64_t B, int K, int64_t L, int64_t dc, float beta_scale, float invK,
                             const float* __restrict__ dz, float* __restrict__ da, float* __restrict__ sq) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < B * K * dc; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t o = i / dc, e = i % dc, b = o / K, k = o % K;
    float diff = a[i] - cb[(k * L + idx[o]) * dc + e];
    sq[i] = diff * diff;
    da[i] = beta_scale * diff + (dz ? dz[b * dc + e] * invK : 0.f);
  }
}

// dcb (K, L, dc): for each (k, l) the samples that chose it, listed in ascending b (CSR: ptr
// (K*L+1), rows), summed in that order: deterministic, no atomics.
__global__ void vq_dcb_kernel(const float* __restrict__ a, const float* __restrict__ cb, const int32_t* __restrict__ ptr,
                              const int32_t* __restrict__ rows, int K, int64_t L, int64_t dc, float scale,
                              float* __restrict__ dcb) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < K * L * dc; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t kl = i / dc, e = i % dc, k = kl / L;
    float c = cb[i], g = 0.f;
    for (int32_t p = ptr[kl]; p < ptr[kl + 1]; ++p) g += scale * (c - a[(size_t(rows[p]) * K + k) * dc + e]);
    dcb[i] = g;
  }
}

}  // namespace

void vq_nearest_cuda(const float* a, const float* cb, int64_t B, int64_t K, int64_t L, int64_t dc, int32_t* idx,
                     float* dist) {
  check_dims("vq_nearest", B, K, L, dc);
  if (B == 0) return;
  require(a && cb && idx, "vq_nearest: a, codebooks and idx are required");
  require(B <= 65535LL * ROWS * 1024 && K <= 65535, "vq_nearest: batch too large for one launch");
  check_finite("vq_nearest", a, B * K * dc, "a");
  check_finite("vq_nearest", cb, K * L * dc, "codebooks");
  DeviceBuffer<float> da(a, size_t(B * K * dc)), dcb(cb, size_t(K * L * dc)), dcn(size_t(K * L)), dan(size_t(B * K));
  DeviceBuffer<int32_t> didx(size_t(B * K));
  DeviceBuffer<float> ddist(size_t(B * K));
  row_norms_kernel<<<blocks_for(K * L), 256>>>(dcb.get(), K * L, dc, dcn.get());
  row_norms_kernel<<<blocks_for(B * K), 256>>>(da.get(), B * K, dc, dan.get());
  dim3 grid(unsigned((B + ROWS - 1) / ROWS), unsigned(K));
  vq_nearest_kernel<<<grid, 256>>>(da.get(), dcb.get(), dcn.get(), dan.get(), int(B), int(K), int(L), int(dc),
                                   didx.get(), ddist.get());
  cuda_check(cudaGetLastError(), "vq_nearest: kernel launch");
  cuda_check(cudaDeviceSynchronize(), "vq_nearest: kernel");
  didx.download(idx, size_t(B * K));
  if (dist) ddist.download(dist, size_t(B * K));
}

void vq_quantize_cuda(const float* cb, const int32_t* idx, int64_t B, int64_t K, int64_t L, int64_t dc, float* z) {
  check_dims("vq_quantize", B, K, L, dc);
  if (B == 0) return;
  require(cb && idx && z, "vq_quantize: codebooks, idx and z are required");
  check_idx("vq_quantize", idx, B * K, L);
  DeviceBuffer<float> dcb(cb, size_t(K * L * dc)), dz(size_t(B * dc));
  DeviceBuffer<int32_t> didx(idx, size_t(B * K));
  vq_quantize_kernel<<<blocks_for(B * dc), 256>>>(dcb.get(), didx.get(), B, int(K), L, dc, dz.get());
  cuda_check(cudaGetLastError(), "vq_quantize: kernel launch");
  cuda_check(cudaDeviceSynchronize(), "vq_quantize: kernel");
  dz.download(z, size_t(B * dc));
}

VqLosses vq_backward_cuda(const float* a, const float* cb, const int32_t* idx, int64_t B, int64_t K, int64_t L,
                          int64_t dc, float beta, const float* dz, float* da, float* dcb) {
  check_dims("vq_backward", B, K, L, dc);
  require(std::isfinite(beta) && beta >= 0.f, "vq_backward: beta must be finite and >= 0, got ", beta);
  require(cb && da && dcb && (B == 0 || (a && idx)), "vq_backward: a, codebooks, idx, da and dcb are required");
  VqLosses out;
  if (B == 0) {
    std::fill(dcb, dcb + K * L * dc, 0.f);
    return out;
  }
  check_idx("vq_backward", idx, B * K, L);
  // CSR of the samples choosing each (k, l), ascending b.
  std::vector<int32_t> ptr(size_t(K * L + 1), 0), rows(size_t(B * K));
  for (int64_t o = 0; o < B * K; ++o) ++ptr[size_t((o % K) * L + idx[o] + 1)];
  for (size_t i = 1; i < ptr.size(); ++i) ptr[i] += ptr[i - 1];
  std::vector<int32_t> fill(ptr.begin(), ptr.end() - 1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) rows[size_t(fill[size_t(k * L + idx[b * K + k])]++)] = int32_t(b);
  const float scale = 2.f / float(B * dc);
  DeviceBuffer<float> d_a(a, size_t(B * K * dc)), d_cb(cb, size_t(K * L * dc)), d_da(size_t(B * K * dc)),
      d_sq(size_t(B * K * dc)), d_dcb(size_t(K * L * dc)), d_dz;
  if (dz) d_dz = DeviceBuffer<float>(dz, size_t(B * dc));
  DeviceBuffer<int32_t> d_idx(idx, size_t(B * K)), d_ptr(ptr.data(), ptr.size()), d_rows(rows.data(), rows.size());
  vq_da_kernel<<<blocks_for(B * K * dc), 256>>>(d_a.get(), d_cb.get(), d_idx.get(), B, int(K), L, dc, beta * scale,
                                                 1.f / float(K), dz ? d_dz.get() : nullptr, d_da.get(), d_sq.get());
  vq_dcb_kernel<<<blocks_for(K * L * dc), 256>>>(d_a.get(), d_cb.get(), d_ptr.get(), d_rows.get(), int(K), L, dc,
                                                  scale, d_dcb.get());
  cuda_check(cudaGetLastError(), "vq_backward: kernel launch");
  cuda_check(cudaDeviceSynchronize(), "vq_backward: kernels");
  d_da.download(da, size_t(B * K * dc));
  d_dcb.download(dcb, size_t(K * L * dc));
  std::vector<float> sq(size_t(B * K * dc));
  d_sq.download(sq.data(), sq.size());
  double total = 0;
  for (float s : sq) total += s;
  out.codebook = total / double(B * dc);
  out.commitment = double(beta) * out.codebook;
  return out;
}

}  // namespace tokenrec
