#include "tokenrec/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tokenrec/error.h"
#include "tokenrec/parallel.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TOKENREC_GEMM_AVX2 1
#endif

#ifdef TOKENREC_HAVE_BLAS
#include <cblas.h>
#endif

namespace tokenrec {
namespace {

// The built-in kernel follows the usual packed design: C is cut into (MC x NC) blocks, one task
// each; per K slice of KC, the task packs its op(A) rows into MR-row strips and its op(B)
// columns into NR-column strips (zero-padded), then an MR x NR register-tiled micro-kernel
// accumulates each tile over the slice. With AVX2 + FMA the micro-kernel keeps the 6 x 16 tile
// in 12 ymm registers (two 8-lane loads of B and six broadcasts of A per k).
// Sizes: a B strip (KC x NR, 16 KiB) stays in L1, the packed A block (MC x KC, 144 KiB) and
// B panel (KC x NC, 256 KiB) in L2.
constexpr int64_t MR = 6, NR = 16, MC = 144, KC = 256, NC = 256;

// Packs op(A)[i0:i0+mc, k0:k0+kc] into ceil(mc/MR) strips, each (kc, MR) k-major, zero-padded.
void pack_a(bool ta, const float* A, int64_t lda, int64_t i0, int64_t k0, int64_t mc, int64_t kc, float* dst) {
  for (int64_t s = 0; s < mc; s += MR) {
    int64_t mr = std::min(MR, mc - s);
    float* d = dst + s * kc;
    if (!ta) {
      // Rows are read in parallel (MR streams) so that the strip is written sequentially.
      const float* rows[MR];
      for (int64_t r = 0; r < MR; ++r) rows[r] = r < mr ? A + (i0 + s + r) * lda + k0 : nullptr;
      if (mr == MR) {
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t r = 0; r < MR; ++r) d[k * MR + r] = rows[r][k];
      } else {
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t r = 0; r < MR; ++r) d[k * MR + r] = r < mr ? rows[r][k] : 0.f;
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + (k0 + k) * lda + i0 + s;
        for (int64_t r = 0; r < MR; ++r) d[k * MR + r] = r < mr ? src[r] : 0.f;
      }
    }
  }
}

// Packs op(B)[k0:k0+kc, j0:j0+nc] into ceil(nc/NR) strips, each (kc, NR) k-major, zero-padded.
void pack_b(bool tb, const float* B, int64_t ldb, int64_t k0, int64_t j0, int64_t kc, int64_t nc, float* dst) {
  for (int64_t s = 0; s < nc; s += NR) {
    int64_t nr = std::min(NR, nc - s);
    float* d = dst + s * kc;
    if (!tb) {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = B + (k0 + k) * ldb + j0 + s;
        if (nr == NR) {
          std::memcpy(d + k * NR, src, sizeof(float) * NR);
        } else {
          for (int64_t c = 0; c < NR; ++c) d[k * NR + c] = c < nr ? src[c] : 0.f;
        }
      }
    } else {
      for (int64_t c = 0; c < NR; ++c) {
        if (c < nr) {
          const float* src = B + (j0 + s + c) * ldb + k0;
          for (int64_t k = 0; k < kc; ++k) d[k * NR + c] = src[k];
        } else {
          for (int64_t k = 0; k < kc; ++k) d[k * NR + c] = 0.f;
        }
      }
    }
  }
}

// acc (MR x NR, row-major) = Ap strip (kc, MR) ^T * Bp strip (kc, NR).
inline void micro_kernel(const float* Ap, const float* Bp, int64_t kc, float* acc) {
#ifdef TOKENREC_GEMM_AVX2
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const float* a = Ap + k * MR;
    __m256 b0 = _mm256_loadu_ps(Bp + k * NR), b1 = _mm256_loadu_ps(Bp + k * NR + 8);
    // Keep b0, b1 in registers: folded into each FMA they would be loaded six times.
    __asm__("" : "+x"(b0), "+x"(b1));
    __m256 a0 = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(a0, b0, c00);
    c01 = _mm256_fmadd_ps(a0, b1, c01);
    __m256 a1 = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(a1, b0, c10);
    c11 = _mm256_fmadd_ps(a1, b1, c11);
    __m256 a2 = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(a2, b0, c20);
    c21 = _mm256_fmadd_ps(a2, b1, c21);
    __m256 a3 = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(a3, b0, c30);
    c31 = _mm256_fmadd_ps(a3, b1, c31);
    __m256 a4 = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(a4, b0, c40);
    c41 = _mm256_fmadd_ps(a4, b1, c41);
    __m256 a5 = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(a5, b0, c50);
    c51 = _mm256_fmadd_ps(a5, b1, c51);
  }
  _mm256_storeu_ps(acc + 0 * NR, c00);
  _mm256_storeu_ps(acc + 0 * NR + 8, c01);
  _mm256_storeu_ps(acc + 1 * NR, c10);
  _mm256_storeu_ps(acc + 1 * NR + 8, c11);
  _mm256_storeu_ps(acc + 2 * NR, c20);
  _mm256_storeu_ps(acc + 2 * NR + 8, c21);
  _mm256_storeu_ps(acc + 3 * NR, c30);
  _mm256_storeu_ps(acc + 3 * NR + 8, c31);
  _mm256_storeu_ps(acc + 4 * NR, c40);
  _mm256_storeu_ps(acc + 4 * NR + 8, c41);
  _mm256_storeu_ps(acc + 5 * NR, c50);
  _mm256_storeu_ps(acc + 5 * NR + 8, c51);
