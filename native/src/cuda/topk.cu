// CUDA top-K over an ItemIndex (contract in include/tokenrec/topk.h), exact like the CPU path.
//
// Items live on the device in PackedItems layout (blocks of 16 items stored (D, 16)), uploaded
// once and again only after add(). Queries are normalised on the host with the same function as
// on the CPU, and every score is the chain acc = fmaf(u[d], x[d], acc), d ascending, from 0: the
// CPU's chain (scoring_is_fma_chain()), so both devices produce bit-identical scores (the one
// exception: --use_fast_math flushes denormal intermediates to zero, which needs components
// below ~1e-19 in magnitude).
//
// Kernel 1 (topk_partial_kernel): block (query group of QB queries, item split). Each thread
// scores one item of a 256-item tile against the QB queries (held in shared memory); scores
// above a query's current threshold are appended to that query's candidate buffer in shared
// memory. When a buffer could overflow, the block bitonic-sorts every query's
// [running top-k | candidates] array and keeps the top k: a block-level top-k merge fused with
// the scoring. Each (query, split) writes its top k as 64-bit keys (orderable score << 32 |
// ~index), so sorting keys descending is "score descending, smaller index first".
// Kernel 2 (topk_merge_kernel): one block per query merges its splits' lists and decodes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tokenrec/backend.h"
#include "tokenrec/cuda_util.h"
#include "tokenrec/topk.h"

namespace tokenrec {

struct DeviceItems {
  DeviceBuffer<float> data;  // (ceil(N/16), D, 16)
  int64_t N = 0;
  uint64_t version = ~uint64_t(0);
};

void device_items_free(DeviceItems* p) { delete p; }

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
  extern __shared__ __align__(16) unsigned char smem[];
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
    const bool last = t0 + THREADS >= i1;
    if (need_merge || last) {
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
  extern __shared__ __align__(16) unsigned char smem[];
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

int next_pow2(int v) {
  int p = 1;
  while (p < v) p <<= 1;
  return p;
}

// Shared memory of topk_partial_kernel<QB>.
size_t partial_smem(int QB, int64_t D, int M) {
  return size_t(QB) * M * sizeof(unsigned long long) + size_t(D) * QB * sizeof(float);
}

template <int QB>
void launch_partial(const float* items, const float* queries, int B, int N, int D, int k, int KP, int M, int splits,
                    int split_len, const int* ep, const int* ei, unsigned long long* partial, size_t shmem) {
  auto kern = topk_partial_kernel<QB>;
  cuda_check(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shmem)),
             "search: cudaFuncSetAttribute");
  dim3 grid(unsigned((B + QB - 1) / QB), unsigned(splits));
  kern<<<grid, THREADS, shmem>>>(items, queries, B, N, D, k, KP, M, splits, split_len, ep, ei, partial);
  cuda_check(cudaGetLastError(), "search: topk_partial_kernel launch");
}

}  // namespace

