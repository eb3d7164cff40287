// CPU kernels and trainer of the collaborative-filtering stage (include/tokenrec/cf.h).
#include "tokenrec/cf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "tokenrec/error.h"
#include "tokenrec/parallel.h"

namespace tokenrec {

namespace {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform integer in [0, n) (Lemire's multiply-shift; the bias for n < 2^31 is below 2^-32).
inline int64_t below(uint64_t& s, int64_t n) {
  return int64_t((unsigned __int128)(splitmix64(s) >> 32) * uint64_t(n) >> 32);
}

inline double uniform01(uint64_t& s) { return double(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0); }

// log(1 + exp(x)) without overflow.
inline double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
inline double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }

void require_finite_vec(const float* x, int64_t n, const char* name) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) fail(ErrorCode::NotFinite, name, "[", i, "] is not finite (", x[i], ")");
}

void check_batch(const BprBatch& b, int64_t U, int64_t I) {
  require(b.B > 0, "cf: batch size must be > 0, got ", b.B);
  require(b.users && b.pos && b.neg, "cf: batch users, pos and neg are required");
  for (int64_t k = 0; k < b.B; ++k) {
    if (b.users[k] < 0 || b.users[k] >= U)
      fail(ErrorCode::OutOfRange, "cf: batch users[", k, "] = ", b.users[k], " is outside [0, ", U, ")");
    if (b.pos[k] < 0 || b.pos[k] >= I)
      fail(ErrorCode::OutOfRange, "cf: batch pos[", k, "] = ", b.pos[k], " is outside [0, ", I, ")");
    if (b.neg[k] < 0 || b.neg[k] >= I)
      fail(ErrorCode::OutOfRange, "cf: batch neg[", k, "] = ", b.neg[k], " is outside [0, ", I, ")");
  }
}

inline float dot(const float* a, const float* b, int64_t D) {
  float s = 0.f;
  for (int64_t d = 0; d < D; ++d) s += a[d] * b[d];
  return s;
}

}  // namespace

CfGraph build_cf_graph(int64_t U, int64_t I, const int32_t* train_ptr, const int32_t* train_idx) {
  require(U > 0, "cf: number of users must be > 0, got ", U);
  require(I > 0, "cf: number of items must be > 0, got ", I);
  require(U + I < std::numeric_limits<int32_t>::max(), "cf: too many nodes (", U + I, ")");
  require(train_ptr != nullptr, "cf: train offsets are required");
  require(train_ptr[0] == 0, "cf: trainPtr[0] must be 0, got ", train_ptr[0]);
  for (int64_t u = 0; u < U; ++u)
    require(train_ptr[u + 1] >= train_ptr[u], "cf: trainPtr must be non-decreasing (trainPtr[", u + 1,
            "] = ", train_ptr[u + 1], " < trainPtr[", u, "] = ", train_ptr[u], ")");
  CfGraph g;
  g.num_users = U;
  g.num_items = I;
  g.uptr.assign(size_t(U + 1), 0);
  g.uidx.reserve(size_t(train_ptr[U]));
  for (int64_t u = 0; u < U; ++u) {
    size_t start = g.uidx.size();
    for (int32_t k = train_ptr[u]; k < train_ptr[u + 1]; ++k) {
      int32_t i = train_idx[k];
      if (i < 0 || i >= I)
        fail(ErrorCode::OutOfRange, "cf: trainIdx[", k, "] = ", i, " (user ", u, ") is outside [0, ", I, ")");
      g.uidx.push_back(i);
    }
    std::sort(g.uidx.begin() + long(start), g.uidx.end());
    g.uidx.erase(std::unique(g.uidx.begin() + long(start), g.uidx.end()), g.uidx.end());
    g.uptr[size_t(u + 1)] = int32_t(g.uidx.size());
  }
  const int64_t nnz = int64_t(g.uidx.size());
  require(nnz > 0, "cf: the training split has no interactions (nothing to train on)");
  require(2 * nnz < std::numeric_limits<int32_t>::max(), "cf: too many interactions (", nnz, ")");
  const int64_t N = U + I;
  std::vector<int32_t> deg(size_t(N), 0);
  for (int64_t u = 0; u < U; ++u) {
    deg[size_t(u)] = g.uptr[size_t(u + 1)] - g.uptr[size_t(u)];
    for (int32_t k = g.uptr[size_t(u)]; k < g.uptr[size_t(u + 1)]; ++k) ++deg[size_t(U + g.uidx[size_t(k)])];
  }
  g.ptr.assign(size_t(N + 1), 0);
  for (int64_t r = 0; r < N; ++r) g.ptr[size_t(r + 1)] = g.ptr[size_t(r)] + deg[size_t(r)];
  g.idx.resize(size_t(2 * nnz));
  g.val.resize(size_t(2 * nnz));
  std::vector<int32_t> fill(g.ptr.begin(), g.ptr.end() - 1);
  // User rows first (items ascending), then item rows: users are visited in ascending order, so
  // each item row's user columns come out ascending too.
  for (int64_t u = 0; u < U; ++u)
    for (int32_t k = g.uptr[size_t(u)]; k < g.uptr[size_t(u + 1)]; ++k) {
      int64_t it = U + g.uidx[size_t(k)];
      float w = float(1.0 / std::sqrt(double(deg[size_t(u)]) * double(deg[size_t(it)])));
      g.idx[size_t(fill[size_t(u)])] = int32_t(it);
      g.val[size_t(fill[size_t(u)]++)] = w;
      g.idx[size_t(fill[size_t(it)])] = int32_t(u);
      g.val[size_t(fill[size_t(it)]++)] = w;
    }
  return g;
}

