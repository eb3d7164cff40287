// Device code of the CUDA top-K (src/cuda/topk.cu) and its launch plan. Also compiled as plain
// C++ by native/test/test_topk_kernel_emulation.cc, which runs the kernels on CPU threads (one
// std::thread per CUDA thread, a barrier for __syncthreads) so that their logic is tested on
// machines without a GPU. Keep to the CUDA features that emulation provides: threadIdx,
// blockIdx, blockDim, __syncthreads, static __shared__ arrays, TOPK_DYNAMIC_SMEM, atomicAdd on
// int, __float_as_uint / __uint_as_float, fmaf, isnan, min.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "tokenrec/error.h"

#ifndef TOPK_DYNAMIC_SMEM
#define TOPK_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif

// Internal linkage: the emulation test links against the core library, which holds the CUDA
// build of the same functions.
namespace tokenrec::topk_cuda {
namespace {

constexpr int THREADS = 256;  // also the tile width: one item per thread

__device__ inline unsigned long long make_key(float s, int j) {
  unsigned int b = __float_as_uint(s);
  unsigned int ord = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return ((unsigned long long)ord << 32) | (unsigned long long)(0xFFFFFFFFu - (unsigned int)j);
}

__device__ inline void decode_key(unsigned long long key, int* id, float* score) {
  if (key == 0ull) {  // empty slot
    *id = -1;
    *score = -INFINITY;
    return;
  }
  unsigned int ord = (unsigned int)(key >> 32);
  unsigned int b = (ord & 0x80000000u) ? (ord & 0x7FFFFFFFu) : ~ord;
  *score = __uint_as_float(b);
  *id = int(0xFFFFFFFFu - (unsigned int)(key & 0xFFFFFFFFull));
}

// Sorts `count` arrays of M keys each (M a power of two), stored back to back, descending.
__device__ void bitonic_sort_desc(unsigned long long* keys, int M, int count) {
  const int total = M * count;
  for (int k = 2; k <= M; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int t = threadIdx.x; t < total; t += blockDim.x) {
        int i = t % M, base = t - i, ixj = i ^ j;
        if (ixj > i) {
          unsigned long long a = keys[base + i], c = keys[base + ixj];
          bool desc = (i & k) == 0;
          if (desc ? (a < c) : (a > c)) {
            keys[base + i] = c;
            keys[base + ixj] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

__device__ inline bool is_excluded(const int* __restrict__ excl_ptr, const int* __restrict__ excl_idx, int b, int j) {
  if (!excl_ptr) return false;
  int lo = excl_ptr[b], hi = excl_ptr[b + 1];
  while (lo < hi) {
    int mid = (lo + hi) >> 1;
    int v = excl_idx[mid];
    if (v == j) return true;
    if (v < j) lo = mid + 1; else hi = mid;
  }
  return false;
}

// items: packed (ceil(N/16), D, 16); queries: (B, D); excl_ptr: (B+1) or null; excl_idx: sorted
// per query; partial: (B, splits, k) keys. Shared memory: (D, QB) floats then (QB, M) keys.
// KP = a power of two >= k; M = a power of two >= KP + THREADS: [0, KP) holds the running top-k,
// [KP, M) the candidates appended since the last merge.
template <int QB>
__global__ void topk_partial_kernel(const float* __restrict__ items, const float* __restrict__ queries, int B, int N,
                                    int D, int k, int KP, int M, int splits, int split_len,
                                    const int* __restrict__ excl_ptr, const int* __restrict__ excl_idx,
                                    unsigned long long* __restrict__ partial) {
  TOPK_DYNAMIC_SMEM(smem);
  unsigned long long* keys = reinterpret_cast<unsigned long long*>(smem);  // (QB, M)
  float* uq = reinterpret_cast<float*>(keys + size_t(QB) * M);             // (D, QB)
  __shared__ int cnt[QB];
  __shared__ unsigned long long thr[QB];
  __shared__ int need_merge;

  const int b0 = blockIdx.x * QB, nq = min(QB, B - b0);
  const int split = blockIdx.y;
  const int i0 = split * split_len, i1 = min(N, i0 + split_len);
  for (int t = threadIdx.x; t < D * QB; t += blockDim.x) {
    int d = t / QB, q = t % QB;
    uq[t] = q < nq ? queries[size_t(b0 + q) * D + d] : 0.f;
  }
  for (int t = threadIdx.x; t < QB * M; t += blockDim.x) keys[t] = 0ull;
  if (threadIdx.x < QB) {
    cnt[threadIdx.x] = 0;
    thr[threadIdx.x] = 0ull;
  }
  if (threadIdx.x == 0) need_merge = 0;
  __syncthreads();

  const int cap = M - KP;
  for (int t0 = i0; t0 < i1; t0 += THREADS) {
    const int j = t0 + threadIdx.x;
    if (j < i1) {
      const float* x = items + size_t(j >> 4) * D * 16 + (j & 15);
      float acc[QB];
#pragma unroll
      for (int q = 0; q < QB; ++q) acc[q] = 0.f;
      for (int d = 0; d < D; ++d) {
        const float xv = x[d * 16];
#pragma unroll
        for (int q = 0; q < QB; ++q) acc[q] = fmaf(uq[d * QB + q], xv, acc[q]);
      }
#pragma unroll
      for (int q = 0; q < QB; ++q) {
        if (q >= nq) break;
        const float s = acc[q];
        if (isnan(s)) continue;
        const unsigned long long key = make_key(s, j);
        if (key > thr[q] && !is_excluded(excl_ptr, excl_idx, b0 + q, j)) {
          int pos = atomicAdd(&cnt[q], 1);
          keys[size_t(q) * M + KP + pos] = key;
          if (pos + 1 > cap - THREADS) need_merge = 1;
        }
      }
    }
    __syncthreads();
    const bool merge = need_merge || t0 + THREADS >= i1;
    // Every thread reads the flag before any can set it again in the next tile (a fast warp
    // would otherwise send a slow one into the merge alone, out of step at the barriers).
    __syncthreads();
    if (merge) {
      bitonic_sort_desc(keys, M, QB);
      // Keep the top k of each query; clear the rest for the next candidates.
      for (int t = threadIdx.x; t < QB * M; t += blockDim.x)
        if (t % M >= k) keys[t] = 0ull;
      __syncthreads();
      if (threadIdx.x < QB) {
        cnt[threadIdx.x] = 0;
        thr[threadIdx.x] = keys[size_t(threadIdx.x) * M + k - 1];
      }
      if (threadIdx.x == 0) need_merge = 0;
      __syncthreads();
    }
  }
  for (int t = threadIdx.x; t < nq * k; t += blockDim.x) {
    int q = t / k, i = t % k;
    partial[(size_t(b0 + q) * splits + split) * k + i] = i0 < i1 ? keys[size_t(q) * M + i] : 0ull;
  }
}

// partial: (B, splits, k) keys, each list sorted descending; ids, scores: (B, k).
// Shared memory: 2 * KP keys.
__global__ void topk_merge_kernel(const unsigned long long* __restrict__ partial, int splits, int k, int KP,
                                  int* __restrict__ ids, float* __restrict__ scores) {
  TOPK_DYNAMIC_SMEM(smem);
  unsigned long long* keys = reinterpret_cast<unsigned long long*>(smem);  // (2 * KP)
  const int b = blockIdx.x;
  const unsigned long long* lists = partial + size_t(b) * splits * k;
  for (int t = threadIdx.x; t < 2 * KP; t += blockDim.x) keys[t] = t < k ? lists[t] : 0ull;
  __syncthreads();
  for (int s = 1; s < splits; ++s) {
    for (int t = threadIdx.x; t < KP; t += blockDim.x) keys[KP + t] = t < k ? lists[size_t(s) * k + t] : 0ull;
    __syncthreads();
    bitonic_sort_desc(keys, 2 * KP, 1);
  }
  for (int t = threadIdx.x; t < k; t += blockDim.x)
    decode_key(keys[t], ids + size_t(b) * k + t, scores + size_t(b) * k + t);
}

inline int next_pow2(int v) {
  int p = 1;
  while (p < v) p <<= 1;
  return p;
}

// Shared memory of topk_partial_kernel<QB>.
inline size_t partial_smem(int QB, int64_t D, int M) {
  return size_t(QB) * M * sizeof(unsigned long long) + size_t(D) * QB * sizeof(float);
}

// Launch parameters of one search: B queries, N items of dim D, kout = min(k, N) columns, on a
// device with `sms` multiprocessors and `max_shmem` bytes of opt-in shared memory per block.
struct TopkPlan {
  int k = 0, KP = 0, M = 0, QB = 0;
  size_t shmem = 0, merge_shmem = 0;
  int64_t qblocks = 0, splits = 0, split_len = 0;
};

inline TopkPlan plan_topk(int64_t B, int64_t N, int64_t D, int64_t kout, int sms, int max_shmem) {
  TopkPlan p;
  p.k = int(kout);
  p.KP = next_pow2(p.k);
  p.M = next_pow2(p.KP + 2 * THREADS);
  // Widest query group whose shared memory fits (1 KiB is left for the static variables).
  const size_t limit = size_t(max_shmem) - 1024;
  p.QB = 8;
  while (p.QB > 1 && partial_smem(p.QB, D, p.M) > limit) p.QB /= 2;
  p.shmem = partial_smem(p.QB, D, p.M);
  if (p.shmem > limit)
    fail(ErrorCode::InvalidArgument, "search: k = ", p.k, " with dim = ", D, " needs ", p.shmem,
         " bytes of shared memory per block; this device allows ", max_shmem, " (use the CPU backend)");
  p.merge_shmem = size_t(2 * p.KP) * sizeof(unsigned long long);
  p.qblocks = (B + p.QB - 1) / p.QB;
  // Item splits: enough blocks to fill the device (grid.y is at most 65535).
  int64_t splits = (4 * int64_t(sms) + p.qblocks - 1) / p.qblocks;
  splits = std::max<int64_t>(1, std::min<int64_t>(splits, std::min<int64_t>(65535, std::max<int64_t>(1, N / 8192))));
  p.split_len = (N + splits - 1) / splits;
  p.splits = (N + p.split_len - 1) / p.split_len;
  return p;
}

}  // namespace
}  // namespace tokenrec::topk_cuda
