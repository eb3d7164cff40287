// CUDA top-K equals the CPU top-K: the same ids and bit-identical scores when the CPU scores are
// an fma chain (scoring_is_fma_chain()), over ties, exclusions, k from 1 to TOPK_MAX_K, k > N,
// appends after the first upload. Skipped without a GPU.
#include <cmath>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/topk.h"

using namespace tokenrec;

static void compare(ItemIndex& ix, const std::vector<float>& Q, int64_t B, int64_t k, const std::vector<int32_t>* ptr,
                    const std::vector<int32_t>* idx, const char* what) {
  int64_t kout = topk_columns(k, ix.size());
  std::vector<int32_t> ic(size_t(B * kout)), ig(size_t(B * kout));
  std::vector<float> sc(size_t(B * kout)), sg(size_t(B * kout));
  TopkQuery q{Q.data(), B, k, ptr ? ptr->data() : nullptr, idx ? idx->data() : nullptr};
  ix.search_cpu(q, ic.data(), sc.data());
  ix.search_cuda(q, ig.data(), sg.data());
  int64_t id_mism = 0;
  double worst = 0;
  for (size_t i = 0; i < ic.size(); ++i) {
    id_mism += ic[i] != ig[i];
    if (std::isfinite(sc[i]) || std::isfinite(sg[i])) worst = std::max(worst, std::fabs(double(sc[i]) - sg[i]));
  }
  if (scoring_is_fma_chain()) {
    if (id_mism || worst > 0) std::printf("    %s: %ld id mismatches, worst score diff %g\n", what, long(id_mism), worst);
    CHECK(id_mism == 0);
    CHECK(worst == 0);
  } else {
    CHECK(worst < 1e-5);
  }
}

TEST(cuda_matches_cpu) {
  check::skip_without_cuda();
  TestRng rng(13);
  for (int64_t D : {1, 33, 64}) {
    for (Similarity sim : {Similarity::Dot, Similarity::Cosine}) {
      const int64_t N = 50003, B = 67;
      auto I = rng.vec(size_t(N * D)), Q = rng.vec(size_t(B * D));
      for (int64_t j = 0; j < 2000; ++j)
        for (int64_t d = 0; d < D; ++d) I[size_t((N - 1 - j) * D + d)] = I[size_t(j * D + d)];
      std::vector<int32_t> ptr(size_t(B + 1), 0), idx;
      for (int64_t b = 0; b < B; ++b) {
        for (int e = rng.below(200); e > 0; --e) idx.push_back(rng.below(int(N)));
        ptr[size_t(b + 1)] = int32_t(idx.size());
      }
      ItemIndex ix(D, sim);
      ix.add(I.data(), N - 3);
      for (int64_t k : {int64_t(1), int64_t(20), int64_t(257), int64_t(1000), TOPK_MAX_K})
        compare(ix, Q, B, k, &ptr, &idx, "batch");
      ix.add(I.data() + (N - 3) * D, 3);  // re-upload after an append
      compare(ix, Q, B, 20, nullptr, nullptr, "after add");
      std::vector<float> one(Q.begin(), Q.begin() + D);
      compare(ix, one, 1, 100, nullptr, nullptr, "single query");
    }
  }
  // k > N, and padding when exclusions leave fewer than k items.
  ItemIndex small(4, Similarity::Cosine);
  auto I = rng.vec(40), Q = rng.vec(8);
  small.add(I.data(), 10);
  std::vector<int32_t> ptr = {0, 9, 9}, idx = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  compare(small, Q, 2, 50, &ptr, &idx, "k > N");
}
