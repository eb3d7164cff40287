#include "tokenrec/scoring.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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
  p.N = N;
  p.D = D;
  int64_t nb = (N + LANES - 1) / LANES;
  p.data.assign(size_t(nb * D * LANES), 0.f);
  parallel_for(0, nb, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      float* dst = p.data.data() + b * D * LANES;
      for (int64_t l = 0; l < LANES; ++l) {
        int64_t j = b * LANES + l;
        if (j >= N) break;
        const float* src = items + j * D;
        float n = normalize ? row_norm(src, D) : 1.f;
        for (int64_t d = 0; d < D; ++d) dst[d * LANES + l] = n > 0 ? src[d] / n : 0.f;
      }
    }
  });
  return p;
}

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
          std::memcpy(S + (r + k) * ldS + j, out[k], size_t(nl) * sizeof(float));
      }
    }
  }
}

}  // namespace tokenrec
