// CPU top-K over an ItemIndex (contract in include/tokenrec/topk.h).
//
// Work is split into tasks = (block of query rows) x (range of items). A task streams its item
// range in L2-sized chunks; for each chunk it scores 6-row tiles against 256-item slices with
// score_block (exact, position-independent scores) and feeds each row's slice to that row's
// bounded heap. Each (row, item range) heap is a partial result; a final pass merges a row's
// partials and sorts them. Items in a task are visited in increasing index, so within a task a
// candidate tying the current k-th best always loses (it has the larger index): only strictly
// greater scores enter, and the full (score, index) order is applied at the merge.
#include "tokenrec/topk.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "tokenrec/error.h"
#include "tokenrec/parallel.h"

namespace tokenrec {

namespace {

struct Cand {
  float s;
  int32_t j;
};

// a ranks ahead of b: higher score, then smaller index.
inline bool ahead(const Cand& a, const Cand& b) { return a.s > b.s || (a.s == b.s && a.j < b.j); }

// A bounded heap of the best `cap` candidates; heap[0] is the worst kept (std heap with `ahead`
// as its "less" puts the element nothing ranks behind at the front).
struct Heap {
  Cand* h;
  int32_t n, cap;
  float thr() const { return h[0].s; }
  void offer(Cand c) {
    if (n < cap) {
      h[n++] = c;
      std::push_heap(h, h + n, ahead);
    } else {
      std::pop_heap(h, h + n, ahead);
      h[n - 1] = c;
      std::push_heap(h, h + n, ahead);
    }
  }
};

constexpr int64_t SLICE = 256;   // items scored per score_block call (the score tile stays in L1)
// Items kept hot in L2 while a task's rows sweep them: ~192 KiB of packed vectors, a multiple of
// SLICE (L2 is 512 KiB per core on Zen 3, 1-2 MiB on recent Intel cores).
inline int64_t chunk_items(int64_t D) {
  return std::clamp<int64_t>((192 << 10) / (D * 4) / SLICE * SLICE, SLICE, 16 * SLICE);
}
constexpr int64_t RTILE = 6;     // rows per score_block call (the register tile height)

// Offers row scores s[0..n) (items j0..j0+n-1) to heap, skipping the row's excluded items
// (ex: sorted) and NaN scores.
inline void select_slice(const float* s, int64_t n, int32_t j0, Heap& heap, const int32_t* ex_b,
                         const int32_t* ex_e) {
  auto excluded = [&](int32_t j) { return ex_b != ex_e && std::binary_search(ex_b, ex_e, j); };
  int64_t i = 0;
  // Fill phase: every finite candidate enters until the heap is full.
  for (; i < n && heap.n < heap.cap; ++i)
    if (!std::isnan(s[i]) && !excluded(j0 + int32_t(i))) heap.offer({s[i], j0 + int32_t(i)});
  if (heap.n < heap.cap) return;
  float thr = heap.thr();
#if defined(__AVX2__)
  // Most slices hold nothing above the threshold: test 8 scores per compare.
  for (; i + 8 <= n; i += 8) {
    __m256 t = _mm256_set1_ps(thr);
    int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + i), t, _CMP_GT_OQ));
    while (mask) {
      int l = __builtin_ctz(unsigned(mask));
      mask &= mask - 1;
      // thr may have risen since the compare: test again.
      if (s[i + l] > thr && !excluded(j0 + int32_t(i + l))) {
        heap.offer({s[i + l], j0 + int32_t(i + l)});
        thr = heap.thr();
      }
    }
  }
#endif
  for (; i < n; ++i)
    if (s[i] > thr && !excluded(j0 + int32_t(i))) {
      heap.offer({s[i], j0 + int32_t(i)});
      thr = heap.thr();
    }
}

inline void prefetch_l2(const char* p, int64_t bytes) {
#if defined(__GNUC__)
  for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 2);
#endif
}

void require_finite(const float* x, int64_t rows, int64_t D, const char* name) {
  for (int64_t i = 0; i < rows * D; ++i)
    if (!std::isfinite(x[i]))
      fail(ErrorCode::NotFinite, name, "[", i / D, "][", i % D, "] is not finite (", x[i], ")");
}

}  // namespace

