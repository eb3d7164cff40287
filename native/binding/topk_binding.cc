// ItemIndex: item vectors stored once in native memory (normalised and packed), searched many
// times for the top-k items of each query.
//
//   const ix = new ItemIndex({ dim, similarity: 'cosine' | 'dot' })
//   await ix.add(vectors)               vectors: Float32Array (n*dim); ids continue from ix.size
//   await ix.search({ queries, k, excludePtr?, excludeIdx?, backend: 'cpu' | 'cuda' })
//     -> { ids: Int32Array (B*kout), scores: Float32Array (B*kout), k: kout }, kout = min(k, size)
//   ix.size, ix.dim, ix.similarity, ix.disposed, ix.dispose()
// add and search run on libuv's worker threads and read the typed arrays in place (kept
// referenced until the Promise settles). dispose() frees the items once in-flight calls finish;
// any call after it throws.
#include <memory>

#include "tokenrec/topk.h"
#include "util.h"

namespace tokenrec::binding {

class ItemIndexJs : public Napi::ObjectWrap<ItemIndexJs> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function cls = DefineClass(env, "ItemIndex",
                                     {InstanceMethod<&ItemIndexJs::Add>("add"),
                                      InstanceMethod<&ItemIndexJs::Search>("search"),
                                      InstanceMethod<&ItemIndexJs::Dispose>("dispose"),
                                      InstanceAccessor<&ItemIndexJs::Size>("size"),
                                      InstanceAccessor<&ItemIndexJs::Dim>("dim"),
                                      InstanceAccessor<&ItemIndexJs::Sim>("similarity"),
                                      InstanceAccessor<&ItemIndexJs::Disposed>("disposed")});
    exports.Set("ItemIndex", cls);
  }

  explicit ItemIndexJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ItemIndexJs>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = object_arg(info, 0, "ItemIndex options");
    dim_ = int_prop(o, "dim", 1);
    std::string sim = string_prop(o, "similarity", "cosine");
    if (sim != "dot" && sim != "cosine") throw_type(env, "similarity must be 'dot' or 'cosine', got '" + sim + "'");
    sim_ = sim;
    ix_ = guard(env, [&] { return std::make_shared<ItemIndex>(dim_, sim == "cosine" ? Similarity::Cosine : Similarity::Dot); });
  }

 private:
  std::shared_ptr<ItemIndex> live(Napi::Env env) {
    if (!ix_) throw to_js_error(env, "ERR_TOKENREC_DISPOSED", "ItemIndex was disposed");
    return ix_;
  }

  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto ix = live(env);
    if (info.Length() < 1) throw_type(env, "add(vectors): vectors must be a Float32Array");
    auto v = typed_array<float>(info[0], "vectors");
    if (v.length % size_t(dim_))
      throw Napi::RangeError::New(env, "vectors.length (" + std::to_string(v.length) + ") is not a multiple of dim (" +
                                           std::to_string(dim_) + ")");
    const float* data = v.data;
    int64_t n = int64_t(v.length) / dim_;
    return PromiseWorker::Run(
        env, [ix, data, n] { ix->add(data, n); }, [](Napi::Env e) -> Napi::Value { return e.Undefined(); }, {info[0]});
  }

  Napi::Value Search(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto ix = live(env);
    Napi::Object a = object_arg(info, 0, "search options");
    auto queries = typed_array<float>(a.Get("queries"), "queries");
    if (queries.length % size_t(dim_))
      throw Napi::RangeError::New(env, "queries.length (" + std::to_string(queries.length) +
                                           ") is not a multiple of dim (" + std::to_string(dim_) + ")");
    const int64_t B = int64_t(queries.length) / dim_;
    const int64_t k = int_prop(a, "k", 1);
    if (k > TOPK_MAX_K)
      throw Napi::RangeError::New(env, "k must be <= " + std::to_string(TOPK_MAX_K) + ", got " + std::to_string(k));
    View<int32_t> ptr, idx;
    const bool has_excl = !a.Get("excludePtr").IsUndefined() && !a.Get("excludePtr").IsNull();
    if (has_excl) {
      ptr = typed_array<int32_t>(a.Get("excludePtr"), "excludePtr");
      idx = typed_array<int32_t>(a.Get("excludeIdx"), "excludeIdx");
      if (int64_t(ptr.length) != B + 1)
        throw Napi::RangeError::New(env, "excludePtr.length (" + std::to_string(ptr.length) +
                                             ") must be the number of queries + 1 (" + std::to_string(B + 1) + ")");
      if (ptr.data[B] < 0 || size_t(ptr.data[B]) != idx.length)
        throw Napi::RangeError::New(env, "excludePtr[last] (" + std::to_string(ptr.data[B]) +
                                             ") must equal excludeIdx.length (" + std::to_string(idx.length) + ")");
    }
    const bool cuda = use_cuda(env, string_prop(a, "backend", "cpu"));

    struct Out {
      std::vector<int32_t> ids;
      std::vector<float> scores;
      int64_t kout = 0;
    };
    auto out = std::make_shared<Out>();
    TopkQuery q{queries.data, B, k, has_excl ? ptr.data : nullptr, has_excl ? idx.data : nullptr};
    return PromiseWorker::Run(
        env,
        [ix, q, out, cuda] {
          // The outputs are sized under the index lock: an add() running concurrently lands
          // wholly before or after this search.
          out->kout = ix->search(q, out->ids, out->scores, cuda);
        },
        [out](Napi::Env e) -> Napi::Value {
          auto ids = Napi::Int32Array::New(e, out->ids.size());
          auto scores = Napi::Float32Array::New(e, out->scores.size());
          std::copy(out->ids.begin(), out->ids.end(), ids.Data());
          std::copy(out->scores.begin(), out->scores.end(), scores.Data());
          Napi::Object r = Napi::Object::New(e);
          r.Set("ids", ids);
          r.Set("scores", scores);
          r.Set("k", Napi::Number::New(e, double(out->kout)));
          return r;
        },
        {a, a.Get("queries"), a.Get("excludePtr"), a.Get("excludeIdx")});
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    ix_.reset();  // in-flight workers hold their own reference
    return info.Env().Undefined();
  }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(live(info.Env())->size())); }
  Napi::Value Dim(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(dim_)); }
  Napi::Value Sim(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), sim_); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !ix_); }

  std::shared_ptr<ItemIndex> ix_;
  int64_t dim_ = 0;
  std::string sim_;
};

static void Init(Napi::Env env, Napi::Object exports) { ItemIndexJs::Init(env, exports); }
TOKENREC_BINDING(Init);

}  // namespace tokenrec::binding