#else
  float t[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t r = 0; r < MR; ++r) {
      float a = Ap[k * MR + r];
      for (int64_t c = 0; c < NR; ++c) t[r][c] += a * Bp[k * NR + c];
    }
  std::memcpy(acc, t, sizeof(t));
#endif
}

// C[mc, nc] += alpha * packed A block * packed B panel.
void block_multiply(const float* Ap, const float* Bp, int64_t mc, int64_t nc, int64_t kc, float alpha, float* C,
                    int64_t ldc) {
  alignas(32) float acc[MR * NR];
  for (int64_t j = 0; j < nc; j += NR) {
    int64_t nr = std::min(NR, nc - j);
    const float* b = Bp + j * kc;
    for (int64_t i = 0; i < mc; i += MR) {
      int64_t mr = std::min(MR, mc - i);
#ifdef TOKENREC_GEMM_AVX2
      // The C tile is read back after the micro-kernel: fetch it meanwhile (its rows are ldc apart).
      for (int64_t r = 0; r < mr; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(C + (i + r) * ldc + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(C + (i + r) * ldc + j + NR - 1), _MM_HINT_T0);
      }
#endif
      micro_kernel(Ap + i * kc, b, kc, acc);
#ifdef TOKENREC_GEMM_AVX2
      if (nr == NR) {
        const __m256 va = _mm256_set1_ps(alpha);
        for (int64_t r = 0; r < mr; ++r) {
          float* c = C + (i + r) * ldc + j;
          _mm256_storeu_ps(c, _mm256_fmadd_ps(va, _mm256_load_ps(acc + r * NR), _mm256_loadu_ps(c)));
          _mm256_storeu_ps(c + 8, _mm256_fmadd_ps(va, _mm256_load_ps(acc + r * NR + 8), _mm256_loadu_ps(c + 8)));
        }
        continue;
      }
#endif
      for (int64_t r = 0; r < mr; ++r) {
        float* c = C + (i + r) * ldc + j;
        const float* a = acc + r * NR;
        for (int64_t x = 0; x < nr; ++x) c[x] += alpha * a[x];
      }
    }
  }
}

void check_args(int64_t M, int64_t N, int64_t K, const float* A, const float* B, const float* C) {
  require(M >= 0 && N >= 0 && K >= 0, "sgemm: negative size M=", M, " N=", N, " K=", K);
  require((M == 0 || N == 0) || C != nullptr, "sgemm: C is null");
  require((M == 0 || N == 0 || K == 0) || (A != nullptr && B != nullptr), "sgemm: A or B is null");
}

// TOKENREC_GEMM=builtin makes sgemm() use the built-in kernel even when BLAS is compiled in
// (to compare the two, or to keep every thread in one pool).
bool force_builtin() {
  static const bool v = [] {
    const char* s = std::getenv("TOKENREC_GEMM");
    return s && std::string(s) == "builtin";
  }();
  return v;
}

}  // namespace

void sgemm_builtin(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
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
  // Tasks own disjoint parts of C: a column block (whose packed B panel is reused by all the
  // task's row blocks) and a group of row blocks. Column blocks alone would leave threads idle
  // when N is small, so rows are split into enough groups to give every thread work.
  const int64_t nrow = (M + MC - 1) / MC, ncol = (N + NC - 1) / NC;
  const int64_t want_tasks = 2 * int64_t(num_threads());
  const int64_t groups = std::max<int64_t>(1, std::min(nrow, (want_tasks + ncol - 1) / ncol));
  const int64_t rows_per_group = (nrow + groups - 1) / groups;
  parallel_for(0, ncol * groups, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> Ap(size_t(((MC + MR - 1) / MR) * MR * KC)), Bp(size_t(((NC + NR - 1) / NR) * NR * KC));
    for (int64_t t = lo; t < hi; ++t) {
      int64_t jb = t / groups, g = t % groups;
      int64_t j0 = jb * NC, nc = std::min(NC, N - j0);
      int64_t ib0 = g * rows_per_group, ib1 = std::min(nrow, ib0 + rows_per_group);
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = std::min(KC, K - k0);
        pack_b(tb, B, ldb, k0, j0, kc, nc, Bp.data());
        for (int64_t ib = ib0; ib < ib1; ++ib) {
          int64_t i0 = ib * MC, mc = std::min(MC, M - i0);
          pack_a(ta, A, lda, i0, k0, mc, kc, Ap.data());
          block_multiply(Ap.data(), Bp.data(), mc, nc, kc, alpha, C + i0 * ldc + j0, ldc);
        }
      }
    }
  });
}

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
#ifdef TOKENREC_HAVE_BLAS
  if (!force_builtin()) {
    check_args(M, N, K, A, B, C);
    if (M == 0 || N == 0) return;
    if (K == 0) {  // CBLAS leaves C untouched for K == 0 only when beta == 1; do it explicitly.
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
      return;
    }
    // OpenBLAS keeps its own threads: give it the same count as the kernels' pool.
    static std::atomic<int> blas_threads{0};
    int want = num_threads();
    if (blas_threads.exchange(want) != want) openblas_set_num_threads(want);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
                alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
    return;
  }
#endif
  sgemm_builtin(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char* gemm_backend() {
#ifdef TOKENREC_HAVE_BLAS
  return force_builtin() ? "builtin" : "openblas";
#else
  return "builtin";
#endif
}

}  // namespace tokenrec
