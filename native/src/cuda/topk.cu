// CUDA top-K over an ItemIndex (contract in include/tokenrec/topk.h), exact like the CPU path.
//
// Items live on the device in PackedItems layout (blocks of 16 items stored (D, 16)), uploaded
// once and again only after add(). Queries are normalised on the host with the same function as
// on the CPU, and every score is the chain acc = fmaf(u[d], x[d], acc), d ascending, from 0: the
// CPU's chain (scoring_is_fma_chain()), so both devices produce bit-identical scores (the one
// exception: --use_fast_math flushes denormal intermediates to zero, which needs components
// below ~1e-19 in magnitude).
//
// Kernel 1 (topk_partial_kernel): block (query group of QB queries, item split). Each thread
// scores one item of a 256-item tile against the QB queries (held in shared memory); scores
// above a query's current threshold are appended to that query's candidate buffer in shared
// memory. When a buffer could overflow, the block bitonic-sorts every query's
// [running top-k | candidates] array and keeps the top k: a block-level top-k merge fused with
// the scoring. Each (query, split) writes its top k as 64-bit keys (orderable score << 32 |
// ~index), so sorting keys descending is "score descending, smaller index first".
// Kernel 2 (topk_merge_kernel): one block per query merges its splits' lists and decodes.
// The kernels and the launch plan live in topk_kernels.cuh, which
// native/test/test_topk_kernel_emulation.cc also runs on CPU threads (so their logic is tested
// without a GPU; that test found a barrier race here).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tokenrec/backend.h"
#include "tokenrec/cuda_util.h"
#include "tokenrec/topk.h"
#include "topk_kernels.cuh"

namespace tokenrec {

struct DeviceItems {
  DeviceBuffer<float> data;  // (ceil(N/16), D, 16)
  int64_t N = 0;
  uint64_t version = ~uint64_t(0);
};

void device_items_free(DeviceItems* p) { delete p; }

namespace {

using namespace topk_cuda;

template <int QB>
void launch_partial(const float* items, const float* queries, int B, int N, int D, int k, int KP, int M, int splits,
                    int split_len, const int* ep, const int* ei, unsigned long long* partial, size_t shmem) {
  auto kern = topk_partial_kernel<QB>;
  cuda_check(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shmem)),
             "search: cudaFuncSetAttribute");
  dim3 grid(unsigned((B + QB - 1) / QB), unsigned(splits));
  kern<<<grid, THREADS, shmem>>>(items, queries, B, N, D, k, KP, M, splits, split_len, ep, ei, partial);
  cuda_check(cudaGetLastError(), "search: topk_partial_kernel launch");
}

}  // namespace

void ItemIndex::search_cuda_locked(const TopkQuery& q, int32_t* ids, float* scores) {
  validate(q);
  if (!cuda_available()) fail(ErrorCode::Cuda, "search: no usable CUDA device");
  const int64_t N = items_.N, D = D_, B = q.B;
  const int64_t kout = topk_columns(q.k, N);
  if (B == 0 || kout == 0) return;

  std::vector<float> qn;
  const float* U = q.queries;
  if (sim_ == Similarity::Cosine) {
    qn = normalize_rows(q.queries, B, D);
    U = qn.data();
  }
  std::vector<int32_t> ex;
  if (q.excl_ptr) {
    ex.assign(q.excl_idx, q.excl_idx + q.excl_ptr[B]);
    for (int64_t b = 0; b < B; ++b) std::sort(ex.begin() + q.excl_ptr[b], ex.begin() + q.excl_ptr[b + 1]);
  }

  // One search on the device at a time per index; the lock also guards the device copy.
  std::lock_guard<std::mutex> dev_lock(dev_mu_);
  if (!dev_ || dev_->version != version_) {
    dev_.reset();  // free the old copy before allocating the new one
    auto* d = new DeviceItems();
    dev_.reset(d);
    d->data = DeviceBuffer<float>(items_.data.data(), items_.data.size());
    d->N = N;
    d->version = version_;
  }

  int device = 0, sms = 1, max_shmem = 48 * 1024;
  cuda_check(cudaGetDevice(&device), "search: cudaGetDevice");
  cuda_check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "search: device attribute");
  cuda_check(cudaDeviceGetAttribute(&max_shmem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
             "search: device attribute");

  const TopkPlan plan = plan_topk(B, N, D, kout, sms, max_shmem);
  const int k = plan.k, KP = plan.KP, M = plan.M, QB = plan.QB;
  const size_t shmem = plan.shmem;
  const int64_t splits = plan.splits, split_len = plan.split_len;

  DeviceBuffer<float> dq(U, size_t(B * D));
  DeviceBuffer<int32_t> dp, dx;
  if (q.excl_ptr) {
    dp = DeviceBuffer<int32_t>(q.excl_ptr, size_t(B + 1));
    dx = DeviceBuffer<int32_t>(ex.data(), std::max<size_t>(ex.size(), 1));
  }
  DeviceBuffer<unsigned long long> dpart(size_t(B * splits * k));
  DeviceBuffer<int32_t> dids(size_t(B * k));
  DeviceBuffer<float> dsc(size_t(B * k));
  const int* ep = q.excl_ptr ? dp.get() : nullptr;
  const int* ei = q.excl_ptr ? dx.get() : nullptr;
  switch (QB) {
    case 8: launch_partial<8>(dev_->data.get(), dq.get(), int(B), int(N), int(D), k, KP, M, int(splits), int(split_len), ep, ei, dpart.get(), shmem); break;
    case 4: launch_partial<4>(dev_->data.get(), dq.get(), int(B), int(N), int(D), k, KP, M, int(splits), int(split_len), ep, ei, dpart.get(), shmem); break;
    case 2: launch_partial<2>(dev_->data.get(), dq.get(), int(B), int(N), int(D), k, KP, M, int(splits), int(split_len), ep, ei, dpart.get(), shmem); break;
    default: launch_partial<1>(dev_->data.get(), dq.get(), int(B), int(N), int(D), k, KP, M, int(splits), int(split_len), ep, ei, dpart.get(), shmem); break;
  }
  const size_t mshmem = plan.merge_shmem;
  cuda_check(cudaFuncSetAttribute(topk_merge_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(mshmem)),
             "search: cudaFuncSetAttribute");
  topk_merge_kernel<<<unsigned(B), THREADS, mshmem>>>(dpart.get(), int(splits), k, KP, dids.get(), dsc.get());
  cuda_check(cudaGetLastError(), "search: topk_merge_kernel launch");
  cuda_check(cudaDeviceSynchronize(), "search: kernels");
  dids.download(ids, size_t(B * k));
  dsc.download(scores, size_t(B * k));
}

}  // namespace tokenrec
