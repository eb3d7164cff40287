// Full-ranking evaluation: the rank of each user's target item among all items.
//
// rank[b] = number of items j, not excluded for user b, with score(b, j) >= score(b, target[b]).
// The target counts itself, so ranks are 1-based, and ties count against the target (an item
// scoring exactly the target's score ranks ahead of it). score is the dot product or the cosine
// similarity (a zero vector has cosine 0 with everything). Excluding the target itself is an
// error: it would hide a leak between training and test data.
#pragma once
#include <cstdint>

namespace tokenrec {

enum class Similarity { Dot = 0, Cosine = 1 };

struct RankProblem {
  const float* users = nullptr;      // (B, D) row-major
  const float* items = nullptr;      // (N, D) row-major
  int64_t B = 0, N = 0, D = 0;
  const int32_t* targets = nullptr;  // (B) item index in [0, N)
  const int32_t* excl_ptr = nullptr; // (B + 1) CSR offsets into excl_idx, or null for none
  const int32_t* excl_idx = nullptr; // (excl_ptr[B]) item indices in [0, N)
  Similarity sim = Similarity::Dot;
};

// Throws tokenrec::Error naming the first bad argument (sizes, ranges, non-finite values,
// a malformed CSR, a target excluded for its own user).
void validate_rank_problem(const RankProblem& p);

// ranks: (B) output. Multi-threaded over users.
void rank_targets_cpu(const RankProblem& p, int32_t* ranks);

// Same contract on the GPU; throws ErrorCode::Cuda when CUDA is not compiled in or no device.
void rank_targets_cuda(const RankProblem& p, int32_t* ranks);

}  // namespace tokenrec
