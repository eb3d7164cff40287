// C++ benchmark of the tokenizer kernels (no Node needed: runs on the GPU check machine too).
//   bench_vq [B=100000] [K=3] [L=256] [dc=512]
// Times vq_nearest (CPU, and CUDA when a device is usable, checked against the CPU result) and the
// masked-MLP forward of one 64-128-256-512 encoder; prints rows/s and GFLOP/s.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../test/rand.h"
#include "tokenrec/backend.h"
#include "tokenrec/mlp.h"
#include "tokenrec/vq.h"

using namespace tokenrec;

template <typename F>
static double seconds(F&& f, int runs = 3) {
  f();  // warm-up
  double best = 1e30;
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::fmin(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

int main(int argc, char** argv) {
  const int64_t B = argc > 1 ? std::atoll(argv[1]) : 100000, K = argc > 2 ? std::atoll(argv[2]) : 3;
  const int64_t L = argc > 3 ? std::atoll(argv[3]) : 256, dc = argc > 4 ? std::atoll(argv[4]) : 512;
  BackendInfo info = backend_info();
  std::printf("cpu %s, %d threads, gemm %s; cuda %s\n", info.cpu_isa.c_str(), info.threads, info.gemm.c_str(),
              info.cuda.available ? info.cuda.name.c_str() : info.cuda.error.c_str());
  TestRng rng(1);
  auto cb = rng.vec(size_t(K * L * dc));
  std::vector<float> a(size_t(B * K * dc));
  for (int64_t o = 0; o < B * K; ++o) {
    int64_t k = o % K, l = rng.below(int(L));
    for (int64_t e = 0; e < dc; ++e) a[size_t(o * dc + e)] = cb[size_t((k * L + l) * dc + e)] + 0.8f * rng.symmetric();
  }
  const double flop = 2.0 * double(B) * K * L * dc;
  std::vector<int32_t> ic(size_t(B * K)), ig(size_t(B * K));
  std::vector<float> dcpu(size_t(B * K)), dgpu(size_t(B * K));
  double tc = seconds([&] { vq_nearest_cpu(a.data(), cb.data(), B, K, L, dc, ic.data(), dcpu.data()); });
  std::printf("vq_nearest cpu : B=%ld K=%ld L=%ld dc=%ld  %.3f s  %.0f rows/s  %.1f GFLOP/s\n", long(B), long(K), long(L),
              long(dc), tc, B / tc, flop / tc / 1e9);
  if (info.cuda.available) {
    double tg = seconds([&] { vq_nearest_cuda(a.data(), cb.data(), B, K, L, dc, ig.data(), dgpu.data()); });
    int64_t diff = 0;
    for (int64_t o = 0; o < B * K; ++o)
      if (ic[size_t(o)] != ig[size_t(o)] && std::fabs(dcpu[size_t(o)] - dgpu[size_t(o)]) > 1e-3f * (1 + dcpu[size_t(o)])) ++diff;
    std::printf("vq_nearest cuda: %.3f s (incl. transfers)  %.0f rows/s  %.1f GFLOP/s  x%.1f vs cpu  %ld non-tie mismatches\n", tg,
                B / tg, flop / tg / 1e9, tc / tg, long(diff));
  }
  MlpShape s{{64, 128, 256, 512}};
  std::vector<float> p(size_t(s.num_params()));
  mlp_init(s, 3, p.data());
  const int64_t N = std::min<int64_t>(B, 20000);
  auto x = rng.vec(size_t(N * 64));
  std::vector<float> acts(size_t(s.acts_size(N)));
  MaskSpec m{0.2f, 1, 0, nullptr};
  double mflop = 2.0 * N * (64 * 128 + 128 * 256 + 256 * 512);
  double tm = seconds([&] { mlp_forward_cpu(s, p.data(), x.data(), N, &m, acts.data()); });
  std::printf("mlp_forward cpu (masked, one encoder): %ld rows  %.3f s  %.0f rows/s  %.1f GFLOP/s\n", long(N), tm, N / tm, mflop / tm / 1e9);
  if (info.cuda.available) {
    double tg = seconds([&] { mlp_forward_cuda(s, p.data(), x.data(), N, &m, acts.data()); });
    std::printf("mlp_forward cuda: %.3f s (incl. transfers)  %.0f rows/s  %.1f GFLOP/s\n", tg, N / tg, mflop / tg / 1e9);
  }
  return 0;
}
