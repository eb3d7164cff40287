// AdamW (Loshchilov & Hutter), PyTorch's torch.optim.AdamW update, on one flat parameter buffer:
//   p -= lr * weight_decay * p                       (decoupled weight decay)
//   m  = beta1 m + (1 - beta1) g
//   v  = beta2 v + (1 - beta2) g^2
//   p -= lr * (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)
// params, grads, m, v: (n). step is 1-based (the count of updates including this one).
// Generic: any model that keeps its parameters in flat buffers can use it.
#pragma once
#include <cstdint>

namespace tokenrec {

void adamw_step_cpu(float* params, const float* grads, float* m, float* v, int64_t n, int64_t step, float lr,
                    float beta1, float beta2, float eps, float weight_decay);
// Same update on the GPU (host pointers: copied to the device and back).
void adamw_step_cuda(float* params, const float* grads, float* m, float* v, int64_t n, int64_t step, float lr,
                     float beta1, float beta2, float eps, float weight_decay);
// On buffers that already live on the device (for trainers that keep their state there).
void adamw_step_cuda_device(float* d_params, const float* d_grads, float* d_m, float* d_v, int64_t n,
                            int64_t step, float lr, float beta1, float beta2, float eps, float weight_decay);

// The spelling: the CPU version.
inline void adamw_step(float* params, const float* grads, float* m, float* v, int64_t n, int64_t step, float lr,
                       float beta1, float beta2, float eps, float weight_decay) {
  adamw_step_cpu(params, grads, m, v, n, step, lr, beta1, beta2, eps, weight_decay);
}

}  // namespace tokenrec