ItemIndex::ItemIndex(int64_t D, Similarity sim) : D_(D), sim_(sim) {
  require(D > 0, "ItemIndex: dim must be > 0, got ", D);
  require(sim == Similarity::Dot || sim == Similarity::Cosine, "ItemIndex: unknown similarity");
  items_.D = D;
  items_.N = 0;
}

ItemIndex::~ItemIndex() = default;

void ItemIndex::add(const float* items, int64_t n) {
  require(n >= 0, "ItemIndex.add: number of items must be >= 0, got ", n);
  if (n == 0) return;
  require(items != nullptr, "ItemIndex.add: items are required");
  require_finite(items, n, D_, "items");
  std::unique_lock<std::shared_mutex> lock(mu_);
  require(items_.N + n <= std::numeric_limits<int32_t>::max(), "ItemIndex.add: too many items (", items_.N + n,
          "), item ids are int32");
  append_items(items_, items, n, sim_ == Similarity::Cosine);
  ++version_;
  n_.store(items_.N);
}

// Called with mu_ held (shared).
void ItemIndex::validate(const TopkQuery& q) const {
  require(q.B >= 0, "search: number of queries must be >= 0, got ", q.B);
  require(q.k >= 1 && q.k <= TOPK_MAX_K, "search: k must be in [1, ", TOPK_MAX_K, "], got ", q.k);
  if (q.B == 0) return;
  require(q.queries != nullptr, "search: queries are required");
  require_finite(q.queries, q.B, D_, "queries");
  if (!q.excl_ptr) return;
  require(q.excl_idx != nullptr || q.excl_ptr[q.B] == 0, "search: excludeIdx is required with excludePtr");
  require(q.excl_ptr[0] == 0, "search: excludePtr[0] must be 0, got ", q.excl_ptr[0]);
  for (int64_t b = 0; b < q.B; ++b) {
    int32_t s = q.excl_ptr[b], e = q.excl_ptr[b + 1];
    require(e >= s, "search: excludePtr must be non-decreasing (excludePtr[", b + 1, "] = ", e, " < excludePtr[", b,
            "] = ", s, ")");
    for (int32_t i = s; i < e; ++i)
      if (q.excl_idx[i] < 0 || q.excl_idx[i] >= items_.N)
        fail(ErrorCode::OutOfRange, "search: excludeIdx[", i, "] = ", q.excl_idx[i], " (query ", b,
             ") is outside [0, ", items_.N, ")");
  }
}

void ItemIndex::search_cpu(const TopkQuery& q, int32_t* ids, float* scores) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  search_cpu_locked(q, ids, scores);
}

void ItemIndex::search_cuda(const TopkQuery& q, int32_t* ids, float* scores) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  search_cuda_locked(q, ids, scores);
}

int64_t ItemIndex::search(const TopkQuery& q, std::vector<int32_t>& ids, std::vector<float>& scores, bool cuda) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  const int64_t kout = topk_columns(q.k, items_.N);
  ids.resize(size_t(std::max<int64_t>(q.B, 0) * kout));
  scores.resize(ids.size());
  if (cuda)
    search_cuda_locked(q, ids.data(), scores.data());
  else
    search_cpu_locked(q, ids.data(), scores.data());
  return kout;
}

