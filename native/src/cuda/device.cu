// Run-time probe of the CUDA device. With static cudart the binary loads on a machine without a
// driver; cudaGetDeviceCount then fails and the caller falls back to the CPU.
#include <cuda_runtime.h>

#include "tokenrec/backend.h"

namespace tokenrec {

CudaDeviceInfo cuda_probe() {
  CudaDeviceInfo info;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    info.error = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return info;
  }
  if (count == 0) {
    info.error = "no CUDA device found";
    return info;
  }
  cudaDeviceProp prop;
  err = cudaGetDeviceProperties(&prop, 0);
  if (err != cudaSuccess) {
    info.error = std::string("cudaGetDeviceProperties failed: ") + cudaGetErrorString(err);
    return info;
  }
  info.available = true;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.total_memory = prop.totalGlobalMem;
  return info;
}

}  // namespace tokenrec
