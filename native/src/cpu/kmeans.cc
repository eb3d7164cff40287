// Lloyd's k-means for codebook initialisation (vq.h). Assignment uses the GEMM-based
// vq_nearest_cpu with one codebook; the update is a deterministic (ascending sample) mean in double.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "tokenrec/error.h"
#include "tokenrec/mlp.h"
#include "tokenrec/parallel.h"
#include "tokenrec/vq.h"

namespace tokenrec {

double kmeans_cpu(const float* data, int64_t N, int64_t D, int64_t L, int iters, uint64_t seed, float* centroids) {
  require(N > 0, "kmeans: needs at least one sample, got N = ", N);
  require(D > 0, "kmeans: dimension must be > 0, got ", D);
  require(L > 0, "kmeans: number of centroids must be > 0, got ", L);
  require(iters >= 0, "kmeans: iterations must be >= 0, got ", iters);
  require(data && centroids, "kmeans: data and centroids are required");
  for (int64_t i = 0; i < N * D; ++i)
    if (!std::isfinite(data[i])) fail(ErrorCode::NotFinite, "kmeans: data[", i / D, "][", i % D, "] is not finite");
  uint64_t state = mix64(seed ^ 0xA0761D6478BD642Full);
  auto next = [&state] {
    state += 0x9E3779B97F4A7C15ull;
    return mix64(state);
  };
  auto uniform = [&next] { return double(next() >> 11) / 9007199254740992.0; };  // [0, 1)
  double scale = 0;  // typical magnitude, for the jitter of repeated samples
  for (int64_t i = 0; i < N * D; ++i) scale += std::fabs(double(data[i]));
  scale = scale / double(N * D) + 1e-12;
  // k-means++ seeding: each new centroid is a sample drawn with probability proportional to its
  // squared distance to the nearest centroid so far (Arthur & Vassilvitskii 2007). Costs one pass
  // over the data per centroid, like one Lloyd iteration in all. When every sample is already a
  // centroid (N < L, or duplicates), the rest are random samples, jittered.
  std::vector<double> d2(static_cast<size_t>(N), std::numeric_limits<double>::infinity());
  for (int64_t l = 0; l < L; ++l) {
    int64_t pick;
    double total = 0;
    if (l > 0)
      for (double v : d2) total += v;
    if (l == 0 || !(total > 0)) {
      pick = int64_t(next() % uint64_t(N));
    } else {
      double u = uniform() * total, acc = 0;
      pick = N - 1;
      for (int64_t i = 0; i < N; ++i) {
        acc += d2[size_t(i)];
        if (acc > u) {
          pick = i;
          break;
        }
      }
    }
    float* c = centroids + l * D;
    std::memcpy(c, data + pick * D, size_t(D) * sizeof(float));
    if (l > 0 && !(total > 0))
      for (int64_t e = 0; e < D; ++e) c[e] += float(1e-3 * scale * (uniform() - 0.5));
    parallel_for(0, N, 256, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const float* x = data + i * D;
        float s = 0.f;
        for (int64_t e = 0; e < D; ++e) s += (x[e] - c[e]) * (x[e] - c[e]);
        d2[size_t(i)] = std::min(d2[size_t(i)], double(s));
      }
    });
  }
  std::vector<int32_t> assign(static_cast<size_t>(N));
  std::vector<float> dist(static_cast<size_t>(N));
  std::vector<double> sum(static_cast<size_t>(L * D));
  std::vector<int64_t> count(static_cast<size_t>(L));
  double mse = 0;
  for (int it = 0; it <= iters; ++it) {
    vq_nearest_cpu(data, centroids, N, 1, L, D, assign.data(), dist.data());
    mse = 0;
    for (int64_t i = 0; i < N; ++i) mse += dist[size_t(i)];
    mse /= double(N);
    if (it == iters) break;
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(count.begin(), count.end(), 0);
    for (int64_t i = 0; i < N; ++i) {
      int32_t c = assign[size_t(i)];
      ++count[size_t(c)];
      const float* x = data + i * D;
      double* s = sum.data() + c * D;
      for (int64_t e = 0; e < D; ++e) s[e] += x[e];
    }
    // Samples by decreasing distance to their centroid: empty clusters take the farthest ones.
    std::vector<int64_t> far;
    for (int64_t l = 0; l < L; ++l) {
      float* c = centroids + l * D;
      if (count[size_t(l)] > 0) {
        for (int64_t e = 0; e < D; ++e) c[e] = float(sum[size_t(l * D + e)] / double(count[size_t(l)]));
        continue;
      }
      if (far.empty()) {
        far.resize(size_t(N));
        std::iota(far.begin(), far.end(), 0);
        std::stable_sort(far.begin(), far.end(), [&](int64_t x, int64_t y) { return dist[size_t(x)] > dist[size_t(y)]; });
        std::reverse(far.begin(), far.end());  // pop from the back = farthest first
      }
      int64_t s = far.back();
      far.pop_back();
      if (far.empty()) {  // more empty clusters than samples: start over the list
        far.resize(size_t(N));
        std::iota(far.begin(), far.end(), 0);
      }
      std::memcpy(c, data + s * D, size_t(D) * sizeof(float));
    }
  }
  return mse;
}

}  // namespace tokenrec
