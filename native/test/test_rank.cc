// CPU full-ranking kernel against a naive double-precision reference, hand-worked ties and
// exclusion cases, and argument validation.
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/rank.h"

using namespace tokenrec;

static std::vector<int32_t> naive(const RankProblem& p) {
  std::vector<int32_t> out(size_t(p.B));
  for (int64_t b = 0; b < p.B; ++b) {
    auto score = [&](int64_t j) {
      double s = 0, nu = 0, ni = 0;
      for (int64_t d = 0; d < p.D; ++d) {
        s += double(p.users[b * p.D + d]) * p.items[j * p.D + d];
        nu += double(p.users[b * p.D + d]) * p.users[b * p.D + d];
        ni += double(p.items[j * p.D + d]) * p.items[j * p.D + d];
      }
      if (p.sim == Similarity::Cosine) s = (nu > 0 && ni > 0) ? s / std::sqrt(nu * ni) : 0;
      return s;
    };
    std::vector<bool> ex(size_t(p.N), false);
    if (p.excl_ptr)
      for (int32_t k = p.excl_ptr[b]; k < p.excl_ptr[b + 1]; ++k) ex[size_t(p.excl_idx[k])] = true;
    double t = score(p.targets[b]);
    int32_t r = 0;
    for (int64_t j = 0; j < p.N; ++j) r += !ex[size_t(j)] && score(j) >= t;
    out[size_t(b)] = r;
  }
  return out;
}

TEST(hand_worked_ties_and_exclusion) {
  // 1 user u = (1, 0); items: 0:(1,0) 1:(2,0) 2:(1,0) 3:(0,1) 4:(3,0)
  float u[] = {1, 0};
  float it[] = {1, 0, 2, 0, 1, 0, 0, 1, 3, 0};
  int32_t target[] = {0};
  RankProblem p{u, it, 1, 5, 2, target, nullptr, nullptr, Similarity::Dot};
  int32_t r = 0;
  rank_targets_cpu(p, &r);
  CHECK(r == 4);  // items 1, 4 beat it; item 2 ties (counts against); itself
  int32_t ptr[] = {0, 2}, idx[] = {4, 2};
  p.excl_ptr = ptr;
  p.excl_idx = idx;
  rank_targets_cpu(p, &r);
  CHECK(r == 2);  // item 1 and itself
  // Cosine: items 0,1,2,4 are all parallel to u: all tie at 1.
  p.sim = Similarity::Cosine;
  p.excl_ptr = nullptr;
  rank_targets_cpu(p, &r);
  CHECK(r == 4);
}

TEST(matches_naive_on_random_data) {
  TestRng rng(7);
  for (int64_t D : {1, 7, 16, 64, 65}) {
    for (Similarity sim : {Similarity::Dot, Similarity::Cosine}) {
      int64_t B = 37, N = 203;
      auto U = rng.vec(size_t(B * D)), I = rng.vec(size_t(N * D));
      // Duplicate some item vectors to create exact ties.
      for (int64_t j = 0; j < 20; ++j)
        for (int64_t d = 0; d < D; ++d) I[size_t((N - 1 - j) * D + d)] = I[size_t(j * D + d)];
      std::vector<int32_t> tg(static_cast<size_t>(B)), ptr(size_t(B + 1), 0), idx;
      for (int64_t b = 0; b < B; ++b) {
        tg[size_t(b)] = rng.below(int(N));
        int n = rng.below(10);
        for (int k = 0; k < n; ++k) {
          int j = rng.below(int(N));
          if (j != tg[size_t(b)]) idx.push_back(j);
        }
        ptr[size_t(b + 1)] = int32_t(idx.size());
      }
      RankProblem p{U.data(), I.data(), B, N, D, tg.data(), ptr.data(), idx.data(), sim};
      std::vector<int32_t> got(static_cast<size_t>(B));
      rank_targets_cpu(p, got.data());
      auto want = naive(p);
      int mism = 0;
      for (int64_t b = 0; b < B; ++b)
        if (got[size_t(b)] != want[size_t(b)]) {
          ++mism;
          std::printf("    D=%ld sim=%d user %ld: got %d want %d\n", long(D), int(sim), long(b), got[size_t(b)], want[size_t(b)]);
        }
      CHECK(mism == 0);
    }
  }
}

TEST(identical_vectors_tie_exactly) {
  // 100 copies of the same item: whatever the target, its rank is 100.
  TestRng rng(3);
  int64_t D = 33, N = 100;
  auto u = rng.vec(size_t(D));
  auto one = rng.vec(size_t(D));
  std::vector<float> I;
  for (int64_t j = 0; j < N; ++j) I.insert(I.end(), one.begin(), one.end());
  for (int32_t t : {0, 15, 16, 99}) {
    RankProblem p{u.data(), I.data(), 1, N, D, &t, nullptr, nullptr, Similarity::Dot};
    int32_t r = 0;
    rank_targets_cpu(p, &r);
    CHECK(r == 100);
  }
}

TEST(rejects_bad_arguments) {
  float u[] = {1, 0}, it[] = {1, 0, 0, 1};
  int32_t t_bad[] = {2}, t_ok[] = {0};
  int32_t r;
  CHECK_THROWS(rank_targets_cpu(RankProblem{u, it, 1, 2, 2, t_bad, nullptr, nullptr, Similarity::Dot}, &r));
  int32_t ptr[] = {0, 1}, self[] = {0}, out[] = {5};
  CHECK_THROWS(rank_targets_cpu(RankProblem{u, it, 1, 2, 2, t_ok, ptr, self, Similarity::Dot}, &r));
  CHECK_THROWS(rank_targets_cpu(RankProblem{u, it, 1, 2, 2, t_ok, ptr, out, Similarity::Dot}, &r));
  float nan_u[] = {NAN, 0};
  CHECK_THROWS(rank_targets_cpu(RankProblem{nan_u, it, 1, 2, 2, t_ok, nullptr, nullptr, Similarity::Dot}, &r));
  CHECK_THROWS(rank_targets_cpu(RankProblem{u, it, 1, 0, 2, t_ok, nullptr, nullptr, Similarity::Dot}, &r));
  // B = 0 is fine and writes nothing.
  rank_targets_cpu(RankProblem{u, it, 0, 2, 2, t_ok, nullptr, nullptr, Similarity::Dot}, &r);
}
