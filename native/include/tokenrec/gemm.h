// Single-precision GEMM used by every CPU kernel that multiplies matrices.
// C (M, N) = alpha * op(A) * op(B) + beta * C, all row-major.
//   op(A) is (M, K): A is (M, K) with row stride lda, or (K, M) when trans_a.
//   op(B) is (K, N): B is (K, N) with row stride ldb, or (N, K) when trans_b.
// Uses the system CBLAS when the build found one, else a built-in cache-blocked kernel;
// gemm_backend() says which; TOKENREC_GEMM=builtin (environment) forces the built-in kernel.
// Multi-threaded through parallel_for in the built-in path; OpenBLAS gets num_threads() threads.
#pragma once
#include <cstdint>

namespace tokenrec {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc);

// The built-in kernel, always available (tests compare it with the BLAS path).
void sgemm_builtin(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                   float* C, int64_t ldc);

// "openblas" or "builtin".
const char* gemm_backend();

}  // namespace tokenrec
