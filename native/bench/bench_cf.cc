// Times the CF kernels on a random bipartite graph shaped like ML1M (6,040 users, 3,416 items,
// ~1M interactions, d = 64): one sparse propagation product, one full LightGCN batch step
// (3 layers forward + backward, fused BPR, dense Adam), and MF's step.
// Usage: bench_cf [users items interactions batch]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../test/rand.h"
#include "tokenrec/cf.h"
#include "tokenrec/parallel.h"

using namespace tokenrec;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int64_t U = argc > 1 ? atol(argv[1]) : 6040, I = argc > 2 ? atol(argv[2]) : 3416;
  int64_t nnz = argc > 3 ? atol(argv[3]) : 1000000, B = argc > 4 ? atol(argv[4]) : 4096;
  TestRng r(1);
  std::vector<int32_t> ptr{0}, idx;
  for (int64_t u = 0; u < U; ++u) {
    int64_t k = nnz / U;
    for (int64_t j = 0; j < k; ++j) idx.push_back(r.below(int(I)));
    ptr.push_back(int32_t(idx.size()));
  }
  CfTrainConfig c;
  c.batch_size = B;
  std::printf("threads %d, users %ld items %ld interactions %ld batch %ld\n", num_threads(), long(U), long(I), long(idx.size()), long(B));
  for (int L : {3, 0}) {
    c.layers = L;
    CfTrainer t(U, I, ptr.data(), idx.data(), c);
    const int64_t N = t.nodes();
    std::vector<float> x(size_t(N * 64)), y(size_t(N * 64));
    if (L) {
      auto t0 = Clock::now();
      for (int k = 0; k < 10; ++k) cf_spmm_cpu(t.graph().view(), t.ego().data(), 64, y.data());
      double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / 10;
      std::printf("spmm (nnz %ld, d 64): %.2f ms  (%.2f ns per non-zero)\n", long(t.graph().ptr.back()), ms, ms * 1e6 / double(t.graph().ptr.back()));
    }
    auto t0 = Clock::now();
    int64_t nb = t.begin_epoch(0);
    double sms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    t0 = Clock::now();
    t.train_batches(10);
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / 10;
    std::printf("%s: sampling an epoch %.1f ms; %.2f ms per step; %ld steps per epoch -> %.1f s per epoch\n",
                L ? "lightgcn L=3" : "mf", sms, ms, long(nb), (sms + ms * double(nb)) / 1000);
  }
}
