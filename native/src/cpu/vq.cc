#include "tokenrec/vq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "tokenrec/error.h"
#include "tokenrec/gemm.h"
#include "tokenrec/parallel.h"

namespace tokenrec {

namespace {

void check_dims(const char* fn, int64_t B, int64_t K, int64_t L, int64_t dc) {
  require(B >= 0, fn, ": batch size B must be >= 0, got ", B);
  require(K > 0, fn, ": number of codebooks K must be > 0, got ", K);
  require(L > 0 && L <= std::numeric_limits<int32_t>::max(), fn, ": codebook size L must be in [1, 2^31), got ", L);
  require(dc > 0, fn, ": codebook dimension dc must be > 0, got ", dc);
}

void check_finite(const char* fn, const float* x, int64_t n, const char* name) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) fail(ErrorCode::NotFinite, fn, ": ", name, "[", i, "] is not finite (", x[i], ")");
}

void check_idx(const char* fn, const int32_t* idx, int64_t n, int64_t L) {
  for (int64_t i = 0; i < n; ++i)
    if (idx[i] < 0 || idx[i] >= L)
      fail(ErrorCode::OutOfRange, fn, ": idx[", i, "] = ", idx[i], " is outside [0, ", L, ")");
}

}  // namespace

void vq_nearest_cpu(const float* a, const float* cb, int64_t B, int64_t K, int64_t L, int64_t dc, int32_t* idx,
                    float* dist) {
  check_dims("vq_nearest", B, K, L, dc);
  if (B == 0) return;
  require(a && cb && idx, "vq_nearest: a, codebooks and idx are required");
  check_finite("vq_nearest", a, B * K * dc, "a");
  check_finite("vq_nearest", cb, K * L * dc, "codebooks");
  // ||c||^2 per codeword, (K, L)
  std::vector<float> cn(size_t(K * L));
  parallel_for(0, K * L, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float* c = cb + i * dc;
      float s = 0.f;
      for (int64_t e = 0; e < dc; ++e) s += c[e] * c[e];
      cn[size_t(i)] = s;
    }
  });
  // Rows per GEMM: keep the (rows, L) score block near 4 MiB.
  const int64_t rows = std::max<int64_t>(64, std::min<int64_t>(B, (int64_t(1) << 20) / L));
  std::vector<float> S(size_t(rows * L));
  for (int64_t b0 = 0; b0 < B; b0 += rows) {
    const int64_t nb = std::min(rows, B - b0);
    for (int64_t k = 0; k < K; ++k) {
      // S (nb, L) = a[b0:b0+nb, k, :] (row stride K*dc) . codebook_k^T
      sgemm(false, true, nb, L, dc, 1.f, a + (b0 * K + k) * dc, K * dc, cb + k * L * dc, dc, 0.f, S.data(), L);
      const float* cnk = cn.data() + k * L;
      parallel_for(0, nb, 16, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          const float* s = S.data() + r * L;
          float best = std::numeric_limits<float>::infinity();
          int32_t bi = 0;
          for (int64_t l = 0; l < L; ++l) {
            float v = cnk[l] - 2.f * s[l];  // ||a||^2 is the same for every l
            if (v < best) {
              best = v;
              bi = int32_t(l);
            }
          }
          const int64_t o = (b0 + r) * K + k;
          idx[o] = bi;
          if (dist) {
            const float* av = a + o * dc;
            float an = 0.f;
            for (int64_t e = 0; e < dc; ++e) an += av[e] * av[e];
            dist[o] = std::max(0.f, an + best);
          }
        }
      });
    }
  }
}

void vq_quantize_cpu(const float* cb, const int32_t* idx, int64_t B, int64_t K, int64_t L, int64_t dc, float* z) {
  check_dims("vq_quantize", B, K, L, dc);
  if (B == 0) return;
  require(cb && idx && z, "vq_quantize: codebooks, idx and z are required");
  check_idx("vq_quantize", idx, B * K, L);
  const float inv = 1.f / float(K);
  parallel_for(0, B, 32, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      float* zb = z + b * dc;
      std::fill(zb, zb + dc, 0.f);
      for (int64_t k = 0; k < K; ++k) {
        const float* c = cb + (k * L + idx[b * K + k]) * dc;
        for (int64_t e = 0; e < dc; ++e) zb[e] += c[e];
      }
      for (int64_t e = 0; e < dc; ++e) zb[e] *= inv;
    }
  });
}

VqLosses vq_backward_cpu(const float* a, const float* cb, const int32_t* idx, int64_t B, int64_t K, int64_t L,
                         int64_t dc, float beta, const float* dz, float* da, float* dcb) {
  check_dims("vq_backward", B, K, L, dc);
  require(std::isfinite(beta) && beta >= 0.f, "vq_backward: beta must be finite and >= 0, got ", beta);
  require(cb && da && dcb && (B == 0 || (a && idx)), "vq_backward: a, codebooks, idx, da and dcb are required");
  std::fill(dcb, dcb + K * L * dc, 0.f);
  VqLosses out;
  if (B == 0) return out;
  check_idx("vq_backward", idx, B * K, L);
  const float scale = 2.f / float(B * dc);
  const float invK = 1.f / float(K);
  // da and the per-row squared error, parallel over rows.
  std::vector<double> sq(size_t(B * K));
  parallel_for(0, B, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b)
      for (int64_t k = 0; k < K; ++k) {
        const int64_t o = b * K + k;
        const float* av = a + o * dc;
        const float* c = cb + (k * L + idx[o]) * dc;
        float* g = da + o * dc;
        const float* gz = dz ? dz + b * dc : nullptr;
        double s = 0;
        for (int64_t e = 0; e < dc; ++e) {
          float diff = av[e] - c[e];
          s += double(diff) * diff;
          g[e] = beta * scale * diff + (gz ? gz[e] * invK : 0.f);
        }
        sq[size_t(o)] = s;
      }
  });
  double total = 0;
  for (double s : sq) total += s;
  out.codebook = total / double(B * dc);
  out.commitment = double(beta) * out.codebook;
  // Codebook gradient: scatter-add, parallel over codebooks, ascending b inside (deterministic).
  parallel_for(0, K, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k)
      for (int64_t b = 0; b < B; ++b) {
        const int64_t o = b * K + k;
        const float* av = a + o * dc;
        float* g = dcb + (k * L + idx[o]) * dc;
        const float* c = cb + (k * L + idx[o]) * dc;
        for (int64_t e = 0; e < dc; ++e) g[e] += scale * (c[e] - av[e]);
      }
  });
  return out;
}

#ifndef TOKENREC_HAVE_CUDA
void vq_nearest_cuda(const float*, const float*, int64_t, int64_t, int64_t, int64_t, int32_t*, float*) {
  fail(ErrorCode::Cuda, "vq_nearest: CUDA kernels were not compiled into this build");
}
void vq_quantize_cuda(const float*, const int32_t*, int64_t, int64_t, int64_t, int64_t, float*) {
  fail(ErrorCode::Cuda, "vq_quantize: CUDA kernels were not compiled into this build");
}
VqLosses vq_backward_cuda(const float*, const float*, const int32_t*, int64_t, int64_t, int64_t, int64_t, float,
                          const float*, float*, float*) {
  fail(ErrorCode::Cuda, "vq_backward: CUDA kernels were not compiled into this build");
}
#endif

}  // namespace tokenrec
