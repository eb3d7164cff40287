// Row-wise softmax cross-entropy (see tokenrec/loss.h). One pass for the max, one for
// exp (kept in place) and the sum, one to scale: the JavaScript version of these loops cost
// about 4x the two GEMMs around them on 12k items.
#include "tokenrec/loss.h"

#include <cmath>
#include <limits>
#include <vector>

#include "tokenrec/error.h"
#include "tokenrec/parallel.h"

namespace tokenrec {

double softmax_xent_rows(float* logits, int64_t B, int64_t N, const int32_t* targets, float grad_scale) {
  if (B < 0 || N <= 0) fail(ErrorCode::InvalidArgument, "softmax_xent_rows: need N > 0 and B >= 0, got B = ", B, ", N = ", N);
  for (int64_t b = 0; b < B; ++b) {
    int32_t t = targets[b];
    if (t < 0 || t >= N) fail(ErrorCode::OutOfRange, "softmax_xent_rows: target ", t, " of row ", b, " is outside [0, ", N, ")");
    if (std::isinf(logits[b * N + t])) fail(ErrorCode::InvalidArgument, "softmax_xent_rows: the target of row ", b, " has an infinite logit (excluded?)");
  }
  std::vector<double> row_loss(size_t(B), 0.0);
  parallel_for(0, B, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      float* row = logits + b * N;
      const int32_t t = targets[b];
      float m = -std::numeric_limits<float>::infinity();
      bool nan = false;
      for (int64_t i = 0; i < N; ++i) {
        m = row[i] > m ? row[i] : m;
        nan |= std::isnan(row[i]);
      }
      const float xt = row[t];
      if (nan) {
        row_loss[size_t(b)] = std::numeric_limits<double>::quiet_NaN();
        for (int64_t i = 0; i < N; ++i) row[i] = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      double s = 0;
      for (int64_t i = 0; i < N; ++i) {
        float e = std::exp(row[i] - m);  // exp(-inf) = 0: excluded items drop out
        row[i] = e;
        s += e;
      }
      row_loss[size_t(b)] = double(m) + std::log(s) - double(xt);
      const float k = float(double(grad_scale) / s);
      for (int64_t i = 0; i < N; ++i) row[i] *= k;
      row[t] -= grad_scale;
    }
  });
  double total = 0;
  for (double l : row_loss) total += l;
  return total;
}

}  // namespace tokenrec
