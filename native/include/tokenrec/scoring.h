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

// Appends n rows to `p` (items: (n, D) row-major, D = p.D), normalising them when asked, as
// pack_items does: packing all rows at once or in several appends gives the same data.
void append_items(PackedItems& p, const float* items, int64_t n, bool normalize);

// True when every score is a chain of fused multiply-adds (acc = fma(u[d], x[d], acc) from
// acc = 0, d ascending): the CUDA kernels compute the same chain, so CPU and GPU scores are then
// bit-identical.
bool scoring_is_fma_chain();

// Returns a row-normalised copy of rows: (R, D) -> (R, D).
std::vector<float> normalize_rows(const float* rows, int64_t R, int64_t D);

// S[r * ldS + (j - j0)] = <U[r], item j> for r in [0, R), j in [j0, j1): S is (R, ldS), ldS >= j1 - j0. U: (R, D) row-major.
// j0 must be a multiple of 16. Single-threaded: callers parallelise over row or item blocks.
// With AVX2+FMA, register tiles of up to 6 rows x 16 items (or 1-3 rows x 32-64 items for small
// R) run on explicit FMA intrinsics; every tile computes the same per-score chain.
void score_block(const float* U, int64_t R, const PackedItems& items, int64_t j0, int64_t j1,
                 float* S, int64_t ldS);

}  // namespace tokenrec
