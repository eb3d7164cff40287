// Vector quantisation over K codebooks: batched nearest-codeword search, the quantised mean that
// the MQ-Tokenizer's decoder reads, the codebook / commitment losses with their gradients and the
// straight-through estimator, and k-means for codebook initialisation.
//
// Layouts (all row-major fp32 unless said otherwise):
//   a          (B, K, dc)  encoder outputs: sample b, way k
//   codebooks  (K, L, dc)  codeword l of codebook k
//   idx        (B, K)      int32 chosen codeword per sample and way, in [0, L)
//   dist       (B, K)      squared Euclidean distance ||a[b,k] - codebooks[k, idx[b,k]]||^2
#pragma once
#include <cstdint>

namespace tokenrec {

// Nearest codeword of every (b, k): idx[b,k] = argmin_l ||a[b,k] - c[k,l]||^2, computed as
// ||a||^2 - 2 a.c + ||c||^2 with one GEMM per (codebook, block of rows). Ties (equal computed
// distances) go to the lowest l. dist may be null; distances are clamped at 0 (the expansion can
// round slightly below). Validates shapes and finiteness of a and codebooks.
void vq_nearest_cpu(const float* a, const float* codebooks, int64_t B, int64_t K, int64_t L, int64_t dc,
                    int32_t* idx, float* dist);
void vq_nearest_cuda(const float* a, const float* codebooks, int64_t B, int64_t K, int64_t L, int64_t dc,
                     int32_t* idx, float* dist);

// z[b] = (1/K) sum_k codebooks[k, idx[b,k]]: the decoder's input. z: (B, dc) output.
void vq_quantize_cpu(const float* codebooks, const int32_t* idx, int64_t B, int64_t K, int64_t L, int64_t dc,
                     float* z);
void vq_quantize_cuda(const float* codebooks, const int32_t* idx, int64_t B, int64_t K, int64_t L,
                      int64_t dc, float* z);

struct VqLosses {
  double codebook = 0;    // sum_k mean_{b,e} (sg[a] - c)^2
  double commitment = 0;  // beta * sum_k mean_{b,e} (a - sg[c])^2
};

// Gradients of the quantiser, for fixed idx:
//   da[b,k]  = dz[b] / K                              straight-through: the decoder's gradient
//                                                     w.r.t. z reaches every encoder output as if
//                                                     z = mean_k a^k (dz may be null: no decoder term)
//            + beta * 2 (a[b,k] - c[k,idx]) / (B dc)  commitment
//   dcb[k,l] = sum_{b: idx[b,k]=l} 2 (c[k,l] - a[b,k]) / (B dc)   codebook loss (scatter-add in
//                                                     ascending b: deterministic)
// da: (B, K, dc) output, overwritten; dcb: (K, L, dc) output, overwritten. Returns both losses.
VqLosses vq_backward_cpu(const float* a, const float* codebooks, const int32_t* idx, int64_t B, int64_t K,
                         int64_t L, int64_t dc, float beta, const float* dz, float* da, float* dcb);
VqLosses vq_backward_cuda(const float* a, const float* codebooks, const int32_t* idx, int64_t B, int64_t K,
                          int64_t L, int64_t dc, float beta, const float* dz, float* da, float* dcb);

// Lloyd's k-means with L centroids. data: (N, D); centroids: (L, D) output. Seeded with
// k-means++ from `seed` (when fewer distinct samples than L exist, the rest are repeats, jittered);
// a cluster left empty is re-seeded with the sample farthest from its centroid. Returns the final
// mean squared distance of the samples to their centroid.
double kmeans_cpu(const float* data, int64_t N, int64_t D, int64_t L, int iters, uint64_t seed,
                  float* centroids);

}  // namespace tokenrec
