// Row-wise softmax cross-entropy for LLM4Rec's full-softmax loss (lib/llm/loss.ts ItemSoftmax):
// the logits of a batch against every item are turned, in place, into the gradient of the loss.
#pragma once
#include <cstdint>

namespace tokenrec {

// logits: (B, N) row-major, overwritten. Row b's loss is logsumexp(row) - row[targets[b]];
// entries of -inf are left out of the softmax (the items excluded from the ranking) and get a
// zero gradient. On return row b holds grad_scale * (softmax(row) - onehot(targets[b])).
// Returns the sum of the B row losses (double). targets must be in [0, N) with a finite logit
// (throws tokenrec::Error otherwise); a NaN logit makes the result NaN, never a crash.
double softmax_xent_rows(float* logits, int64_t B, int64_t N, const int32_t* targets, float grad_scale);

}  // namespace tokenrec