void cf_spmm_cpu(const CsrView& A, const float* x, int64_t D, float* y) {
  require(D > 0, "cf: dimension must be > 0, got ", D);
  // Rows of similar cost: ~64 rows per chunk keeps claiming overhead negligible.
  parallel_for(0, A.rows, 64, [&](int64_t lo, int64_t hi) {
    if (D % 32 == 0) {
      // Rows of 32-float panels: four 8-wide accumulators (GCC vector extension: ymm registers
      // on AVX2) stay in registers across the row's non-zeros.
      typedef float v8 __attribute__((vector_size(32)));
      for (int64_t r = lo; r < hi; ++r) {
        const int32_t s = A.ptr[r], e = A.ptr[r + 1];
        for (int64_t d0 = 0; d0 < D; d0 += 32) {
          v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
          for (int32_t k = s; k < e; ++k) {
            const float w = A.val[k];
            const v8 wv = {w, w, w, w, w, w, w, w};
            const float* xr = x + int64_t(A.idx[k]) * D + d0;
            v8 x0, x1, x2, x3;
            std::memcpy(&x0, xr, 32);
            std::memcpy(&x1, xr + 8, 32);
            std::memcpy(&x2, xr + 16, 32);
            std::memcpy(&x3, xr + 24, 32);
            a0 += wv * x0;
            a1 += wv * x1;
            a2 += wv * x2;
            a3 += wv * x3;
          }
          float* yr = y + r * D + d0;
          std::memcpy(yr, &a0, 32);
          std::memcpy(yr + 8, &a1, 32);
          std::memcpy(yr + 16, &a2, 32);
          std::memcpy(yr + 24, &a3, 32);
        }
      }
      return;
    }
    for (int64_t r = lo; r < hi; ++r) {
      float* yr = y + r * D;
      std::fill(yr, yr + D, 0.f);
      for (int32_t k = A.ptr[r]; k < A.ptr[r + 1]; ++k) {
        const float w = A.val[k];
        const float* xr = x + int64_t(A.idx[k]) * D;
        for (int64_t d = 0; d < D; ++d) yr[d] += w * xr[d];
      }
    }
  });
}

// Shared driver: out = (x + A x + ... + A^L x) / (L+1), with two ping-pong buffers.
template <typename Spmm>
static void propagate_with(const CsrView& A, const float* x, int64_t D, int L, float* out, Spmm spmm) {
  require(L >= 0, "cf: layers must be >= 0, got ", L);
  require(A.rows == A.cols, "cf: the adjacency must be square");
  const int64_t n = A.rows * D;
  if (L == 0) {
    std::memcpy(out, x, size_t(n) * sizeof(float));
    return;
  }
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  std::memcpy(out, x, size_t(n) * sizeof(float));
  const float* cur = x;
  for (int l = 1; l <= L; ++l) {
    float* nxt = (l % 2) ? a.data() : b.data();
    spmm(A, cur, D, nxt);
    const float scale = (l == L) ? 1.f / float(L + 1) : 1.f;
    parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
      if (scale == 1.f)
        for (int64_t i = lo; i < hi; ++i) out[i] += nxt[i];
      else
        for (int64_t i = lo; i < hi; ++i) out[i] = (out[i] + nxt[i]) * scale;
    });
    cur = nxt;
  }
}

void cf_propagate_cpu(const CsrView& A, const float* x, int64_t D, int L, float* out) {
  propagate_with(A, x, D, L, out, cf_spmm_cpu);
}

