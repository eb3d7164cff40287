#include "tokenrec/gemm.h"

#include <algorithm>
#include <vector>

#include "tokenrec/error.h"
#include "tokenrec/parallel.h"

#ifdef TOKENREC_HAVE_BLAS
#include <cblas.h>
#endif

namespace tokenrec {
namespace {

// Block sizes: an (MC x KC) panel of A and a (KC x NC) panel of B stay in L2 while a
// (4 x 16) register tile of C accumulates.
constexpr int64_t MC = 64, KC = 256, NC = 512, MR = 4, NR = 16;

// Packs op(A)[i0:i0+mc, k0:k0+kc] into row-major (mc, kc).
void pack_a(bool ta, const float* A, int64_t lda, int64_t i0, int64_t k0, int64_t mc, int64_t kc,
            float* dst) {
  for (int64_t i = 0; i < mc; ++i)
    for (int64_t k = 0; k < kc; ++k)
      dst[i * kc + k] = ta ? A[(k0 + k) * lda + (i0 + i)] : A[(i0 + i) * lda + (k0 + k)];
}

// Packs op(B)[k0:k0+kc, j0:j0+nc] into row-major (kc, nc).
void pack_b(bool tb, const float* B, int64_t ldb, int64_t k0, int64_t j0, int64_t kc, int64_t nc,
            float* dst) {
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t j = 0; j < nc; ++j)
      dst[k * nc + j] = tb ? B[(j0 + j) * ldb + (k0 + k)] : B[(k0 + k) * ldb + (j0 + j)];
}

// C[mc, nc] += alpha * Ap (mc, kc) * Bp (kc, nc); register-tiled MR x NR.
void kernel_block(const float* Ap, const float* Bp, int64_t mc, int64_t nc, int64_t kc, float alpha,
                  float* C, int64_t ldc) {
  for (int64_t i = 0; i < mc; i += MR) {
    int64_t mr = std::min(MR, mc - i);
    for (int64_t j = 0; j < nc; j += NR) {
      int64_t nr = std::min(NR, nc - j);
      float acc[MR][NR] = {};
      if (mr == MR && nr == NR) {
        for (int64_t k = 0; k < kc; ++k) {
          const float* b = Bp + k * nc + j;
          for (int64_t r = 0; r < MR; ++r) {
            float a = Ap[(i + r) * kc + k];
            for (int64_t c = 0; c < NR; ++c) acc[r][c] += a * b[c];
          }
        }
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          const float* b = Bp + k * nc + j;
          for (int64_t r = 0; r < mr; ++r) {
            float a = Ap[(i + r) * kc + k];
            for (int64_t c = 0; c < nr; ++c) acc[r][c] += a * b[c];
          }
        }
      }
      for (int64_t r = 0; r < mr; ++r)
        for (int64_t c = 0; c < nr; ++c) C[(i + r) * ldc + j + c] += alpha * acc[r][c];
    }
  }
}

void check_args(int64_t M, int64_t N, int64_t K, const float* A, const float* B, const float* C) {
  require(M >= 0 && N >= 0 && K >= 0, "sgemm: negative size M=", M, " N=", N, " K=", K);
  require((M == 0 || N == 0) || C != nullptr, "sgemm: C is null");
  require((M == 0 || N == 0 || K == 0) || (A != nullptr && B != nullptr), "sgemm: A or B is null");
}

}  // namespace

void sgemm_builtin(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_args(M, N, K, A, B, C);
  if (M == 0 || N == 0) return;
  // Scale C by beta first (beta == 0 overwrites, so NaNs in uninitialised C do not leak).
  parallel_for(0, M, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      float* c = C + i * ldc;
      if (beta == 0.f)
        std::fill(c, c + N, 0.f);
      else if (beta != 1.f)
        for (int64_t j = 0; j < N; ++j) c[j] *= beta;
    }
  });
  if (K == 0 || alpha == 0.f) return;
  // Parallelise over column panels of C (each thread owns disjoint columns) and row blocks.
  int64_t ncol = (N + NC - 1) / NC, nrow = (M + MC - 1) / MC;
  parallel_for(0, ncol * nrow, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> Ap(MC * KC), Bp(KC * NC);
    for (int64_t t = lo; t < hi; ++t) {
      int64_t jb = t / nrow, ib = t % nrow;
      int64_t j0 = jb * NC, nc = std::min(NC, N - j0);
      int64_t i0 = ib * MC, mc = std::min(MC, M - i0);
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = std::min(KC, K - k0);
        pack_b(tb, B, ldb, k0, j0, kc, nc, Bp.data());
        pack_a(ta, A, lda, i0, k0, mc, kc, Ap.data());
        kernel_block(Ap.data(), Bp.data(), mc, nc, kc, alpha, C + i0 * ldc + j0, ldc);
      }
    }
  });
}

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
#ifdef TOKENREC_HAVE_BLAS
  check_args(M, N, K, A, B, C);
  if (M == 0 || N == 0) return;
  if (K == 0) {  // CBLAS leaves C untouched for K == 0 only when beta == 1; do it explicitly.
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#else
  sgemm_builtin(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

const char* gemm_backend() {
#ifdef TOKENREC_HAVE_BLAS
  return "openblas";
#else
  return "builtin";
#endif
}

}  // namespace tokenrec
