// Building blocks of the T5 backbone (see tokenrec/t5.h): relative position buckets and bias,
// RMS norm, multi-head attention core. Forward and backward, multi-threaded over rows / heads.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tokenrec/error.h"
#include "tokenrec/parallel.h"
#include "tokenrec/t5.h"

namespace tokenrec::t5 {
namespace {

inline void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

int64_t relative_position_bucket(int64_t rel, bool bidirectional, int64_t num_buckets, int64_t max_distance) {
  int64_t bucket = 0;
  int64_t n = num_buckets;
  if (bidirectional) {
    n /= 2;
    if (rel > 0) bucket += n;  // keys after the query use the upper half
    rel = rel < 0 ? -rel : rel;
  } else {
    rel = rel < 0 ? -rel : 0;  // only the past counts; the future shares bucket 0
  }
  int64_t max_exact = n / 2;
  if (rel < max_exact) return bucket + rel;
  // Log-spaced buckets between max_exact and max_distance. Computed in float32 as the reference
  // implementations do, so that bucket edges agree exactly.
  float ratio = std::log(float(rel) / float(max_exact)) / float(std::log(double(max_distance) / double(max_exact)));
  int64_t large = max_exact + int64_t(ratio * float(n - max_exact));
  return bucket + std::min(large, n - 1);
}

void position_bias_forward(const float* table, int64_t H, int64_t Lq, int64_t Lk, bool bidirectional,
                           int64_t num_buckets, int64_t max_distance, float* bias) {
  for (int64_t i = 0; i < Lq; ++i)
    for (int64_t j = 0; j < Lk; ++j) {
      int64_t bk = relative_position_bucket(j - i, bidirectional, num_buckets, max_distance);
      for (int64_t h = 0; h < H; ++h) bias[(h * Lq + i) * Lk + j] = table[bk * H + h];
    }
}

void position_bias_backward(const float* dbias, int64_t H, int64_t Lq, int64_t Lk, bool bidirectional,
                            int64_t num_buckets, int64_t max_distance, float* dtable) {
  // Serial: a deterministic scatter-add (the table is tiny).
  for (int64_t i = 0; i < Lq; ++i)
    for (int64_t j = 0; j < Lk; ++j) {
      int64_t bk = relative_position_bucket(j - i, bidirectional, num_buckets, max_distance);
      for (int64_t h = 0; h < H; ++h) dtable[bk * H + h] += dbias[(h * Lq + i) * Lk + j];
    }
}

void rmsnorm_forward(const float* x, const float* w, int64_t N, int64_t D, float eps, float* y, float* inv_rms) {
  parallel_for(0, N, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      const float* xr = x + n * D;
      double ss = 0;
      for (int64_t i = 0; i < D; ++i) ss += double(xr[i]) * xr[i];
      float r = float(1.0 / std::sqrt(ss / double(D) + double(eps)));
      inv_rms[n] = r;
      for (int64_t i = 0; i < D; ++i) y[n * D + i] = w[i] * (xr[i] * r);
    }
  });
}

void rmsnorm_backward(const float* x, const float* w, const float* inv_rms, const float* dy, int64_t N, int64_t D,
                      float* dx, bool accumulate, float* dw) {
  // y_i = w_i x_i r, r = (mean(x^2) + eps)^-1/2, dr/dx_i = -r^3 x_i / D
  // dx_i = r w_i dy_i - x_i r^3 / D * sum_j w_j dy_j x_j
  parallel_for(0, N, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      const float *xr = x + n * D, *g = dy + n * D;
      float r = inv_rms[n];
      double s = 0;
      for (int64_t i = 0; i < D; ++i) s += double(w[i]) * g[i] * xr[i];
      float c = float(s * double(r) * r * r / double(D));
      float* o = dx + n * D;
      if (accumulate)
        for (int64_t i = 0; i < D; ++i) o[i] += r * w[i] * g[i] - c * xr[i];
      else
        for (int64_t i = 0; i < D; ++i) o[i] = r * w[i] * g[i] - c * xr[i];
    }
  });
  // dw_i = sum_n dy_ni x_ni r_n: split over columns so each thread owns a slice of dw.
  parallel_for(0, D, 32, [&](int64_t lo, int64_t hi) {
    std::vector<double> acc(size_t(hi - lo), 0.0);
    for (int64_t n = 0; n < N; ++n) {
      float r = inv_rms[n];
      const float *xr = x + n * D, *g = dy + n * D;
      for (int64_t i = lo; i < hi; ++i) acc[size_t(i - lo)] += double(g[i] * xr[i] * r);
    }
    for (int64_t i = lo; i < hi; ++i) dw[i] += float(acc[size_t(i - lo)]);
  });
}

