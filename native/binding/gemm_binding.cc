// sgemm({ transA, transB, M, N, K, alpha, A, B, beta, C }): C (M, N) = alpha op(A) op(B) + beta C,
// row-major Float32Arrays, run synchronously (for the small dense layers driven from TypeScript,
// e.g. the LLM4Rec projection head, where a worker hop would cost more than the product).
#include "tokenrec/gemm.h"
#include "util.h"

namespace tokenrec::binding {

static Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(info, 0, "sgemm options");
  bool ta = o.Get("transA").ToBoolean(), tb = o.Get("transB").ToBoolean();
  int64_t M = int_prop(o, "M", 0), N = int_prop(o, "N", 0), K = int_prop(o, "K", 0);
  auto A = typed_array<float>(o.Get("A"), "A");
  auto B = typed_array<float>(o.Get("B"), "B");
  auto C = typed_array<float>(o.Get("C"), "C");
  double alpha = o.Has("alpha") ? o.Get("alpha").ToNumber().DoubleValue() : 1.0;
  double beta = o.Has("beta") ? o.Get("beta").ToNumber().DoubleValue() : 0.0;
  auto need = [&](const char* name, size_t have, int64_t want) {
    if (int64_t(have) < want)
      throw Napi::RangeError::New(env, std::string(name) + " has " + std::to_string(have) + " values; the product needs " + std::to_string(want));
  };
  need("A", A.length, M * K);
  need("B", B.length, K * N);
  need("C", C.length, M * N);
  guard(env, [&] {
    sgemm(ta, tb, M, N, K, float(alpha), A.data, ta ? M : K, B.data, tb ? K : N, float(beta), C.data, N);
    return 0;
  });
  return env.Undefined();
}

static void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sgemm", Napi::Function::New(env, Sgemm, "sgemm"));
}
TOKENREC_BINDING(Init);

}  // namespace tokenrec::binding
