#include "tokenrec/scoring.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "tokenrec/error.h"
#include "tokenrec/parallel.h"

namespace tokenrec {

constexpr int64_t LANES = 16;  // items per packed block
constexpr int64_t MR = 4;      // user rows per register tile

static float row_norm(const float* x, int64_t D) {
  double s = 0;
  for (int64_t d = 0; d < D; ++d) s += double(x[d]) * x[d];
  return float(std::sqrt(s));
}

std::vector<float> normalize_rows(const float* rows, int64_t R, int64_t D) {
  std::vector<float> out(size_t(R * D));
  parallel_for(0, R, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      // Division (not multiplication by 1/n) keeps parallel vectors exactly tied more often.
      float n = row_norm(rows + r * D, D);
      for (int64_t d = 0; d < D; ++d) out[r * D + d] = n > 0 ? rows[r * D + d] / n : 0.f;
    }
  });
  return out;
}

PackedItems pack_items(const float* items, int64_t N, int64_t D, bool normalize) {
  PackedItems p;
  p.N = 0;
  p.D = D;
  append_items(p, items, N, normalize);
  return p;
}

void append_items(PackedItems& p, const float* items, int64_t n, bool normalize) {
  const int64_t D = p.D, N0 = p.N, N = N0 + n;
  if (n <= 0) return;
  int64_t nb = (N + LANES - 1) / LANES;
  // The last, partly filled block of the old data keeps its place; new rows fill its zero lanes.
  p.data.resize(size_t(nb * D * LANES), 0.f);
  int64_t b_first = N0 / LANES;
  parallel_for(b_first, nb, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      float* dst = p.data.data() + b * D * LANES;
      for (int64_t l = 0; l < LANES; ++l) {
        int64_t j = b * LANES + l;
        if (j < N0) continue;
        if (j >= N) break;
        const float* src = items + (j - N0) * D;
        float nrm = normalize ? row_norm(src, D) : 1.f;
        for (int64_t d = 0; d < D; ++d) dst[d * LANES + l] = nrm > 0 ? src[d] / nrm : 0.f;
      }
    }
  });
  p.N = N;
}

#if defined(__AVX2__) && defined(__FMA__)
#define TOKENREC_SCORING_AVX2 1

// MR user rows x NB packed blocks (16 items each). acc[r][c] holds lanes 8c..8c+7 of the row-r
// scores; every lane is the chain acc = fma(u[d], x[d], acc), d ascending, from 0.
// (The unroll pragmas and the 2-D spill buffer keep every accumulator in a register: without
// them GCC 12 stores the accumulators to the stack on every d.)
template <int MR, int NB>
static inline void avx2_tile(const float* const* u, const float* blk, int64_t D, float* S, int64_t ldS,
                             int64_t nvalid) {
  __m256 acc[MR][2 * NB];
  const float* uu[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    uu[r] = u[r];
#pragma GCC unroll 16
    for (int c = 0; c < 2 * NB; ++c) acc[r][c] = _mm256_setzero_ps();
  }
  for (int64_t d = 0; d < D; ++d) {
    __m256 x[2 * NB];
#pragma GCC unroll 16
    for (int b = 0; b < NB; ++b) {
      x[2 * b] = _mm256_loadu_ps(blk + b * D * LANES + d * LANES);
      x[2 * b + 1] = _mm256_loadu_ps(blk + b * D * LANES + d * LANES + 8);
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      __m256 v = _mm256_broadcast_ss(uu[r] + d);
#pragma GCC unroll 16
      for (int c = 0; c < 2 * NB; ++c) acc[r][c] = _mm256_fmadd_ps(v, x[c], acc[r][c]);
    }
  }
  if (nvalid == NB * LANES) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
      for (int c = 0; c < 2 * NB; ++c) _mm256_storeu_ps(S + r * ldS + 8 * c, acc[r][c]);
  } else {
    alignas(32) float tmp[MR][2 * NB * 8];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
      for (int c = 0; c < 2 * NB; ++c) _mm256_store_ps(tmp[r] + 8 * c, acc[r][c]);
    for (int r = 0; r < MR; ++r) std::memcpy(S + r * ldS, tmp[r], size_t(nvalid) * sizeof(float));
  }
}

// Rows [r, r+MR) of U against items [j0, j1), NB blocks at a time, then single blocks.
template <int MR, int NB>
static void avx2_rows(const float* U, int64_t r, const PackedItems& items, int64_t j0, int64_t j1, float* S,
                      int64_t ldS) {
  const int64_t D = items.D;
  const float* u[MR];
  for (int k = 0; k < MR; ++k) u[k] = U + (r + k) * D;
  float* Sr = S + r * ldS;  // column (j - j0) holds item j
  int64_t j = j0;
  for (; NB > 1 && j + NB * LANES <= j1; j += NB * LANES)
    avx2_tile<MR, NB>(u, items.data.data() + (j / LANES) * D * LANES, D, Sr + (j - j0), ldS, NB * LANES);
  for (; j < j1; j += LANES)
    avx2_tile<MR, 1>(u, items.data.data() + (j / LANES) * D * LANES, D, Sr + (j - j0), ldS, std::min(LANES, j1 - j));
}