void ItemIndex::search_cpu_locked(const TopkQuery& q, int32_t* ids, float* scores) const {
  validate(q);
  const int64_t N = items_.N, D = D_, B = q.B;
  const int64_t kout = topk_columns(q.k, N);
  if (B == 0 || kout == 0) return;

  std::vector<float> qn;
  const float* U = q.queries;
  if (sim_ == Similarity::Cosine) {
    qn = normalize_rows(q.queries, B, D);
    U = qn.data();
  }
  // Sorted exclusion lists, so that a candidate is checked by binary search.
  std::vector<int32_t> ex;
  if (q.excl_ptr) {
    ex.assign(q.excl_idx, q.excl_idx + q.excl_ptr[B]);
    parallel_for(0, B, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) std::sort(ex.begin() + q.excl_ptr[b], ex.begin() + q.excl_ptr[b + 1]);
    });
  }

  // Task grid: enough row blocks to share the queries among threads (large row blocks reuse each
  // item chunk from L2 many times), and item ranges when there are too few row blocks.
  const int64_t T = num_threads();
  int64_t rows = (B + T - 1) / T;
  rows = std::clamp<int64_t>((rows + RTILE - 1) / RTILE * RTILE, 1, 192);
  if (rows > B) rows = B;
  const int64_t nrow_blocks = (B + rows - 1) / rows;
  const int64_t max_parts = std::max<int64_t>(1, N / 4096);
  const int64_t parts = std::clamp<int64_t>((4 * T + nrow_blocks - 1) / nrow_blocks, 1, max_parts);
  int64_t part_len = (N + parts - 1) / parts;
  part_len = (part_len + 15) / 16 * 16;  // score_block wants 16-aligned starts
  const int64_t cap = kout;
  const int64_t chunk = chunk_items(D);

  std::vector<Cand> part(size_t(B * parts * cap));
  std::vector<int32_t> part_n(size_t(B * parts), 0);

  parallel_for(0, nrow_blocks * parts, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> S(size_t(RTILE * SLICE));
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t rb = task / parts, p = task % parts;
      const int64_t b0 = rb * rows, b1 = std::min(B, b0 + rows);
      const int64_t i0 = p * part_len, i1 = std::min(N, i0 + part_len);
      if (i0 >= i1) continue;
      std::vector<Heap> heaps;
      heaps.reserve(size_t(b1 - b0));
      for (int64_t b = b0; b < b1; ++b)
        heaps.push_back(Heap{part.data() + (b * parts + p) * cap, 0, int32_t(cap)});
      const int64_t ntiles = (b1 - b0 + RTILE - 1) / RTILE;
      for (int64_t c0 = i0; c0 < i1; c0 += chunk) {
        const int64_t c1 = std::min(i1, c0 + chunk);
        // The next chunk is fetched into L2 a slice per row tile, while this one is computed on:
        // otherwise the first tile of every chunk waits for memory.
        const char* next = reinterpret_cast<const char*>(items_.data.data() + c1 * D);
        const int64_t next_bytes = std::max<int64_t>(0, std::min(i1, c1 + chunk) - c1) * D * 4;
        const int64_t per_tile = (next_bytes / 64 + ntiles - 1) / ntiles * 64;
        for (int64_t r0 = b0, t = 0; r0 < b1; r0 += RTILE, ++t) {
          const int64_t nr = std::min(RTILE, b1 - r0);
          prefetch_l2(next + t * per_tile, std::min(per_tile, next_bytes - t * per_tile));
          for (int64_t s0 = c0; s0 < c1; s0 += SLICE) {
            const int64_t s1 = std::min(c1, s0 + SLICE);
            score_block(U + r0 * D, nr, items_, s0, s1, S.data(), SLICE);
            for (int64_t r = 0; r < nr; ++r) {
              const int64_t b = r0 + r;
              const int32_t* eb = q.excl_ptr ? ex.data() + q.excl_ptr[b] : nullptr;
              const int32_t* ee = q.excl_ptr ? ex.data() + q.excl_ptr[b + 1] : nullptr;
              select_slice(S.data() + r * SLICE, s1 - s0, int32_t(s0), heaps[size_t(b - b0)], eb, ee);
            }
          }
        }
      }
      for (int64_t b = b0; b < b1; ++b) part_n[size_t(b * parts + p)] = heaps[size_t(b - b0)].n;
    }
  });

  // Merge each row's partial heaps, order them, pad.
  parallel_for(0, B, 16, [&](int64_t lo, int64_t hi) {
    std::vector<Cand> all;
    for (int64_t b = lo; b < hi; ++b) {
      all.clear();
      for (int64_t p = 0; p < parts; ++p) {
        const Cand* h = part.data() + (b * parts + p) * cap;
        all.insert(all.end(), h, h + part_n[size_t(b * parts + p)]);
      }
      const int64_t m = std::min<int64_t>(kout, int64_t(all.size()));
      std::partial_sort(all.begin(), all.begin() + m, all.end(), ahead);
      for (int64_t i = 0; i < kout; ++i) {
        ids[b * kout + i] = i < m ? all[size_t(i)].j : -1;
        scores[b * kout + i] = i < m ? all[size_t(i)].s : -std::numeric_limits<float>::infinity();
      }
    }
  });
}

#ifndef TOKENREC_HAVE_CUDA
void device_items_free(DeviceItems*) {}

void ItemIndex::search_cuda_locked(const TopkQuery&, int32_t*, float*) {
  fail(ErrorCode::Cuda, "search: CUDA kernels were not compiled into this build");
}
#endif

}  // namespace tokenrec
