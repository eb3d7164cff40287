// CUDA full-ranking kernel equals the CPU one (ties and exclusions included). Skipped without a GPU.
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/rank.h"

using namespace tokenrec;

TEST(cuda_matches_cpu) {
  check::skip_without_cuda();
  TestRng rng(11);
  for (int64_t D : {1, 33, 64}) {
    for (Similarity sim : {Similarity::Dot, Similarity::Cosine}) {
      int64_t B = 1000, N = 5003;
      auto U = rng.vec(size_t(B * D)), I = rng.vec(size_t(N * D));
      for (int64_t j = 0; j < 50; ++j)
        for (int64_t d = 0; d < D; ++d) I[size_t((N - 1 - j) * D + d)] = I[size_t(j * D + d)];
      std::vector<int32_t> tg(static_cast<size_t>(B)), ptr(size_t(B + 1), 0), idx;
      for (int64_t b = 0; b < B; ++b) {
        tg[size_t(b)] = rng.below(int(N));
        for (int k = rng.below(40); k > 0; --k) {
          int j = rng.below(int(N));
          if (j != tg[size_t(b)]) idx.push_back(j);
        }
        ptr[size_t(b + 1)] = int32_t(idx.size());
      }
      RankProblem p{U.data(), I.data(), B, N, D, tg.data(), ptr.data(), idx.data(), sim};
      std::vector<int32_t> cpu(static_cast<size_t>(B)), gpu(static_cast<size_t>(B));
      rank_targets_cpu(p, cpu.data());
      rank_targets_cuda(p, gpu.data());
      int mism = 0;
      for (int64_t b = 0; b < B; ++b) mism += std::abs(cpu[size_t(b)] - gpu[size_t(b)]) > 0;
      // CPU and GPU accumulate in different orders only for cosine normalisation (both on host),
      // so ranks must agree exactly.
      CHECK(mism == 0);
    }
  }
}