double bpr_loss_grad_cpu(const float* F, int64_t U, int64_t I, int64_t D, const BprBatch& b, float* G) {
  check_batch(b, U, I);
  // Per-sample coefficient c = dLoss/ds_neg = -dLoss/ds_pos = sigmoid(s_neg - s_pos) / B, computed
  // in parallel; the scatter then runs in batch order so that repeated rows always sum the same way.
  std::vector<float> coef(size_t(b.B));
  std::vector<double> loss(size_t(b.B));
  parallel_for(0, b.B, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) {
      const float* fu = F + int64_t(b.users[k]) * D;
      const float* fp = F + (U + b.pos[k]) * D;
      const float* fn = F + (U + b.neg[k]) * D;
      double x = double(dot(fu, fn, D)) - double(dot(fu, fp, D));
      loss[size_t(k)] = softplus(x);
      coef[size_t(k)] = float(sigmoid(x) / double(b.B));
    }
  });
  double total = 0;
  for (int64_t k = 0; k < b.B; ++k) {
    total += loss[size_t(k)];
    const float c = coef[size_t(k)];
    const int64_t u = b.users[k], p = U + b.pos[k], n = U + b.neg[k];
    const float *fu = F + u * D, *fp = F + p * D, *fn = F + n * D;
    float *gu = G + u * D, *gp = G + p * D, *gn = G + n * D;
    // d/dF_u = c (F_n - F_p); d/dF_p = -c F_u; d/dF_n = c F_u.
    for (int64_t d = 0; d < D; ++d) {
      gu[d] += c * (fn[d] - fp[d]);
      gp[d] -= c * fu[d];
      gn[d] += c * fu[d];
    }
  }
  return total / double(b.B);
}

double l2_reg_grad_cpu(const float* E, int64_t U, int64_t D, const BprBatch& b, float lambda, float* G) {
  double sq = 0;
  const float s = lambda / float(b.B);
  for (int64_t k = 0; k < b.B; ++k) {
    const int64_t rows[3] = {b.users[k], U + b.pos[k], U + b.neg[k]};
    for (int64_t r : rows) {
      const float* e = E + r * D;
      float* g = G + r * D;
      for (int64_t d = 0; d < D; ++d) {
        sq += double(e[d]) * e[d];
        g[d] += s * e[d];
      }
    }
  }
  return 0.5 * sq / double(b.B);
}

void adam_step_cpu(float* p, const float* g, float* m, float* v, int64_t n, const AdamConfig& c, int64_t t) {
  require(t >= 1, "adam: step must be >= 1, got ", t);
  const float b1 = c.beta1, b2 = c.beta2;
  const float bc1 = float(1.0 - std::pow(double(b1), double(t)));
  const float bc2 = float(1.0 - std::pow(double(b2), double(t)));
  const float step = c.lr / bc1, inv_sqrt_bc2 = 1.f / std::sqrt(bc2);
  parallel_for(0, n, 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      m[i] = b1 * m[i] + (1.f - b1) * g[i];
      v[i] = b2 * v[i] + (1.f - b2) * g[i] * g[i];
      p[i] -= step * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + c.eps);
    }
  });
}

#ifndef TOKENREC_HAVE_CUDA
void cf_spmm_cuda(const CsrView&, const float*, int64_t, float*) {
  fail(ErrorCode::Cuda, "cf: CUDA kernels were not compiled into this build");
}
void cf_propagate_cuda(const CsrView&, const float*, int64_t, int, float*) {
  fail(ErrorCode::Cuda, "cf: CUDA kernels were not compiled into this build");
}
double bpr_loss_grad_cuda(const float*, int64_t, int64_t, int64_t, const BprBatch&, float*) {
  fail(ErrorCode::Cuda, "cf: CUDA kernels were not compiled into this build");
}
void adam_step_cuda(float*, const float*, float*, float*, int64_t, const AdamConfig&, int64_t) {
  fail(ErrorCode::Cuda, "cf: CUDA kernels were not compiled into this build");
}
#endif