void attention_forward(const AttnDims& d, const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                       int64_t ldv, const float* bias, const int32_t* key_mask, bool causal, const float* drop,
                       float* probs, float* ctx) {
  const int64_t B = d.B, Lq = d.Lq, Lk = d.Lk, H = d.H, dk = d.dk, inner = H * dk;
  parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
    // This head's keys transposed, (dk, Lk): a score row is then dk contiguous axpys over Lk,
    // which vectorise, instead of Lk short dot products.
    std::vector<float> kt(static_cast<size_t>(dk * Lk));
    for (int64_t bh = lo; bh < hi; ++bh) {
      int64_t b = bh / H, h = bh % H;
      for (int64_t j = 0; j < Lk; ++j) {
        const float* kj = k + (b * Lk + j) * ldk + h * dk;
        for (int64_t x = 0; x < dk; ++x) kt[size_t(x * Lk + j)] = kj[x];
      }
      for (int64_t i = 0; i < Lq; ++i) {
        float* p = probs + (bh * Lq + i) * Lk;
        const float* qi = q + (b * Lq + i) * ldq + h * dk;
        std::fill(p, p + Lk, 0.f);
        for (int64_t x = 0; x < dk; ++x) axpy(qi[x], kt.data() + x * Lk, p, Lk);
        const float* bi = bias ? bias + (h * Lq + i) * Lk : nullptr;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < Lk; ++j) {
          bool allowed = (!key_mask || key_mask[b * Lk + j]) && (!causal || j <= i);
          if (!allowed) {
            p[j] = -std::numeric_limits<float>::infinity();
            continue;
          }
          if (bi) p[j] += bi[j];
          mx = std::max(mx, p[j]);
        }
        if (mx == -std::numeric_limits<float>::infinity())
          fail(ErrorCode::InvalidArgument, "attention: query ", i, " of sequence ", b, " has no key to attend to (all padding)");
        double sum = 0;
        for (int64_t j = 0; j < Lk; ++j) {
          float e = p[j] == -std::numeric_limits<float>::infinity() ? 0.f : std::exp(p[j] - mx);
          p[j] = e;
          sum += e;
        }
        float inv = float(1.0 / sum);
        for (int64_t j = 0; j < Lk; ++j) p[j] *= inv;
        float* c = ctx + (b * Lq + i) * inner + h * dk;
        std::fill(c, c + dk, 0.f);
        const float* dr = drop ? drop + (bh * Lq + i) * Lk : nullptr;
        for (int64_t j = 0; j < Lk; ++j) {
          float pj = dr ? p[j] * dr[j] : p[j];
          if (pj != 0.f) axpy(pj, v + (b * Lk + j) * ldv + h * dk, c, dk);
        }
      }
    }
  });
}

void attention_backward(const AttnDims& d, const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                        int64_t ldv, const float* drop, const float* probs, const float* dctx, float* dq, float* dk_out,
                        float* dv, float* dbias) {
  const int64_t B = d.B, Lq = d.Lq, Lk = d.Lk, H = d.H, dk = d.dk, inner = H * dk;
  // dS of every (b, h), kept when the bias gradient is wanted so that it can be summed over b
  // in a fixed order afterwards (deterministic, no races).
  std::vector<float> dscores(dbias ? size_t(B * H * Lq * Lk) : 0);
  parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> row(static_cast<size_t>(Lk)), vt(static_cast<size_t>(dk * Lk));
    for (int64_t bh = lo; bh < hi; ++bh) {
      int64_t b = bh / H, h = bh % H;
      for (int64_t j = 0; j < Lk; ++j) {
        std::fill(dk_out + (b * Lk + j) * ldk + h * dk, dk_out + (b * Lk + j) * ldk + h * dk + dk, 0.f);
        std::fill(dv + (b * Lk + j) * ldv + h * dk, dv + (b * Lk + j) * ldv + h * dk + dk, 0.f);
        const float* vj = v + (b * Lk + j) * ldv + h * dk;
        for (int64_t x = 0; x < dk; ++x) vt[size_t(x * Lk + j)] = vj[x];  // (dk, Lk), as in forward
      }
      for (int64_t i = 0; i < Lq; ++i) {
        const float* p = probs + (bh * Lq + i) * Lk;
        const float* dr = drop ? drop + (bh * Lq + i) * Lk : nullptr;
        const float* g = dctx + (b * Lq + i) * inner + h * dk;
        const float* qi = q + (b * Lq + i) * ldq + h * dk;
        // dP[j] = (g . v_j) * drop[j]; dv_j += P[j] drop[j] g
        std::fill(row.begin(), row.end(), 0.f);
        for (int64_t x = 0; x < dk; ++x) axpy(g[x], vt.data() + x * Lk, row.data(), Lk);
        double sdp = 0;
        for (int64_t j = 0; j < Lk; ++j) {
          float m = dr ? dr[j] : 1.f;
          if (p[j] == 0.f || m == 0.f) {  // masked, underflowed or dropped: no gradient through here
            row[size_t(j)] = 0.f;
            continue;
          }
          axpy(p[j] * m, g, dv + (b * Lk + j) * ldv + h * dk, dk);
          row[size_t(j)] *= m;
          sdp += double(row[size_t(j)]) * p[j];
        }
        // softmax backward: dS = P * (dP - sum(P dP))
        float* dqi = dq + (b * Lq + i) * ldq + h * dk;
        std::fill(dqi, dqi + dk, 0.f);
        float* dsrow = dbias ? dscores.data() + (bh * Lq + i) * Lk : nullptr;
        for (int64_t j = 0; j < Lk; ++j) {
          float ds = p[j] * (row[size_t(j)] - float(sdp));
          if (dsrow) dsrow[j] = ds;
          if (ds == 0.f) continue;
          axpy(ds, k + (b * Lk + j) * ldk + h * dk, dqi, dk);
          axpy(ds, qi, dk_out + (b * Lk + j) * ldk + h * dk, dk);
        }
      }
    }
  });
  if (dbias) {
    parallel_for(0, H * Lq, 4, [&](int64_t lo, int64_t hi) {
      for (int64_t hi_ = lo; hi_ < hi; ++hi_) {
        int64_t h = hi_ / Lq, i = hi_ % Lq;
        float* o = dbias + (h * Lq + i) * Lk;
        for (int64_t b = 0; b < B; ++b) {
          const float* s = dscores.data() + ((b * H + h) * Lq + i) * Lk;
          for (int64_t j = 0; j < Lk; ++j) o[j] += s[j];
        }
      }
    });
  }
}

}  // namespace tokenrec::t5
