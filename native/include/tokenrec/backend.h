// What the core was compiled with and what it can run on.
#pragma once
#include <string>

namespace tokenrec {

struct CudaDeviceInfo {
  bool available = false;       // a usable device was found at run time
  std::string name;             // e.g. "NVIDIA H200"
  int compute_major = 0, compute_minor = 0;
  size_t total_memory = 0;      // bytes
  std::string error;            // why no device is usable (driver missing, no device, ...)
};

struct BackendInfo {
  bool cuda_compiled = false;   // the CUDA kernels were built into this binary
  CudaDeviceInfo cuda;          // run-time probe (cached after the first call)
  std::string cpu_isa;          // e.g. "avx2+fma"
  std::string gemm;             // "openblas" or "builtin"
  int threads = 1;              // CPU threads the kernels use
};

BackendInfo backend_info();

// True when CUDA kernels are compiled in and a device answered.
bool cuda_available();

}  // namespace tokenrec