BprLoss cf_loss_grad(const CfGraph& g, const float* E, int64_t D, int L, const BprBatch& batch, float lambda,
                     float* grad_E, std::vector<float>& scratch, bool cuda) {
  const int64_t N = g.nodes(), n = N * D;
  check_batch(batch, g.num_users, g.num_items);
  scratch.resize(size_t(2 * n));
  float* F = scratch.data();
  float* GF = scratch.data() + n;
  const CsrView A = g.view();
  BprLoss out;
  if (L == 0) {
    // MF: F = E, no propagation.
    std::fill(grad_E, grad_E + n, 0.f);
    out.bpr = cuda ? bpr_loss_grad_cuda(E, g.num_users, g.num_items, D, batch, grad_E)
                   : bpr_loss_grad_cpu(E, g.num_users, g.num_items, D, batch, grad_E);
  } else {
    cuda ? cf_propagate_cuda(A, E, D, L, F) : cf_propagate_cpu(A, E, D, L, F);
    std::fill(GF, GF + n, 0.f);
    out.bpr = cuda ? bpr_loss_grad_cuda(F, g.num_users, g.num_items, D, batch, GF)
                   : bpr_loss_grad_cpu(F, g.num_users, g.num_items, D, batch, GF);
    // Backward of the (symmetric, linear) propagation is the propagation.
    cuda ? cf_propagate_cuda(A, GF, D, L, grad_E) : cf_propagate_cpu(A, GF, D, L, grad_E);
  }
  out.reg = l2_reg_grad_cpu(E, g.num_users, D, batch, lambda, grad_E);
  return out;
}

// ---- trainer ----------------------------------------------------------------------------------

int32_t sample_negative(const CfGraph& g, int64_t u, uint64_t& s) {
  const int32_t* b = g.uidx.data() + g.uptr[size_t(u)];
  const int32_t* e = g.uidx.data() + g.uptr[size_t(u + 1)];
  if (e - b >= g.num_items)
    fail(ErrorCode::InvalidArgument, "cf: user ", u, " has interacted with every item: no negative to sample");
  for (;;) {
    int32_t j = int32_t(below(s, g.num_items));
    if (!std::binary_search(b, e, j)) return j;
  }
}

CfTrainer::CfTrainer(int64_t U, int64_t I, const int32_t* train_ptr, const int32_t* train_idx, const CfTrainConfig& c)
    : c_(c) {
  require(c.dim > 0, "cf: dim must be > 0, got ", c.dim);
  require(c.layers >= 0 && c.layers <= 16, "cf: layers must be in [0, 16], got ", c.layers);
  require(c.batch_size > 0, "cf: batchSize must be > 0, got ", c.batch_size);
  require(std::isfinite(c.lambda) && c.lambda >= 0, "cf: l2 weight must be finite and >= 0, got ", c.lambda);
  require(std::isfinite(c.adam.lr) && c.adam.lr > 0, "cf: learning rate must be > 0, got ", c.adam.lr);
  require(std::isfinite(c.init_std) && c.init_std > 0, "cf: initStd must be > 0, got ", c.init_std);
  g_ = build_cf_graph(U, I, train_ptr, train_idx);
  for (int64_t u = 0; u < U; ++u)
    if (g_.uptr[size_t(u + 1)] - g_.uptr[size_t(u)] >= I)
      fail(ErrorCode::InvalidArgument, "cf: user ", u, " has interacted with every item: BPR has no negative for it");
  const size_t n = size_t(g_.nodes() * c.dim);
  E_.resize(n);
  m_.assign(n, 0.f);
  v_.assign(n, 0.f);
  grad_.resize(n);
  // N(0, init_std^2) by Box-Muller from the seed: the same seed gives the same start.
  uint64_t s = c.seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
  for (size_t i = 0; i < n; i += 2) {
    double u1 = uniform01(s), u2 = uniform01(s);
    double r = std::sqrt(-2.0 * std::log(1.0 - u1)), th = 6.283185307179586 * u2;
    E_[i] = float(c.init_std * r * std::cos(th));
    if (i + 1 < n) E_[i + 1] = float(c.init_std * r * std::sin(th));
  }
}

int64_t CfTrainer::begin_epoch(int64_t epoch) {
  require(epoch >= 0, "cf: epoch must be >= 0, got ", epoch);
  const int64_t nnz = g_.interactions();
  su_.resize(size_t(nnz));
  sp_.resize(size_t(nnz));
  sn_.resize(size_t(nnz));
  // Every training interaction once, in a seeded Fisher-Yates order.
  std::vector<int32_t> order(static_cast<size_t>(nnz));
  std::iota(order.begin(), order.end(), 0);
  uint64_t s = (c_.seed + 1) * 0xD1B54A32D192ED03ull ^ (uint64_t(epoch) + 1) * 0x9E3779B97F4A7C15ull;
  for (int64_t k = nnz - 1; k > 0; --k) std::swap(order[size_t(k)], order[size_t(below(s, k + 1))]);
  // Row of each interaction: binary search in uptr.
  for (int64_t k = 0; k < nnz; ++k) {
    int32_t e = order[size_t(k)];
    int64_t u = int64_t(std::upper_bound(g_.uptr.begin(), g_.uptr.end(), e) - g_.uptr.begin()) - 1;
    su_[size_t(k)] = int32_t(u);
    sp_[size_t(k)] = g_.uidx[size_t(e)];
    sn_[size_t(k)] = sample_negative(g_, u, s);
  }
  num_batches_ = (nnz + c_.batch_size - 1) / c_.batch_size;
  next_batch_ = 0;
  return num_batches_;
}

