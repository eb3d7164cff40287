// softmaxXent({ logits, rows, cols, targets, gradScale }) -> sum of the row losses; logits
// (rows * cols) Float32Array becomes the gradient in place (tokenrec/loss.h). Synchronous: it
// sits between two GEMMs of one training step.
#include "tokenrec/loss.h"
#include "util.h"

namespace tokenrec::binding {

static Napi::Value SoftmaxXent(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(info, 0, "softmaxXent options");
  int64_t B = int_prop(o, "rows", 0), N = int_prop(o, "cols", 1);
  auto logits = typed_array<float>(o.Get("logits"), "logits");
  auto targets = typed_array<int32_t>(o.Get("targets"), "targets");
  if (int64_t(logits.length) != B * N)
    throw Napi::RangeError::New(env, "logits has " + std::to_string(logits.length) + " values; rows * cols is " + std::to_string(B * N));
  if (int64_t(targets.length) != B)
    throw Napi::RangeError::New(env, "targets has " + std::to_string(targets.length) + " values; expected rows = " + std::to_string(B));
  Napi::Value gs = o.Get("gradScale");
  if (!gs.IsNumber()) throw_type(env, "gradScale must be a number");
  float scale = float(gs.As<Napi::Number>().DoubleValue());
  double loss = guard(env, [&] { return softmax_xent_rows(logits.data, B, N, targets.data, scale); });
  return Napi::Number::New(env, loss);
}

static void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("softmaxXent", Napi::Function::New(env, SoftmaxXent, "softmaxXent"));
}
TOKENREC_BINDING(Init);

}  // namespace tokenrec::binding
