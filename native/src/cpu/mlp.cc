#include "tokenrec/mlp.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tokenrec/error.h"
#include "tokenrec/gemm.h"
#include "tokenrec/parallel.h"

namespace tokenrec {

void MlpShape::validate(const char* what) const {
  require(dims.size() >= 2, what, ": an MLP needs at least one layer (got ", dims.size(), " widths)");
  for (size_t i = 0; i < dims.size(); ++i)
    require(dims[i] > 0 && dims[i] <= (int64_t(1) << 24), what, ": layer width ", i, " must be in [1, 2^24], got ", dims[i]);
}

int64_t MlpShape::num_params() const {
  int64_t n = 0;
  for (int64_t l = 0; l < layers(); ++l) n += dims[size_t(l + 1)] * (dims[size_t(l)] + 1);
  return n;
}

int64_t MlpShape::weight_offset(int64_t l) const {
  int64_t n = 0;
  for (int64_t i = 0; i < l; ++i) n += dims[size_t(i + 1)] * (dims[size_t(i)] + 1);
  return n;
}

int64_t MlpShape::acts_size(int64_t B) const {
  int64_t s = 0;
  for (int64_t w : dims) s += w;
  return B * s;
}

int64_t MlpShape::acts_offset(int64_t l, int64_t B) const {
  int64_t s = 0;
  for (int64_t i = 0; i < l; ++i) s += dims[size_t(i)];
  return B * s;
}

void mlp_init(const MlpShape& shape, uint64_t seed, float* params) {
  shape.validate("mlp_init");
  uint64_t state = mix64(seed ^ 0x5851F42D4C957F2Dull);
  auto uniform = [&state] {  // splitmix64 stream, 24-bit uniforms in [0, 1)
    state += 0x9E3779B97F4A7C15ull;
    return float(mix64(state) >> 40) * (1.0f / 16777216.0f);
  };
  for (int64_t l = 0; l < shape.layers(); ++l) {
    int64_t in = shape.dims[size_t(l)], out = shape.dims[size_t(l + 1)];
    float bound = 1.0f / std::sqrt(float(in));
    float* w = params + shape.weight_offset(l);
    for (int64_t i = 0; i < out * (in + 1); ++i) w[i] = (2.f * uniform() - 1.f) * bound;  // W then b
  }
}

static void check_finite(const float* x, int64_t n, const char* name) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) fail(ErrorCode::NotFinite, name, "[", i, "] is not finite (", x[i], ")");
}

void mlp_forward_cpu(const MlpShape& s, const float* params, const float* x, int64_t B, const MaskSpec* mask,
                     float* acts) {
  s.validate("mlp_forward");
  require(B >= 0, "mlp_forward: batch size must be >= 0, got ", B);
  if (B == 0) return;
  require(params && x && acts, "mlp_forward: params, x and acts are required");
  require(!mask || (mask->rate >= 0.f && mask->rate < 1.f), "mlp_forward: mask rate must be in [0, 1), got ",
          mask ? mask->rate : 0.f);
  const int64_t d0 = s.in();
  check_finite(x, B * d0, "mlp_forward: x");
  // X_0 = x (masked). The mask is applied while copying into the layer's input panel, so the
  // caller's array is never written and backward sees exactly what forward used.
  float* x0 = acts;
  parallel_for(0, B, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      const float* src = x + b * d0;
      float* dst = x0 + b * d0;
      if (mask && mask->rate > 0.f) {
        uint64_t row = mask->row_ids ? uint64_t(uint32_t(mask->row_ids[b])) : uint64_t(b);
        for (int64_t j = 0; j < d0; ++j) dst[j] = mask_keep(*mask, row, uint64_t(j)) ? src[j] : 0.f;
      } else {
        std::memcpy(dst, src, size_t(d0) * sizeof(float));
      }
    }
  });
  for (int64_t l = 0; l < s.layers(); ++l) {
    int64_t in = s.dims[size_t(l)], out = s.dims[size_t(l + 1)];
    const float* W = params + s.weight_offset(l);
    const float* bias = params + s.bias_offset(l);
    const float* X = acts + s.acts_offset(l, B);
    float* Y = acts + s.acts_offset(l + 1, B);
    // Y (B, out) = bias broadcast, then += X (B, in) W^T (in, out)
    for (int64_t b = 0; b < B; ++b) std::memcpy(Y + b * out, bias, size_t(out) * sizeof(float));
    sgemm(false, true, B, out, in, 1.f, X, in, W, in, 1.f, Y, out);
    if (l + 1 < s.layers())
      parallel_for(0, B * out, 1 << 14, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) Y[i] = Y[i] > 0.f ? Y[i] : 0.f;
      });
  }
}

void mlp_backward_cpu(const MlpShape& s, const float* params, const float* acts, int64_t B, const float* dy,
                      float* grads, float* dx, bool accumulate) {
  s.validate("mlp_backward");
  require(B >= 0, "mlp_backward: batch size must be >= 0, got ", B);
  require(params && acts && grads && (B == 0 || dy), "mlp_backward: params, acts, dy and grads are required");
  if (B == 0) {
    if (!accumulate) std::fill(grads, grads + s.num_params(), 0.f);
    return;
  }
  // g holds dL/dY_l of the current layer (post-activation gradient, masked by ReLU' below).
  std::vector<float> g(dy, dy + B * s.out()), gprev;
  for (int64_t l = s.layers() - 1; l >= 0; --l) {
    int64_t in = s.dims[size_t(l)], out = s.dims[size_t(l + 1)];
    const float* W = params + s.weight_offset(l);
    const float* X = acts + s.acts_offset(l, B);
    float* dW = grads + s.weight_offset(l);
    float* db = grads + s.bias_offset(l);
    const float beta = accumulate ? 1.f : 0.f;
    // dW (out, in) = g^T (out, B) X (B, in)
    sgemm(true, false, out, in, B, 1.f, g.data(), out, X, in, beta, dW, in);
    // db = column sums of g, in ascending b (deterministic)
    parallel_for(0, out, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        float acc = 0.f;
        for (int64_t b = 0; b < B; ++b) acc += g[size_t(b * out + o)];
        db[o] = accumulate ? db[o] + acc : acc;
      }
    });
    if (l == 0 && !dx) break;
    // dX (B, in) = g (B, out) W (out, in), then ReLU' of the layer below (X_l > 0) unless l == 0.
    float* dst;
    if (l == 0) {
      dst = dx;
    } else {
      gprev.resize(size_t(B * in));
      dst = gprev.data();
    }
    sgemm(false, false, B, in, out, 1.f, g.data(), out, W, in, 0.f, dst, in);
    if (l > 0) {
      parallel_for(0, B * in, 1 << 14, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i)
          if (!(X[i] > 0.f)) dst[i] = 0.f;
      });
      g.swap(gprev);
    }
  }
}

#ifndef TOKENREC_HAVE_CUDA
void mlp_forward_cuda(const MlpShape&, const float*, const float*, int64_t, const MaskSpec*, float*) {
  fail(ErrorCode::Cuda, "mlp_forward: CUDA kernels were not compiled into this build");
}
void mlp_backward_cuda(const MlpShape&, const float*, const float*, int64_t, const float*, float*, float*, bool) {
  fail(ErrorCode::Cuda, "mlp_backward: CUDA kernels were not compiled into this build");
}
#endif

}  // namespace tokenrec
