// Exact, position-independent similarity scores on the CPU, shared by ranking and top-K.
//
// Every score is one fused multiply-add chain over d = 0..D-1 in order, whatever the item's
// position in the matrix, so two identical item vectors always get bit-identical scores and
// ties are real ties (a blocked GEMM would round edge tiles differently).
#pragma once
#include <cstdint>
#include <vector>

namespace tokenrec {

// Items packed for the scoring kernel: blocks of 16 items, each stored (D, 16), zero padded.
struct PackedItems {
  int64_t N = 0, D = 0;
  std::vector<float> data;  // (ceil(N/16), D, 16)
};

// items: (N, D) row-major. When normalize, each row is divided by its L2 norm (zero rows stay 0).
PackedItems pack_items(const float* items, int64_t N, int64_t D, bool normalize);

// Returns a row-normalised copy of rows: (R, D) -> (R, D).
std::vector<float> normalize_rows(const float* rows, int64_t R, int64_t D);

// S[r * ldS + j] = <U[r], item j> for r in [0, R), j in [j0, j1). U: (R, D) row-major.
// j0 must be a multiple of 16. Single-threaded: callers parallelise over row or item blocks.
void score_block(const float* U, int64_t R, const PackedItems& items, int64_t j0, int64_t j1,
                 float* S, int64_t ldS);

}  // namespace tokenrec