void score_block(const float* U, int64_t R, const PackedItems& items, int64_t j0, int64_t j1,
                 float* S, int64_t ldS) {
  require(j0 % LANES == 0, "score_block: j0 must be a multiple of 16, got ", j0);
  const int64_t D = items.D;
  // Items in chunks of JC (JC * D * 4 bytes: 128 KiB at D = 64) stay in L2 while every row
  // tile of U passes over them; without this each row tile streams the whole item matrix.
  const int64_t JC = std::max<int64_t>(LANES, (int64_t(32768) / std::max<int64_t>(D, 1)) / LANES * LANES);
  for (int64_t c0 = j0; c0 < j1; c0 += JC) {
    const int64_t c1 = std::min(j1, c0 + JC);
    float* Sc = S + (c0 - j0);
    int64_t r = 0;
    for (; r + 6 <= R; r += 6) avx2_rows<6, 1>(U, r, items, c0, c1, Sc, ldS);
    switch (R - r) {
      case 1: avx2_rows<1, 4>(U, r, items, c0, c1, Sc, ldS); break;
      case 2: avx2_rows<2, 3>(U, r, items, c0, c1, Sc, ldS); break;
      case 3: avx2_rows<3, 2>(U, r, items, c0, c1, Sc, ldS); break;
      case 4: avx2_rows<4, 1>(U, r, items, c0, c1, Sc, ldS); break;
      case 5: avx2_rows<5, 1>(U, r, items, c0, c1, Sc, ldS); break;
      default: break;
    }
  }
}

bool scoring_is_fma_chain() { return true; }

#else  // portable path

// One register tile: 4 user rows x 16 items. Each lane's score is the chain
// acc = u[d] * x[d] + acc over d in order, identical for every item position.
static inline void tile(const float* u0, const float* u1, const float* u2, const float* u3,
                        const float* blk, int64_t D, float out[MR][LANES]) {
  float a0[LANES] = {}, a1[LANES] = {}, a2[LANES] = {}, a3[LANES] = {};
  for (int64_t d = 0; d < D; ++d) {
    const float* x = blk + d * LANES;
    float v0 = u0[d], v1 = u1[d], v2 = u2[d], v3 = u3[d];
    for (int64_t l = 0; l < LANES; ++l) {
      a0[l] += v0 * x[l];
      a1[l] += v1 * x[l];
      a2[l] += v2 * x[l];
      a3[l] += v3 * x[l];
    }
  }
  std::memcpy(out[0], a0, sizeof a0);
  std::memcpy(out[1], a1, sizeof a1);
  std::memcpy(out[2], a2, sizeof a2);
  std::memcpy(out[3], a3, sizeof a3);
}

void score_block(const float* U, int64_t R, const PackedItems& items, int64_t j0, int64_t j1,
                 float* S, int64_t ldS) {
  const int64_t D = items.D;
  require(j0 % LANES == 0, "score_block: j0 must be a multiple of 16, got ", j0);
  std::vector<float> zero(size_t(std::max<int64_t>(D, 1)), 0.f);
  float out[MR][LANES];
  // Items in chunks of JC (JC * D * 4 bytes: 128 KiB at D = 64) stay in L2 while every row
  // tile of U passes over them; without this each 4-row tile streams the whole item matrix.
  const int64_t JC = std::max<int64_t>(LANES, (int64_t(32768) / std::max<int64_t>(D, 1)) / LANES * LANES);
  for (int64_t c0 = j0; c0 < j1; c0 += JC) {
    const int64_t c1 = std::min(j1, c0 + JC);
    for (int64_t r = 0; r < R; r += MR) {
      // Rows past R read a zero row; the same tile code serves full and partial tiles.
      const float* u[MR];
      for (int64_t k = 0; k < MR; ++k) u[k] = r + k < R ? U + (r + k) * D : zero.data();
      for (int64_t j = c0; j < c1; j += LANES) {
        tile(u[0], u[1], u[2], u[3], items.data.data() + (j / LANES) * D * LANES, D, out);
        int64_t nl = std::min(LANES, c1 - j);
        for (int64_t k = 0; k < MR && r + k < R; ++k)
          std::memcpy(S + (r + k) * ldS + (j - j0), out[k], size_t(nl) * sizeof(float));
      }
    }
  }
}

bool scoring_is_fma_chain() {
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
  return true;  // the compiler contracts the tile's multiply-adds (gnu++17, -ffp-contract=fast)
#else
  return false;
#endif
}

#endif

}  // namespace tokenrec