EpochStats CfTrainer::train_batches(int64_t n) {
  EpochStats st;
  const int64_t D = c_.dim, total = g_.nodes() * D;
  for (; n > 0 && next_batch_ < num_batches_; --n, ++next_batch_) {
    const int64_t lo = next_batch_ * c_.batch_size;
    const int64_t hi = std::min<int64_t>(lo + c_.batch_size, int64_t(su_.size()));
    BprBatch b{su_.data() + lo, sp_.data() + lo, sn_.data() + lo, hi - lo};
    BprLoss l = cf_loss_grad(g_, E_.data(), D, c_.layers, b, c_.lambda, grad_.data(), scratch_, c_.cuda);
    if (!std::isfinite(l.bpr) || !std::isfinite(l.reg))
      fail(ErrorCode::NotFinite, "cf: the loss became non-finite at step ", t_ + 1,
           " (learning rate too high?)");
    ++t_;
    c_.cuda ? adam_step_cuda(E_.data(), grad_.data(), m_.data(), v_.data(), total, c_.adam, t_)
            : adam_step_cpu(E_.data(), grad_.data(), m_.data(), v_.data(), total, c_.adam, t_);
    st.batches++;
    st.samples += b.B;
    st.bpr_sum += l.bpr;
    st.reg_sum += l.reg;
  }
  return st;
}

void CfTrainer::set_state(const float* E, const float* m, const float* v, int64_t n, int64_t t) {
  require(n == int64_t(E_.size()), "cf: state has ", n, " values per tensor, the model needs ", E_.size());
  require(t >= 0, "cf: step must be >= 0, got ", t);
  require_finite_vec(E, n, "ego");
  require_finite_vec(m, n, "adamM");
  require_finite_vec(v, n, "adamV");
  for (int64_t i = 0; i < n; ++i)
    require(v[i] >= 0, "cf: adamV[", i, "] = ", v[i], " is negative (a second moment cannot be)");
  std::copy(E, E + n, E_.begin());
  std::copy(m, m + n, m_.begin());
  std::copy(v, v + n, v_.begin());
  t_ = t;
}

void CfTrainer::final_vectors(float* out) const {
  c_.cuda ? cf_propagate_cuda(g_.view(), E_.data(), c_.dim, c_.layers, out)
          : cf_propagate_cpu(g_.view(), E_.data(), c_.dim, c_.layers, out);
}

// ---- fold-in ----------------------------------------------------------------------------------

namespace {

// Fold-in scores <f, F_i> with defined rounding: each product rounded to float, then summed over
// d in ascending order, with no fused multiply-add. That is what the original per-pair dot() gave
// for D a multiple of 8 (GCC computes its products in vector registers, then adds them in order;
// checked against the previous build for D = 8, 16, 24, 40, 64, 96, while D = 13 differed in the
// last bit, where its scalar tail fused), and it lets the two scoring strategies below agree bit
// for bit for every D: left to itself, the compiler fuses some multiply-adds of one loop and not
// of the other.
#if defined(__GNUC__) && !defined(__clang__)
#define TOKENREC_NO_FMA __attribute__((noinline, optimize("fp-contract=off")))
#else
#define TOKENREC_NO_FMA __attribute__((noinline))
#endif

// <f, x>: f, x (D).
TOKENREC_NO_FMA float score_dot(const float* f, const float* x, int64_t D) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  float s = 0.f;
  for (int64_t d = 0; d < D; ++d) s += f[d] * x[d];
  return s;
}

// out (n) = <f, F_ids[k]>, F (rows, D): the sums of score_dot, four at a time so that four
// independent addition chains overlap (one chain is bound by the adder's latency).
TOKENREC_NO_FMA void score_rows(const float* f, const float* F, int64_t D, const int32_t* ids, int64_t n, float* out) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    const float *x0 = F + int64_t(ids[k]) * D, *x1 = F + int64_t(ids[k + 1]) * D;
    const float *x2 = F + int64_t(ids[k + 2]) * D, *x3 = F + int64_t(ids[k + 3]) * D;
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    for (int64_t d = 0; d < D; ++d) {
      s0 += f[d] * x0[d];
      s1 += f[d] * x1[d];
      s2 += f[d] * x2[d];
      s3 += f[d] * x3[d];
    }
    out[k] = s0;
    out[k + 1] = s1;
    out[k + 2] = s2;
    out[k + 3] = s3;
  }
  for (; k < n; ++k) out[k] = score_dot(f, F + int64_t(ids[k]) * D, D);
}

