// CUDA full-ranking evaluation; the contract is rank_targets_cpu's (include/tokenrec/rank.h).
//
// One thread block ranks USERS_PER_BLOCK users: each item vector is read once from global memory
// (L2-resident for catalogue sizes up to tens of MB) and scored against all the block's users
// held in shared memory. Every score, the target's included, comes from the same device function
// (a sequential fmaf chain over d), so ties are exact, as on the CPU.
#include <algorithm>
#include <vector>

#include "tokenrec/cuda_util.h"
#include "tokenrec/rank.h"
#include "tokenrec/scoring.h"

namespace tokenrec {

namespace {

constexpr int USERS_PER_BLOCK = 8;
constexpr int THREADS = 256;

__device__ __forceinline__ float dev_dot(const float* __restrict__ u, const float* __restrict__ x, int D) {
  float acc = 0.f;
  for (int d = 0; d < D; ++d) acc = fmaf(u[d], x[d], acc);
  return acc;
}

// users: (B, D); items: (N, D); targets: (B); excl_ptr: (B+1) or null; excl_idx: deduplicated per
// user; ranks: (B). Shared memory: USERS_PER_BLOCK * D floats.
__global__ void rank_targets_kernel(const float* __restrict__ users, const float* __restrict__ items,
                                    int B, int N, int D, const int* __restrict__ targets,
                                    const int* __restrict__ excl_ptr, const int* __restrict__ excl_idx,
                                    int* __restrict__ ranks) {
  extern __shared__ float su[];  // (USERS_PER_BLOCK, D)
  __shared__ float tscore[USERS_PER_BLOCK];
  __shared__ int counts[USERS_PER_BLOCK];
  const int b0 = blockIdx.x * USERS_PER_BLOCK;
  const int nb = min(USERS_PER_BLOCK, B - b0);
  for (int i = threadIdx.x; i < nb * D; i += blockDim.x) su[i] = users[size_t(b0) * D + i];
  if (threadIdx.x < USERS_PER_BLOCK) counts[threadIdx.x] = 0;
  __syncthreads();
  if (threadIdx.x < nb)
    tscore[threadIdx.x] = dev_dot(su + threadIdx.x * D, items + size_t(targets[b0 + threadIdx.x]) * D, D);
  __syncthreads();

  int local[USERS_PER_BLOCK];
  for (int r = 0; r < USERS_PER_BLOCK; ++r) local[r] = 0;
  for (int j = threadIdx.x; j < N; j += blockDim.x) {
    const float* x = items + size_t(j) * D;
    for (int r = 0; r < nb; ++r) local[r] += dev_dot(su + r * D, x, D) >= tscore[r];
  }
  // Excluded items that scored >= the target were counted above: take them back out.
  if (excl_ptr) {
    for (int r = 0; r < nb; ++r) {
      int b = b0 + r;
      for (int k = excl_ptr[b] + threadIdx.x; k < excl_ptr[b + 1]; k += blockDim.x)
        local[r] -= dev_dot(su + r * D, items + size_t(excl_idx[k]) * D, D) >= tscore[r];
    }
  }
  for (int r = 0; r < nb; ++r) {
    int v = local[r];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if ((threadIdx.x & 31) == 0) atomicAdd(&counts[r], v);
  }
  __syncthreads();
  if (threadIdx.x < nb) ranks[b0 + threadIdx.x] = counts[threadIdx.x];
}

}  // namespace

void rank_targets_cuda(const RankProblem& p, int32_t* ranks) {
  validate_rank_problem(p);
  if (p.B == 0) return;
  const bool cosine = p.sim == Similarity::Cosine;
  std::vector<float> un, in;
  const float* users = p.users;
  const float* items = p.items;
  if (cosine) {
    un = normalize_rows(p.users, p.B, p.D);
    in = normalize_rows(p.items, p.N, p.D);
    users = un.data();
    items = in.data();
  }
  // The kernel subtracts excluded items once per entry, so each user's list is deduplicated.
  std::vector<int32_t> ptr, idx;
  if (p.excl_ptr) {
    ptr.assign(size_t(p.B + 1), 0);
    idx.reserve(size_t(p.excl_ptr[p.B]));
    for (int64_t b = 0; b < p.B; ++b) {
      size_t start = idx.size();
      idx.insert(idx.end(), p.excl_idx + p.excl_ptr[b], p.excl_idx + p.excl_ptr[b + 1]);
      std::sort(idx.begin() + start, idx.end());
      idx.erase(std::unique(idx.begin() + start, idx.end()), idx.end());
      ptr[b + 1] = int32_t(idx.size());
    }
  }
  DeviceBuffer<float> du(users, size_t(p.B * p.D)), di(items, size_t(p.N * p.D));
  DeviceBuffer<int32_t> dt(p.targets, size_t(p.B)), dr(size_t(p.B));
  DeviceBuffer<int32_t> dp, dx;
  if (p.excl_ptr) {
    dp = DeviceBuffer<int32_t>(ptr.data(), ptr.size());
    dx = DeviceBuffer<int32_t>(idx.data(), std::max<size_t>(idx.size(), 1));
  }
  int blocks = int((p.B + USERS_PER_BLOCK - 1) / USERS_PER_BLOCK);
  size_t shmem = size_t(USERS_PER_BLOCK) * p.D * sizeof(float);
  if (shmem > 48 * 1024)
    cuda_check(cudaFuncSetAttribute(rank_targets_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shmem)),
               "rank: cudaFuncSetAttribute");
  rank_targets_kernel<<<blocks, THREADS, shmem>>>(du.get(), di.get(), int(p.B), int(p.N), int(p.D), dt.get(),
                                                  p.excl_ptr ? dp.get() : nullptr, p.excl_ptr ? dx.get() : nullptr,
                                                  dr.get());
  cuda_check(cudaGetLastError(), "rank: kernel launch");
  cuda_check(cudaDeviceSynchronize(), "rank: kernel");
  dr.download(ranks, size_t(p.B));
}

}  // namespace tokenrec
