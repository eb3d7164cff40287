// Top-K throughput from C++ alone (for GPU machines without Node): CPU and, when a device is
// usable, CUDA, over random items, cosine similarity.
//
//   build/bench_topk [N=100000,1000000] [D=64] [k=20] [batches=1,64,1024] [seconds=2]
//   e.g. build/bench_topk 100000,1000000 64 20 1,64,1024 2
//   build/bench_topk --bandwidth     memory read bandwidth with the kernels' threads (GB/s)
// Prints one line per (backend, N, batch): queries/s, the time per batch, GFLOP/s (2*N*D per
// query) and GB/s (N*D*4 bytes read per batch), then a CPU/CUDA agreement check.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include "../test/rand.h"
#include "tokenrec/backend.h"
#include "tokenrec/parallel.h"
#include "tokenrec/topk.h"

using namespace tokenrec;
using Clock = std::chrono::steady_clock;

static std::vector<int64_t> parse_list(const char* s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::atoll(item.c_str()));
  return out;
}

static double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

// Reads a 512 MiB buffer with all kernel threads (8 independent AVX-friendly sums per chunk);
// the best of 5 passes, in GB/s: the limit for batch-1 search, which reads every item once.
// Also the rate per busy thread-second x threads (what an idle machine would give when other
// processes share the cores), in *busy.
static double read_bandwidth(double* busy) {
  const size_t n = size_t(128) << 20;  // floats
  std::vector<float> buf(n, 1.f);
  double best = 0;
  volatile float sink = 0;
  for (int pass = 0; pass < 5; ++pass) {
    auto t0 = Clock::now();
    double c0 = cpu_seconds();
    parallel_for(0, int64_t(n / 4096), 64, [&](int64_t lo, int64_t hi) {
      float acc[8] = {};
      for (int64_t c = lo; c < hi; ++c) {
        const float* p = buf.data() + c * 4096;
        for (int i = 0; i < 4096; i += 8)
          for (int l = 0; l < 8; ++l) acc[l] += p[i + l];
      }
      float s = 0;
      for (float a : acc) s += a;
      sink = sink + s;
    });
    double el = std::chrono::duration<double>(Clock::now() - t0).count();
    double cpu = cpu_seconds() - c0;
    best = std::max(best, double(n) * 4 / el / 1e9);
    *busy = std::max(*busy, double(n) * 4 / (cpu / num_threads()) / 1e9);
  }
  return best;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--bandwidth") {
    double busy = 0;
    double bw = read_bandwidth(&busy);
    std::printf("read bandwidth: %.1f GB/s (%d threads; %.1f GB/s per busy-thread time)\n", bw, num_threads(), busy);
    return 0;
  }
  std::vector<int64_t> Ns = parse_list(argc > 1 ? argv[1] : "100000,1000000");
  const int64_t D = argc > 2 ? std::atoll(argv[2]) : 64;
  const int64_t k = argc > 3 ? std::atoll(argv[3]) : 20;
  std::vector<int64_t> Bs = parse_list(argc > 4 ? argv[4] : "1,64,1024");
  const double min_seconds = argc > 5 ? std::atof(argv[5]) : 2.0;

  BackendInfo info = backend_info();
  std::printf("backend: cpu isa %s, %d threads, gemm %s; cuda compiled %s, device %s\n", info.cpu_isa.c_str(),
              info.threads, info.gemm.c_str(), info.cuda_compiled ? "yes" : "no",
              info.cuda.available ? info.cuda.name.c_str() : info.cuda.error.c_str());
  std::printf("%-5s %9s %3s %5s %5s %12s %12s %9s %8s\n", "dev", "N", "D", "k", "batch", "queries/s", "ms/batch",
              "GFLOP/s", "GB/s");
  TestRng rng(1);
  try {
    for (int64_t N : Ns) {
      auto I = rng.vec(size_t(N * D));
      ItemIndex ix(D, Similarity::Cosine);
      ix.add(I.data(), N);
      for (int64_t B : Bs) {
        auto Q = rng.vec(size_t(B * D));
        const int64_t kout = topk_columns(k, N);
        std::vector<int32_t> ids(size_t(B * kout)), ids_gpu(size_t(B * kout));
        std::vector<float> sc(size_t(B * kout)), sc_gpu(size_t(B * kout));
        TopkQuery q{Q.data(), B, k, nullptr, nullptr};
        for (int dev = 0; dev < 2; ++dev) {
          if (dev == 1 && !info.cuda.available) continue;
          auto once = [&] {
            if (dev == 0) ix.search_cpu(q, ids.data(), sc.data());
            else ix.search_cuda(q, ids_gpu.data(), sc_gpu.data());
          };
          once();  // warm-up (and, on the GPU, the item upload)
          int64_t reps = 0;
          auto t0 = Clock::now();
          double el = 0;
          do {
            once();
            ++reps;
            el = std::chrono::duration<double>(Clock::now() - t0).count();
          } while (el < min_seconds);
          const double per = el / double(reps);
          std::printf("%-5s %9ld %3ld %5ld %5ld %12.1f %12.3f %9.1f %8.1f\n", dev ? "cuda" : "cpu", long(N), long(D),
                      long(k), long(B), double(B) / per, per * 1e3, 2.0 * N * D * B / per / 1e9,
                      double(N) * D * 4 / per / 1e9);
          std::fflush(stdout);
        }
        if (info.cuda.available) {
          int64_t mism = 0;
          for (size_t i = 0; i < ids.size(); ++i) mism += ids[i] != ids_gpu[i] || sc[i] != sc_gpu[i];
          std::printf("      cpu vs cuda: %ld of %zu results differ\n", long(mism), ids.size());
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_topk: %s\n", e.what());
    return 1;
  }
  return 0;
}