// score (I) = <f, F_i> for every item, from Ft (D, I) = F transposed: the same sums as score_dot,
// with vector lanes running over items.
TOKENREC_NO_FMA void score_all(const float* f, const float* Ft, int64_t D, int64_t I, float* score) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  std::fill(score, score + I, 0.f);
  for (int64_t d = 0; d < D; ++d) {
    const float fd = f[d];
    const float* row = Ft + d * I;
    for (int64_t i = 0; i < I; ++i) score[i] += fd * row[i];
  }
}

// gr (D) += co[k] * (F[neg[k]] - fp) for k = 0..n-1, each gr[d] summed in k order as the plain
// loop does (its multiply-add fused the same way): F (rows, D), fp (D). With D a multiple of 32,
// gr stays in vector registers across the n rows instead of being loaded and stored per row.
// (A variant for D a multiple of 8 was not bit-identical to the plain loop GCC vectorises for
// D = 8..40: left out.)
void accumulate_pairs(float* gr, const float* F, const float* fp, const int32_t* neg, const float* co, int64_t n,
                      int64_t D) {
  typedef float v8 __attribute__((vector_size(32)));
  auto load = [](const float* p) {
    v8 v;
    std::memcpy(&v, p, 32);
    return v;
  };
  if (D % 32 == 0) {
    for (int64_t d0 = 0; d0 < D; d0 += 32) {
      v8 g0 = load(gr + d0), g1 = load(gr + d0 + 8), g2 = load(gr + d0 + 16), g3 = load(gr + d0 + 24);
      const v8 p0 = load(fp + d0), p1 = load(fp + d0 + 8), p2 = load(fp + d0 + 16), p3 = load(fp + d0 + 24);
      for (int64_t k = 0; k < n; ++k) {
        const float* x = F + int64_t(neg[k]) * D + d0;
        const float w = co[k];
        const v8 c = {w, w, w, w, w, w, w, w};
        g0 += c * (load(x) - p0);
        g1 += c * (load(x + 8) - p1);
        g2 += c * (load(x + 16) - p2);
        g3 += c * (load(x + 24) - p3);
      }
      std::memcpy(gr + d0, &g0, 32);
      std::memcpy(gr + d0 + 8, &g1, 32);
      std::memcpy(gr + d0 + 16, &g2, 32);
      std::memcpy(gr + d0 + 24, &g3, 32);
    }
    return;
  }
  for (int64_t k = 0; k < n; ++k) {
    const float* fn = F + int64_t(neg[k]) * D;
    for (int64_t d = 0; d < D; ++d) gr[d] += co[k] * (fn[d] - fp[d]);
  }
}

void check_fold_in_config(const FoldInConfig& c) {
  require(c.steps >= 0 && c.negatives >= 1, "foldIn: steps must be >= 0 and negatives >= 1");
  require(std::isfinite(c.lr) && c.lr > 0, "foldIn: lr must be > 0, got ", c.lr);
}

}  // namespace

FoldInContext::FoldInContext(int64_t U, int64_t I, const int32_t* train_ptr, const int32_t* train_idx, const float* E,
                             int64_t D, int L)
    : FoldInContext(build_cf_graph(U, I, train_ptr, train_idx), E, D, L) {}

FoldInContext::FoldInContext(const CfGraph& g, const float* E, int64_t D, int L)
    : U_(g.num_users), I_(g.num_items), D_(D), L_(L) {
  require(D > 0, "foldIn: dim must be > 0, got ", D);
  require(L >= 0, "foldIn: layers must be >= 0, got ", L);
  require(E != nullptr, "foldIn: the ego embeddings are required");
  const int64_t U = U_, I = I_, N = g.nodes();
  require_finite_vec(E, N * D, "ego");
  deg_.resize(size_t(I));
  for (int64_t i = 0; i < I; ++i) deg_[size_t(i)] = g.ptr[size_t(U + i + 1)] - g.ptr[size_t(U + i)];
  // Layer outputs X_l = A^l E (the new user's layer l+1 reads the items' layer l) and the final
  // item vectors F = (X_0 + ... + X_L) / (L+1). F is accumulated exactly as cf_propagate_cpu does
  // it (same additions in the same order, the last one scaled), so it has the same bits, from the
  // L sparse products the layers need anyway. Only item rows are kept.
  const size_t ID = size_t(I * D);
  const float* Ei = E + U * D;
  layer_.resize(size_t(L) * ID);
  final_.assign(Ei, Ei + ID);
  if (L > 0) {
    std::copy(Ei, Ei + ID, layer_.begin());
    const CsrView A = g.view();
    std::vector<float> a(size_t(N * D)), b(size_t(N * D));
    const float* cur = E;
    for (int l = 1; l <= L; ++l) {
      float* nxt = (l % 2) ? a.data() : b.data();
      cf_spmm_cpu(A, cur, D, nxt);
      const float* ni = nxt + U * D;
      if (l < L) std::copy(ni, ni + ID, layer_.begin() + long(size_t(l) * ID));
      const float scale = (l == L) ? 1.f / float(L + 1) : 1.f;
      if (scale == 1.f)
        for (size_t k = 0; k < ID; ++k) final_[k] += ni[k];
      else
        for (size_t k = 0; k < ID; ++k) final_[k] = (final_[k] + ni[k]) * scale;
      cur = nxt;
    }
  }
  final_t_.resize(ID);
  for (int64_t i = 0; i < I; ++i)
    for (int64_t d = 0; d < D; ++d) final_t_[size_t(d * I + i)] = final_[size_t(i * D + d)];
}

