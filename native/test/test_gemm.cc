// sgemm (BLAS when compiled in) and the built-in packed kernel against a naive double-precision
// product: every transpose combination, sizes that are not multiples of the tiles or blocks,
// padded leading dimensions, alpha / beta, K = 0, NaN in C with beta = 0, thread counts.
#include <cmath>
#include <limits>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/gemm.h"
#include "tokenrec/parallel.h"

using namespace tokenrec;
using Gemm = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                      float, float*, int64_t);

static double check_case(Gemm f, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta, int64_t pad,
                         uint64_t seed) {
  TestRng rng(seed);
  int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  std::vector<float> A = rng.vec(size_t((ta ? K : M) * lda + 1)), B = rng.vec(size_t((tb ? N : K) * ldb + 1));
  std::vector<float> C = rng.vec(size_t(M * ldc + 1));
  if (beta == 0.f)
    for (auto& c : C) c = std::numeric_limits<float>::quiet_NaN();  // must be overwritten, not scaled
  std::vector<float> C0 = C;
  f(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  double worst = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += double(ta ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)]) * double(tb ? B[size_t(j * ldb + k)] : B[size_t(k * ldb + j)]);
      double want = alpha * s + (beta == 0.f ? 0.0 : double(beta) * C0[size_t(i * ldc + j)]);
      double got = C[size_t(i * ldc + j)];
      double err = std::fabs(got - want) / (1.0 + std::sqrt(double(K)));
      if (!(err <= worst)) worst = std::isnan(err) ? 1e30 : std::max(worst, err);
    }
  // Padding columns of C are left alone.
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = N; j < ldc; ++j)
      if (!(std::isnan(C0[size_t(i * ldc + j)]) && std::isnan(C[size_t(i * ldc + j)])) && C[size_t(i * ldc + j)] != C0[size_t(i * ldc + j)])
        worst = 1e30;
  return worst;
}

TEST(builtin_matches_naive_all_transposes_and_edges) {
  int64_t sizes[][3] = {{1, 1, 1}, {5, 7, 3}, {6, 16, 256}, {7, 17, 257}, {97, 33, 300}, {200, 260, 513}, {13, 300, 9}};
  uint64_t seed = 1;
  for (auto& s : sizes)
    for (int t = 0; t < 4; ++t)
      for (float beta : {0.f, 1.f, 0.5f}) {
        double e = check_case(sgemm_builtin, t & 1, t & 2, s[0], s[1], s[2], 0.75f, beta, (t == 3) ? 3 : 0, seed++);
        if (e > 1e-5) std::printf("  builtin M=%ld N=%ld K=%ld ta=%d tb=%d beta=%g: err %g\n", long(s[0]), long(s[1]), long(s[2]), t & 1, (t & 2) >> 1, double(beta), e);
        CHECK(e <= 1e-5);
      }
}

TEST(sgemm_matches_naive) {
  uint64_t seed = 100;
  for (int t = 0; t < 4; ++t)
    for (float beta : {0.f, 1.f}) {
      double e = check_case(sgemm, t & 1, t & 2, 67, 45, 130, 1.f, beta, 2, seed++);
      CHECK(e <= 1e-5);
    }
}

TEST(k_zero_scales_c_and_thread_counts_agree) {
  float C[4] = {1, 2, 3, 4};
  sgemm_builtin(false, false, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 0.5f, C, 2);
  CHECK(C[0] == 0.5f && C[3] == 2.f);
  sgemm(false, false, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 0.f, C, 2);
  CHECK(C[0] == 0.f && C[3] == 0.f);
  TestRng rng(9);
  std::vector<float> A = rng.vec(300 * 200), B = rng.vec(200 * 310), C1(300 * 310), C2(300 * 310);
  set_num_threads(1);
  sgemm_builtin(false, false, 300, 310, 200, 1.f, A.data(), 200, B.data(), 310, 0.f, C1.data(), 310);
  set_num_threads(2);
  sgemm_builtin(false, false, 300, 310, 200, 1.f, A.data(), 200, B.data(), 310, 0.f, C2.data(), 310);
  set_num_threads(0);
  CHECK(C1 == C2);  // each C element is computed by one task in the same order
}

TEST(bad_arguments_throw) {
  float x = 0;
  CHECK_THROWS(sgemm_builtin(false, false, -1, 1, 1, 1.f, &x, 1, &x, 1, 0.f, &x, 1));
  CHECK_THROWS(sgemm(false, false, 1, 1, 1, 1.f, nullptr, 1, &x, 1, 0.f, &x, 1));
}