void ItemIndex::search_cuda(const TopkQuery& q, int32_t* ids, float* scores) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  validate(q);
  if (!cuda_available()) fail(ErrorCode::Cuda, "search: no usable CUDA device");
  const int64_t N = items_.N, D = D_, B = q.B;
  const int64_t kout = topk_columns(q.k, N);
  if (B == 0 || kout == 0) return;

  std::vector<float> qn;
  const float* U = q.queries;
  if (sim_ == Similarity::Cosine) {
    qn = normalize_rows(q.queries, B, D);
    U = qn.data();
  }
  std::vector<int32_t> ex;
  if (q.excl_ptr) {
    ex.assign(q.excl_idx, q.excl_idx + q.excl_ptr[B]);
    for (int64_t b = 0; b < B; ++b) std::sort(ex.begin() + q.excl_ptr[b], ex.begin() + q.excl_ptr[b + 1]);
  }

  // One search on the device at a time per index; the lock also guards the device copy.
  std::lock_guard<std::mutex> dev_lock(dev_mu_);
  if (!dev_ || dev_->version != version_) {
    dev_.reset();  // free the old copy before allocating the new one
    auto* d = new DeviceItems();
    dev_.reset(d);
    d->data = DeviceBuffer<float>(items_.data.data(), items_.data.size());
    d->N = N;
    d->version = version_;
  }

  int device = 0, sms = 1, max_shmem = 48 * 1024;
  cuda_check(cudaGetDevice(&device), "search: cudaGetDevice");
  cuda_check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "search: device attribute");
  cuda_check(cudaDeviceGetAttribute(&max_shmem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
             "search: device attribute");

  const int k = int(kout);
  const int KP = next_pow2(k);
  const int M = next_pow2(KP + 2 * THREADS);
  // Widest query group whose shared memory fits.
  int QB = 8;
  // (1 KiB is left for the kernel's static shared variables.)
  const size_t limit = size_t(max_shmem) - 1024;
  while (QB > 1 && partial_smem(QB, D, M) > limit) QB /= 2;
  const size_t shmem = partial_smem(QB, D, M);
  if (shmem > limit)
    fail(ErrorCode::InvalidArgument, "search: k = ", k, " with dim = ", D, " needs ", shmem,
         " bytes of shared memory per block; this device allows ", max_shmem, " (use the CPU backend)");
  const int64_t qblocks = (B + QB - 1) / QB;
  // Item splits: enough blocks to fill the device (grid.y is at most 65535).
  int64_t splits = std::clamp<int64_t>((4 * sms + qblocks - 1) / qblocks, 1,
                                       std::min<int64_t>(65535, std::max<int64_t>(1, N / 8192)));
  int64_t split_len = (N + splits - 1) / splits;
  splits = (N + split_len - 1) / split_len;

  DeviceBuffer<float> dq(U, size_t(B * D));
  DeviceBuffer<int32_t> dp, dx;
  if (q.excl_ptr) {
    dp = DeviceBuffer<int32_t>(q.excl_ptr, size_t(B + 1));
    dx = DeviceBuffer<int32_t>(ex.data(), std::max<size_t>(ex.size(), 1));
  }
  DeviceBuffer<unsigned long long> dpart(size_t(B * splits * k));
  DeviceBuffer<int32_t> dids(size_t(B * k));
  DeviceBuffer<float> dsc(size_t(B * k));
  const int* ep = q.excl_ptr ? dp.get() : nullptr;
  const int* ei = q.excl_ptr ? dx.get() : nullptr;
  switch (QB) {
    case 8: launch_partial<8>(dev_->data.get(), dq.get(), int(B), int(N), int(D), k, KP, M, int(splits), int(split_len), ep, ei, dpart.get(), shmem); break;
    case 4: launch_partial<4>(dev_->data.get(), dq.get(), int(B), int(N), int(D), k, KP, M, int(splits), int(split_len), ep, ei, dpart.get(), shmem); break;
    case 2: launch_partial<2>(dev_->data.get(), dq.get(), int(B), int(N), int(D), k, KP, M, int(splits), int(split_len), ep, ei, dpart.get(), shmem); break;
    default: launch_partial<1>(dev_->data.get(), dq.get(), int(B), int(N), int(D), k, KP, M, int(splits), int(split_len), ep, ei, dpart.get(), shmem); break;
  }
  const size_t mshmem = size_t(2 * KP) * 8;
  cuda_check(cudaFuncSetAttribute(topk_merge_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(mshmem)),
             "search: cudaFuncSetAttribute");
  topk_merge_kernel<<<unsigned(B), THREADS, mshmem>>>(dpart.get(), int(splits), k, KP, dids.get(), dsc.get());
  cuda_check(cudaGetLastError(), "search: topk_merge_kernel launch");
  cuda_check(cudaDeviceSynchronize(), "search: kernels");
  dids.download(ids, size_t(B * k));
  dsc.download(scores, size_t(B * k));
}

}  // namespace tokenrec
