// Exact top-K retrieval: for each query, the k items with the highest similarity, over an item
// matrix stored once (normalised and packed at load) and searched many times.
//
// Result order, CPU and CUDA alike: score descending; ties (bit-identical scores) broken by the
// smaller item index. Scores are position-independent (scoring.h), so ties are real ties and the
// result does not depend on the batch a query is in, the thread count or the device.
//
// Output shape: (B, kout) with kout = min(k, N). A row whose query has fewer than kout items left
// after its exclusions is filled from the left and padded at the end with id -1, score -inf.
// NaN scores (only possible when a dot product overflows) are never returned.
//
// Similarity::Cosine: items are L2-normalised at load, queries per search (a zero vector scores
// 0 against everything). Similarity::Dot: raw inner products (keeps item-norm effects such as
// popularity).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "tokenrec/rank.h"     // Similarity
#include "tokenrec/scoring.h"  // PackedItems

namespace tokenrec {

// Largest k accepted (the CUDA kernel keeps each query's running top-k in shared memory).
constexpr int64_t TOPK_MAX_K = 1024;

struct TopkQuery {
  const float* queries = nullptr;   // (B, D) row-major, D = the index's dim
  int64_t B = 0;
  int64_t k = 0;                    // 1 .. TOPK_MAX_K; output has min(k, N) columns
  const int32_t* excl_ptr = nullptr; // (B + 1) CSR offsets into excl_idx, or null for none
  const int32_t* excl_idx = nullptr; // (excl_ptr[B]) item indices in [0, N), duplicates allowed
};

struct DeviceItems;  // the index's copy on the GPU (src/cuda/topk.cu)
void device_items_free(DeviceItems* p);
struct DeviceItemsDeleter {
  void operator()(DeviceItems* p) const { device_items_free(p); }
};

// Item vectors stored for repeated search. Thread-safe: searches share a lock, add() takes it
// exclusively, so concurrent searches never see a half-appended matrix.
class ItemIndex {
 public:
  ItemIndex(int64_t D, Similarity sim);
  ~ItemIndex();
  ItemIndex(const ItemIndex&) = delete;
  ItemIndex& operator=(const ItemIndex&) = delete;

  // Appends n items; items: (n, D) row-major, finite. Their indices continue from size().
  void add(const float* items, int64_t n);

  // Items stored; lock-free, so it never waits for an add() in progress (it then returns the
  // size before that add).
  int64_t size() const { return n_.load(); }
  int64_t dim() const { return D_; }
  Similarity similarity() const { return sim_; }

  // ids: (B, kout) output, scores: (B, kout) output, kout = topk_columns(q.k, size()). The
  // caller sizes them, so no add() may run between reading size() and this call; the vector
  // overloads below size the outputs under the index lock instead (what the Node binding uses).
  void search_cpu(const TopkQuery& q, int32_t* ids, float* scores) const;
  // Same contract on the GPU (the items are uploaded on first use and after add()); throws
  // ErrorCode::Cuda when CUDA is not compiled in or no device is usable.
  void search_cuda(const TopkQuery& q, int32_t* ids, float* scores);
  // Either search, resizing ids and scores to (B, kout) while holding the lock; returns kout.
  int64_t search(const TopkQuery& q, std::vector<int32_t>& ids, std::vector<float>& scores, bool cuda);

 private:
  // The searches proper; the caller holds mu_ (shared).
  void search_cpu_locked(const TopkQuery& q, int32_t* ids, float* scores) const;
  void search_cuda_locked(const TopkQuery& q, int32_t* ids, float* scores);
  void validate(const TopkQuery& q) const;
  int64_t D_;
  Similarity sim_;
  PackedItems items_;  // normalised when cosine
  mutable std::shared_mutex mu_;
  std::unique_ptr<DeviceItems, DeviceItemsDeleter> dev_;  // guarded by dev_mu_
  std::mutex dev_mu_;
  uint64_t version_ = 0;
  std::atomic<int64_t> n_{0};  // bumped by add(); the device copy records the version it holds
};

inline int64_t topk_columns(int64_t k, int64_t N) { return k < N ? k : N; }

}  // namespace tokenrec
