#include "tokenrec/backend.h"

#include "tokenrec/gemm.h"
#include "tokenrec/parallel.h"

namespace tokenrec {

#ifdef TOKENREC_HAVE_CUDA
CudaDeviceInfo cuda_probe();  // src/cuda/device.cu
#endif

static const CudaDeviceInfo& cached_probe() {
  static const CudaDeviceInfo info = [] {
#ifdef TOKENREC_HAVE_CUDA
    return cuda_probe();
#else
    CudaDeviceInfo i;
    i.error = "CUDA kernels were not compiled into this build (nvcc was not found at build time)";
    return i;
#endif
  }();
  return info;
}

bool cuda_available() { return cached_probe().available; }

BackendInfo backend_info() {
  BackendInfo b;
#ifdef TOKENREC_HAVE_CUDA
  b.cuda_compiled = true;
#endif
  b.cuda = cached_probe();
  std::string isa;
#if defined(__AVX512F__)
  isa = "avx512f";
#elif defined(__AVX2__)
  isa = "avx2";
#elif defined(__SSE4_2__)
  isa = "sse4.2";
#elif defined(__aarch64__)
  isa = "neon";
#else
  isa = "generic";
#endif
#if defined(__FMA__)
  isa += "+fma";
#endif
  b.cpu_isa = isa;
  b.gemm = gemm_backend();
  b.threads = num_threads();
  return b;
}

}  // namespace tokenrec
