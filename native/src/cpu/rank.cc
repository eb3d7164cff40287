#include "tokenrec/rank.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tokenrec/error.h"
#include "tokenrec/parallel.h"
#include "tokenrec/scoring.h"

namespace tokenrec {

static void require_finite(const float* x, int64_t rows, int64_t D, const char* name) {
  for (int64_t i = 0; i < rows * D; ++i)
    if (!std::isfinite(x[i]))
      fail(ErrorCode::NotFinite, name, "[", i / D, "][", i % D, "] is not finite (", x[i], ")");
}

void validate_rank_problem(const RankProblem& p) {
  require(p.B >= 0, "rank: number of users must be >= 0, got ", p.B);
  require(p.N > 0, "rank: number of items must be > 0, got ", p.N);
  require(p.D > 0, "rank: vector dimension must be > 0, got ", p.D);
  require(p.N <= std::numeric_limits<int32_t>::max(), "rank: too many items (", p.N, ")");
  if (p.B == 0) return;
  require(p.users && p.items && p.targets, "rank: users, items and targets are required");
  require_finite(p.users, p.B, p.D, "users");
  require_finite(p.items, p.N, p.D, "items");
  for (int64_t b = 0; b < p.B; ++b)
    if (p.targets[b] < 0 || p.targets[b] >= p.N)
      fail(ErrorCode::OutOfRange, "rank: targets[", b, "] = ", p.targets[b], " is outside [0, ", p.N, ")");
  if (!p.excl_ptr) return;
  require(p.excl_ptr[0] == 0, "rank: excludePtr[0] must be 0, got ", p.excl_ptr[0]);
  for (int64_t b = 0; b < p.B; ++b) {
    int32_t s = p.excl_ptr[b], e = p.excl_ptr[b + 1];
    require(e >= s, "rank: excludePtr must be non-decreasing (excludePtr[", b + 1, "] = ", e,
            " < excludePtr[", b, "] = ", s, ")");
    for (int32_t k = s; k < e; ++k) {
      int32_t j = p.excl_idx[k];
      if (j < 0 || j >= p.N)
        fail(ErrorCode::OutOfRange, "rank: excludeIdx[", k, "] = ", j, " (user ", b, ") is outside [0, ", p.N, ")");
      require(j != p.targets[b], "rank: user ", b, " excludes its own target item ", j,
              " (the target must not be among the excluded items)");
    }
  }
}

void rank_targets_cpu(const RankProblem& p, int32_t* ranks) {
  validate_rank_problem(p);
  if (p.B == 0) return;
  const bool cosine = p.sim == Similarity::Cosine;
  PackedItems items = pack_items(p.items, p.N, p.D, cosine);
  std::vector<float> unorm;
  const float* users = p.users;
  if (cosine) {
    unorm = normalize_rows(p.users, p.B, p.D);
    users = unorm.data();
  }
  // Rows per task: keep the (rows, N) score scratch near 8 MiB per thread.
  int64_t rows = std::clamp<int64_t>((int64_t(2) << 20) / p.N, 4, 64);
  rows -= rows % 4;
  int64_t nblocks = (p.B + rows - 1) / rows;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  parallel_for(0, nblocks, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> S(size_t(rows * p.N));
    for (int64_t blk = lo; blk < hi; ++blk) {
      int64_t b0 = blk * rows, nb = std::min(rows, p.B - b0);
      score_block(users + b0 * p.D, nb, items, 0, p.N, S.data(), p.N);
      for (int64_t r = 0; r < nb; ++r) {
        int64_t b = b0 + r;
        float* s = S.data() + r * p.N;
        const float t = s[p.targets[b]];
        if (p.excl_ptr)
          for (int32_t k = p.excl_ptr[b]; k < p.excl_ptr[b + 1]; ++k) s[p.excl_idx[k]] = neg_inf;
        int64_t count = 0;
        for (int64_t j = 0; j < p.N; ++j) count += s[j] >= t;
        ranks[b] = int32_t(count);
      }
    }
  });
}

#ifndef TOKENREC_HAVE_CUDA
void rank_targets_cuda(const RankProblem&, int32_t*) {
  fail(ErrorCode::Cuda, "rank: CUDA kernels were not compiled into this build");
}
#endif

}  // namespace tokenrec