void cf_fold_in_cpu(const CfGraph& g, const float* E, int64_t D, int L, int64_t B, const int32_t* hist_ptr,
                    const int32_t* hist_idx, const FoldInConfig& c, float* out_final, float* out_ego) {
  require(D > 0, "foldIn: dim must be > 0, got ", D);
  require(L >= 0, "foldIn: layers must be >= 0, got ", L);
  require(B >= 0, "foldIn: number of users must be >= 0, got ", B);
  check_fold_in_config(c);
  if (B == 0) return;
  FoldInContext(g, E, D, L).fold_in(B, hist_ptr, hist_idx, c, out_final, out_ego);
}

void FoldInContext::fold_in(int64_t B, const int32_t* hist_ptr, const int32_t* hist_idx, const FoldInConfig& c,
                            float* out_final, float* out_ego, Scoring scoring) const {
  require(B >= 0, "foldIn: number of users must be >= 0, got ", B);
  check_fold_in_config(c);
  if (B == 0) return;
  require(hist_ptr && hist_ptr[0] == 0, "foldIn: historyPtr[0] must be 0");
  require(out_final && out_ego, "foldIn: output buffers are required");
  const int64_t I = I_;
  for (int64_t b = 0; b < B; ++b) {
    require(hist_ptr[b + 1] >= hist_ptr[b], "foldIn: historyPtr must be non-decreasing at ", b + 1);
    for (int32_t k = hist_ptr[b]; k < hist_ptr[b + 1]; ++k)
      if (hist_idx[k] < 0 || hist_idx[k] >= I)
        fail(ErrorCode::OutOfRange, "foldIn: historyIdx[", k, "] = ", hist_idx[k], " (user ", b, ") is outside [0, ", I, ")");
  }
  parallel_for(0, B, 1, [&](int64_t lo, int64_t hi) {
    std::vector<int32_t> items;
    for (int64_t b = lo; b < hi; ++b) {
      items.assign(hist_idx + hist_ptr[b], hist_idx + hist_ptr[b + 1]);
      std::sort(items.begin(), items.end());
      items.erase(std::unique(items.begin(), items.end()), items.end());
      const int64_t S = int64_t(items.size());
      // Scoring the catalogue streams the (D, I) transposed item matrix once per step; the
      // S*(negatives+1) separate dot products are chains of D dependent additions, four chains
      // at a time. Measured (D = 64, one thread, I = 3646 and 20000): the catalogue wins once
      // a step needs about I dot products.
      const bool all = scoring == Scoring::AllItems ||
                       (scoring == Scoring::Auto && S * (int64_t(c.negatives) + 1) >= I);
      const uint64_t rng = (c.seed + 1) * 0xD1B54A32D192ED03ull ^ (uint64_t(b) + 1) * 0x9E3779B97F4A7C15ull;
      fit_user(items.data(), S, rng, c, all, out_final + b * D_, out_ego + b * D_);
    }
  });
}

