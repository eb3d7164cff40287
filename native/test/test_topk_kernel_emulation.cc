// The CUDA top-K kernels (src/cuda/topk_kernels.cuh) run on CPU threads: one std::thread per
// CUDA thread of a block, a barrier for __syncthreads, blocks one after another. This checks the
// kernels' logic (candidate buffers, bitonic merges, splits, key encoding, padding) against the
// CPU top-K on any machine; timing, occupancy and memory coalescing are of course not tested
// here (test_topk_cuda does that on a GPU). Ids and scores must be identical: the emulated
// kernel computes the same fma chain as the CPU kernel.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/topk.h"

// ---- the CUDA features the kernels use, on CPU threads -----------------------------------------
struct EmuDim3 {
  unsigned x = 0, y = 0, z = 0;
};
thread_local EmuDim3 threadIdx, blockIdx;
EmuDim3 blockDim;

namespace emu {
class Barrier {
 public:
  void reset(int n) {
    n_ = n;
    waiting_ = 0;
    gen_ = 0;
  }
  void wait() {
    std::unique_lock<std::mutex> g(mu_);
    unsigned gen = gen_;
    if (++waiting_ == n_) {
      waiting_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(g, [&] { return gen_ != gen; });
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_ = 0, waiting_ = 0;
  unsigned gen_ = 0;
};
Barrier barrier;
std::vector<unsigned long long> smem;  // 8-byte aligned dynamic shared memory of the running block
inline unsigned char* dynamic_smem() { return reinterpret_cast<unsigned char*>(smem.data()); }

// Runs body() as a grid of blocks of `threads` threads, one block at a time; the same threads
// serve every block (barriers between blocks), to keep thread creation out of the test's time.
template <class F>
void launch(unsigned gx, unsigned gy, int threads, size_t shmem, F body) {
  blockDim = EmuDim3{unsigned(threads), 1, 1};
  barrier.reset(threads);
  smem.assign(shmem / 8 + 2, 0xCDCDCDCDCDCDCDCDull);  // garbage: the kernel must initialise
  std::vector<std::thread> ts;
  ts.reserve(size_t(threads));
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([=] {
      threadIdx = EmuDim3{unsigned(t), 0, 0};
      for (unsigned by = 0; by < gy; ++by)
        for (unsigned bx = 0; bx < gx; ++bx) {
          blockIdx = EmuDim3{bx, by, 0};
          body();
          barrier.wait();  // the block is done
          if (t == 0) std::fill(smem.begin(), smem.end(), 0xCDCDCDCDCDCDCDCDull);
          barrier.wait();
        }
    });
  for (auto& t : ts) t.join();
}
}  // namespace emu

#define __global__
#define __device__
#define __forceinline__ inline
#define __align__(n) alignas(n)
#define __shared__ static
#define TOPK_DYNAMIC_SMEM(name) unsigned char* name = emu::dynamic_smem()
inline void __syncthreads() { emu::barrier.wait(); }
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned int __float_as_uint(float f) {
  unsigned int u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
using std::fmaf;
using std::isnan;
using std::min;

#include "../src/cuda/topk_kernels.cuh"

using namespace tokenrec;

// search_cuda's sequence (src/cuda/topk.cu) with emulated kernels.
static void emulated_search(const PackedItems& items, bool cosine, const float* queries, int64_t B, int64_t k,
                            const std::vector<int32_t>* ptr, const std::vector<int32_t>* idx, int sms, int max_shmem,
                            std::vector<int32_t>& ids, std::vector<float>& scores, int* qb_used, int64_t* splits_used) {
  using namespace topk_cuda;
  const int64_t N = items.N, D = items.D, kout = topk_columns(k, N);
  std::vector<float> U = cosine ? normalize_rows(queries, B, D) : std::vector<float>(queries, queries + B * D);
  std::vector<int32_t> ex;
  if (ptr) {
    ex = *idx;
    for (int64_t b = 0; b < B; ++b) std::sort(ex.begin() + (*ptr)[size_t(b)], ex.begin() + (*ptr)[size_t(b + 1)]);
  }
  const TopkPlan plan = plan_topk(B, N, D, kout, sms, max_shmem);
  *qb_used = plan.QB;
  *splits_used = plan.splits;
  std::vector<unsigned long long> partial(size_t(B * plan.splits * plan.k), 0xABABABABABABABABull);
  const int* ep = ptr ? ptr->data() : nullptr;
  const int* ei = ptr ? ex.data() : nullptr;
  auto body = [&] {
    switch (plan.QB) {
      case 8: topk_partial_kernel<8>(items.data.data(), U.data(), int(B), int(N), int(D), plan.k, plan.KP, plan.M, int(plan.splits), int(plan.split_len), ep, ei, partial.data()); break;
      case 4: topk_partial_kernel<4>(items.data.data(), U.data(), int(B), int(N), int(D), plan.k, plan.KP, plan.M, int(plan.splits), int(plan.split_len), ep, ei, partial.data()); break;
      case 2: topk_partial_kernel<2>(items.data.data(), U.data(), int(B), int(N), int(D), plan.k, plan.KP, plan.M, int(plan.splits), int(plan.split_len), ep, ei, partial.data()); break;
      default: topk_partial_kernel<1>(items.data.data(), U.data(), int(B), int(N), int(D), plan.k, plan.KP, plan.M, int(plan.splits), int(plan.split_len), ep, ei, partial.data()); break;
    }
  };
  emu::launch(unsigned(plan.qblocks), unsigned(plan.splits), THREADS, plan.shmem, body);
  ids.assign(size_t(B * kout), 7777);
  scores.assign(size_t(B * kout), 7777.f);
  emu::launch(unsigned(B), 1, THREADS, plan.merge_shmem,
              [&] { topk_merge_kernel(partial.data(), int(plan.splits), plan.k, plan.KP, ids.data(), scores.data()); });
}

// max_shmem: the device's opt-in shared memory per block (227 KiB on Hopper); smaller values
// force narrower query groups (QB = 4, 2, 1).
static void compare_case(int64_t N, int64_t D, int64_t B, int64_t k, Similarity sim, bool with_excl, int sms,
                         uint64_t seed, int max_shmem = 227 * 1024) {
  TestRng rng(seed);
  auto I = rng.vec(size_t(N * D)), Q = rng.vec(size_t(B * D));
  for (int64_t j = 0; j + 1 < N && j < N / 4; ++j)  // exact duplicates: real ties
    for (int64_t d = 0; d < D; ++d) I[size_t((N - 1 - j) * D + d)] = I[size_t(j * D + d)];
  std::vector<int32_t> ptr(size_t(B + 1), 0), idx;
  if (with_excl) {
    for (int64_t b = 0; b < B; ++b) {
      for (int e = rng.below(int(std::min<int64_t>(N, 40))); e > 0; --e) idx.push_back(rng.below(int(N)));
      ptr[size_t(b + 1)] = int32_t(idx.size());
    }
  }
  ItemIndex ix(D, sim);
  ix.add(I.data(), N);
  const int64_t kout = topk_columns(k, N);
  std::vector<int32_t> want_ids(size_t(B * kout));
  std::vector<float> want_sc(size_t(B * kout));
  ix.search_cpu(TopkQuery{Q.data(), B, k, with_excl ? ptr.data() : nullptr, with_excl ? idx.data() : nullptr},
                want_ids.data(), want_sc.data());
  PackedItems packed = pack_items(I.data(), N, D, sim == Similarity::Cosine);
  std::vector<int32_t> ids;
  std::vector<float> sc;
  int qb = 0;
  int64_t splits = 0;
  const auto t0 = std::chrono::steady_clock::now();
  emulated_search(packed, sim == Similarity::Cosine, Q.data(), B, k, with_excl ? &ptr : nullptr, with_excl ? &idx : nullptr,
                  sms, max_shmem, ids, sc, &qb, &splits);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t bad = 0;
  for (size_t i = 0; i < ids.size(); ++i) bad += ids[i] != want_ids[i] || sc[i] != want_sc[i];
  std::printf("    N=%ld D=%ld B=%ld k=%ld excl=%d: QB=%d splits=%ld, %ld of %zu differ (%.1f s emulated)\n", long(N),
              long(D), long(B), long(k), int(with_excl), qb, long(splits), long(bad), ids.size(), secs);
  if (bad) {
    int shown = 0;
    for (size_t i = 0; i < ids.size() && shown < 8; ++i)
      if (ids[i] != want_ids[i] || sc[i] != want_sc[i] ? ++shown : 0) std::printf("      [%zu] cpu %d %.9g  emulated %d %.9g\n", i, want_ids[i], double(want_sc[i]), ids[i], double(sc[i]));
  }
  CHECK(bad == 0);
}

TEST(emulated_cuda_kernels_match_cpu) {
  if (!scoring_is_fma_chain()) {
    std::printf("  (the CPU scores are not an fma chain in this build: exact comparison skipped)\n");
    return;
  }
  compare_case(600, 2, 1, 5, Similarity::Dot, false, 2, 9);          // one query, one block
  compare_case(1200, 5, 9, 20, Similarity::Cosine, true, 2, 1);     // QB = 8, two query groups, exclusions
  compare_case(16400, 3, 2, 100, Similarity::Dot, false, 8, 2);      // two item splits: the merge kernel merges
  compare_case(1100, 4, 2, 1000, Similarity::Cosine, true, 2, 3);    // k = 1000: KP = 1024, M = 2048
  compare_case(10, 3, 2, 50, Similarity::Cosine, true, 2, 4);        // k > N, padding after exclusions
  compare_case(700, 7, 5, 30, Similarity::Cosine, true, 2, 5, 40 * 1024);  // QB = 4
  compare_case(500, 7, 2, 30, Similarity::Dot, true, 2, 6, 12 * 1024);     // QB = 1
}
