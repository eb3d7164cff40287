// rankTargets({ users, items, dim, targets, excludePtr?, excludeIdx?, similarity?, backend? })
//   users: Float32Array (B*dim), items: Float32Array (N*dim), targets: Int32Array (B),
//   excludePtr: Int32Array (B+1) CSR offsets, excludeIdx: Int32Array, similarity: 'dot'|'cosine'.
//   Resolves to an Int32Array (B) of 1-based ranks (ties count against the target).
#include "tokenrec/rank.h"
#include "util.h"

namespace tokenrec::binding {

static Napi::Value RankTargets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object a = object_arg(info, 0, "rankTargets options");
  int64_t D = int_prop(a, "dim", 1);
  auto users = typed_array<float>(a.Get("users"), "users");
  auto items = typed_array<float>(a.Get("items"), "items");
  auto targets = typed_array<int32_t>(a.Get("targets"), "targets");
  if (users.length % D) throw Napi::RangeError::New(env, "users.length (" + std::to_string(users.length) + ") is not a multiple of dim (" + std::to_string(D) + ")");
  if (items.length % D) throw Napi::RangeError::New(env, "items.length (" + std::to_string(items.length) + ") is not a multiple of dim (" + std::to_string(D) + ")");
  int64_t B = int64_t(users.length) / D, N = int64_t(items.length) / D;
  if (int64_t(targets.length) != B)
    throw Napi::RangeError::New(env, "targets.length (" + std::to_string(targets.length) + ") must equal the number of users (" + std::to_string(B) + ")");
  View<int32_t> ptr, idx;
  bool has_excl = !a.Get("excludePtr").IsUndefined() && !a.Get("excludePtr").IsNull();
  if (has_excl) {
    ptr = typed_array<int32_t>(a.Get("excludePtr"), "excludePtr");
    idx = typed_array<int32_t>(a.Get("excludeIdx"), "excludeIdx");
    if (int64_t(ptr.length) != B + 1)
      throw Napi::RangeError::New(env, "excludePtr.length (" + std::to_string(ptr.length) + ") must be users + 1 (" + std::to_string(B + 1) + ")");
    if (B >= 0 && (ptr.data[B] < 0 || size_t(ptr.data[B]) != idx.length))
      throw Napi::RangeError::New(env, "excludePtr[last] (" + std::to_string(ptr.data[B]) + ") must equal excludeIdx.length (" + std::to_string(idx.length) + ")");
  }
  std::string sim = string_prop(a, "similarity", "dot");
  if (sim != "dot" && sim != "cosine") throw_type(env, "similarity must be 'dot' or 'cosine', got '" + sim + "'");
  bool cuda = use_cuda(env, string_prop(a, "backend", "auto"));

  RankProblem p;
  p.users = users.data;
  p.items = items.data;
  p.B = B;
  p.N = N;
  p.D = D;
  p.targets = targets.data;
  p.excl_ptr = has_excl ? ptr.data : nullptr;
  p.excl_idx = has_excl ? idx.data : nullptr;
  p.sim = sim == "cosine" ? Similarity::Cosine : Similarity::Dot;

  auto out = Napi::Int32Array::New(env, size_t(B));
  int32_t* out_data = out.Data();
  return PromiseWorker::Run(
      env, [p, out_data, cuda] { cuda ? rank_targets_cuda(p, out_data) : rank_targets_cpu(p, out_data); },
      [out_ref = std::make_shared<Napi::Reference<Napi::Int32Array>>(Napi::Persistent(out))](Napi::Env) -> Napi::Value {
        return out_ref->Value();
      },
      {a, a.Get("users"), a.Get("items"), a.Get("targets"), a.Get("excludePtr"), a.Get("excludeIdx"), out});
}

static void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("rankTargets", Napi::Function::New(env, RankTargets, "rankTargets"));
}
TOKENREC_BINDING(Init);

}  // namespace tokenrec::binding