// One new user: items (S) sorted and distinct; rng the row's splitmix64 state; out_final,
// out_ego (D).
void FoldInContext::fit_user(const int32_t* items, int64_t S, uint64_t rng, const FoldInConfig& c, bool all_items,
                             float* of, float* oe) const {
  const int64_t D = D_, I = I_;
  const int L = L_;
  if (S == 0) {
    std::fill(of, of + D, 0.f);
    std::fill(oe, oe + D, 0.f);
    return;
  }
  const size_t Ds = static_cast<size_t>(D);
  std::vector<float> cvec(Ds, 0.f), e(Ds, 0.f), m(Ds, 0.f), v(Ds, 0.f), f(Ds), gr(Ds);
  std::vector<float> score(all_items ? size_t(I) : 0);  // (I) <f, F_i> this step (AllItems)
  std::vector<int32_t> neg(size_t(c.negatives));        // one positive's negatives,
  std::vector<float> nscore(size_t(c.negatives));       // their scores
  std::vector<float> coef(size_t(c.negatives));         // and dLoss/d(score difference)
  // Membership of the user's items as a bit set (I bits): the rejection test of every draw, a
  // shift and a mask instead of a binary search's unpredictable branches.
  std::vector<uint64_t> seen(size_t((I + 63) / 64), 0);
  for (int64_t k = 0; k < S; ++k) seen[size_t(items[k]) >> 6] |= uint64_t(1) << (items[k] & 63);
  const float* Fi = final_.data();  // (I, D) final item vectors
  const float inv = 1.f / float(L + 1);
  // Fixed propagated part c = sum_{l=1..L} h^(l), h^(l) = sum_i X_{l-1}[i] / sqrt(|S| (deg(i) + 1)):
  // deg + 1 counts the new user's own edge, as if it had joined the graph.
  const double Sd = double(S);
  for (int l = 1; l <= L; ++l)
    for (int64_t k = 0; k < S; ++k) {
      const int64_t i = items[k];
      const double deg = double(deg_[size_t(i)]) + 1.0;
      const float w = float(1.0 / std::sqrt(Sd * deg));
      const float* x = layer_.data() + (int64_t(l - 1) * I + i) * D;
      for (int64_t d = 0; d < D; ++d) cvec[size_t(d)] += w * x[d];
    }
  uint64_t s = rng;
  const AdamConfig ac{c.lr, 0.9f, 0.999f, 1e-8f};
  const double pairs = Sd * c.negatives;
  for (int t = 1; t <= c.steps; ++t) {
    for (int64_t d = 0; d < D; ++d) f[size_t(d)] = (e[size_t(d)] + cvec[size_t(d)]) * inv;
    if (all_items) score_all(f.data(), final_t_.data(), D, I, score.data());
    // dLoss/df accumulated over (pos, neg) pairs, then chained through f = (e + c) / (L+1).
    std::fill(gr.begin(), gr.end(), 0.f);
    for (int64_t q = 0; q < S; ++q) {
      const int32_t p = items[q];
      const float* fp = Fi + int64_t(p) * D;
      // The draws do not depend on the scores, so drawing the positive's negatives first gives
      // the same items as drawing each just before its use, and lets their scores be computed
      // together.
      for (int k = 0; k < c.negatives; ++k) {
        int32_t j;
        do j = int32_t(below(s, I));
        while (((seen[size_t(j) >> 6] >> (j & 63)) & 1) && S < I);
        neg[size_t(k)] = j;
      }
      const float sp = all_items ? score[size_t(p)] : score_dot(f.data(), fp, D);
      if (all_items)
        for (int k = 0; k < c.negatives; ++k) nscore[size_t(k)] = score[size_t(neg[size_t(k)])];
      else
        score_rows(f.data(), Fi, D, neg.data(), c.negatives, nscore.data());
      for (int k = 0; k < c.negatives; ++k) coef[size_t(k)] = float(sigmoid(double(nscore[size_t(k)]) - sp) / pairs);
      accumulate_pairs(gr.data(), Fi, fp, neg.data(), coef.data(), c.negatives, D);
    }
    for (int64_t d = 0; d < D; ++d) gr[size_t(d)] = gr[size_t(d)] * inv + c.lambda * e[size_t(d)];
    // Adam on e alone (a D-sized problem: no thread pool).
    const float bc1 = float(1.0 - std::pow(0.9, t)), bc2 = float(1.0 - std::pow(0.999, t));
    for (int64_t d = 0; d < D; ++d) {
      m[size_t(d)] = 0.9f * m[size_t(d)] + 0.1f * gr[size_t(d)];
      v[size_t(d)] = 0.999f * v[size_t(d)] + 0.001f * gr[size_t(d)] * gr[size_t(d)];
      e[size_t(d)] -= ac.lr * (m[size_t(d)] / bc1) / (std::sqrt(v[size_t(d)] / bc2) + ac.eps);
    }
  }
  for (int64_t d = 0; d < D; ++d) {
    oe[d] = e[size_t(d)];
    of[d] = (e[size_t(d)] + cvec[size_t(d)]) * inv;
  }
}

}  // namespace tokenrec
