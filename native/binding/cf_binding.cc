// Node-API binding of the collaborative-filtering stage (include/tokenrec/cf.h).
//
//   createCfTrainer({ numUsers, numItems, trainPtr: Int32Array (U+1), trainIdx: Int32Array, dim,
//                     layers, batchSize, lambda, lr, initStd, seed, backend: 'cpu'|'cuda' })
//     -> Promise<CfTrainer>   (builds the graph and the initial embeddings off the event loop)
//   CfTrainer:
//     beginEpoch(epoch) -> Promise<number of batches>
//     trainBatches(n)   -> Promise<{ batches, samples, bprSum, regSum }>
//     finalVectors()    -> Promise<Float32Array (N*dim)>   users first, then items
//     getState()        -> { ego, adamM, adamV: Float32Array (N*dim), step }   (copies)
//     setState({ ego, adamM, adamV, step })                 (validates: finite, sizes)
//     dispose(); numUsers, numItems, dim, layers, interactions, disposed
//   One call at a time per trainer: a second call while one runs is an error, as is any call after
//   dispose().
//   cfFoldIn({ numUsers, numItems, trainPtr, trainIdx, ego: Float32Array (N*dim), dim, layers,
//              historyPtr: Int32Array (B+1), historyIdx: Int32Array, steps, negatives, lr, lambda, seed })
//     -> Promise<{ final: Float32Array (B*dim), ego: Float32Array (B*dim) }>
//   createCfFoldInContext({ numUsers, numItems, trainPtr, trainIdx, ego: Float32Array (N*dim), dim, layers })
//     -> Promise<CfFoldInContext>   (builds the graph and propagates it once, off the event loop)
//   CfFoldInContext:
//     foldIn(historyPtr: Int32Array (B+1), historyIdx: Int32Array, { steps, negatives, lr, lambda, seed })
//       -> Promise<{ final, ego }>   same results as cfFoldIn with the same model and arguments
//     dispose(); numUsers, numItems, dim, layers, disposed
//   The context is immutable: several foldIn calls may run at once. dispose() while one runs is
//   allowed (the running call keeps the data alive); any call after dispose() is an error.
#include <atomic>
#include <cmath>
#include <memory>

#include "tokenrec/cf.h"
#include "util.h"

namespace tokenrec::binding {

namespace {

// The training set as CSR: trainPtr (U+1), trainIdx (trainPtr[U]).
struct TrainCsr {
  int64_t U, I;
  View<int32_t> ptr, idx;
};
TrainCsr train_csr(const Napi::Object& a) {
  Napi::Env env = a.Env();
  TrainCsr t;
  t.U = int_prop(a, "numUsers", 1);
  t.I = int_prop(a, "numItems", 1);
  t.ptr = typed_array<int32_t>(a.Get("trainPtr"), "trainPtr");
  t.idx = typed_array<int32_t>(a.Get("trainIdx"), "trainIdx");
  if (int64_t(t.ptr.length) != t.U + 1)
    throw Napi::RangeError::New(env, "trainPtr.length (" + std::to_string(t.ptr.length) + ") must be numUsers + 1 (" +
                                         std::to_string(t.U + 1) + ")");
  if (t.ptr.data[t.U] < 0 || size_t(t.ptr.data[t.U]) != t.idx.length)
    throw Napi::RangeError::New(env, "trainPtr[numUsers] (" + std::to_string(t.ptr.data[t.U]) +
                                         ") must equal trainIdx.length (" + std::to_string(t.idx.length) + ")");
  return t;
}

class CfTrainerJs : public Napi::ObjectWrap<CfTrainerJs> {
 public:
  // Defines the class; returns a reference to its constructor, owned by the environment (freed by
  // a cleanup hook), so that each worker thread's instance of the addon has its own.
  static Napi::FunctionReference* Define(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(
        env, "CfTrainer",
        {InstanceMethod("beginEpoch", &CfTrainerJs::BeginEpoch), InstanceMethod("trainBatches", &CfTrainerJs::TrainBatches),
         InstanceMethod("finalVectors", &CfTrainerJs::FinalVectors), InstanceMethod("getState", &CfTrainerJs::GetState),
         InstanceMethod("setState", &CfTrainerJs::SetState), InstanceMethod("dispose", &CfTrainerJs::Dispose),
         InstanceAccessor("numUsers", &CfTrainerJs::NumUsers, nullptr),
         InstanceAccessor("numItems", &CfTrainerJs::NumItems, nullptr),
         InstanceAccessor("dim", &CfTrainerJs::Dim, nullptr), InstanceAccessor("layers", &CfTrainerJs::Layers, nullptr),
         InstanceAccessor("interactions", &CfTrainerJs::Interactions, nullptr),
         InstanceAccessor("disposed", &CfTrainerJs::Disposed, nullptr)});
    auto* ctor = new Napi::FunctionReference(Napi::Persistent(f));
    env.AddCleanupHook([ctor] { delete ctor; });
    exports.Set("CfTrainer", f);
    return ctor;
  }

  // Only createCfTrainer constructs: it passes an External holding the built trainer.
  explicit CfTrainerJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CfTrainerJs>(info) {
    if (info.Length() < 1 || !info[0].IsExternal())
      throw_type(info.Env(), "CfTrainer cannot be constructed directly: use createCfTrainer()");
    auto* holder = info[0].As<Napi::External<std::shared_ptr<CfTrainer>>>().Data();
    t_ = *holder;
  }

 private:
  std::shared_ptr<CfTrainer> t_;
  std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);

  // Checks the trainer is usable and marks it busy; the returned guard, captured by the worker's
  // job, clears the flag when the worker is destroyed: on the main thread, right after its
  // Promise settled. So a call is "running" until its Promise settles, whatever the timing of
  // the worker thread (clearing it at the end of Execute let a second call slip in early).
  std::shared_ptr<void> acquire(Napi::Env env, const char* what) {
    if (!t_) throw to_js_error(env, "ERR_TOKENREC_DISPOSED", std::string("CfTrainer.") + what + ": the trainer was disposed");
    bool expected = false;
    if (!busy_->compare_exchange_strong(expected, true))
      throw to_js_error(env, "ERR_TOKENREC_BUSY",
                        std::string("CfTrainer.") + what + ": another call on this trainer is still running (await it first)");
    auto busy = busy_;
    return std::shared_ptr<void>(nullptr, [busy](void*) { busy->store(false); });
  }

  Napi::Value BeginEpoch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw_type(env, "epoch must be a number");
    double e = info[0].As<Napi::Number>().DoubleValue();
    if (!(e >= 0) || e != std::floor(e)) throw Napi::RangeError::New(env, "epoch must be an integer >= 0");
    auto guard = acquire(env, "beginEpoch");
    auto t = t_;
    auto out = std::make_shared<int64_t>(0);
    return PromiseWorker::Run(
        env,
        [t, out, guard, e]() mutable {
          *out = t->begin_epoch(int64_t(e));
        },
        [out](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, double(*out)); }, {info.This()});
  }

  Napi::Value TrainBatches(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw_type(env, "n must be a number");
    double n = info[0].As<Napi::Number>().DoubleValue();
    if (!(n >= 1) || n != std::floor(n)) throw Napi::RangeError::New(env, "n must be an integer >= 1");
    auto guard = acquire(env, "trainBatches");
    auto t = t_;
    auto st = std::make_shared<EpochStats>();
    return PromiseWorker::Run(
        env,
        [t, st, guard, n]() mutable {
          *st = t->train_batches(int64_t(n));
        },
        [st](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("batches", double(st->batches));
          o.Set("samples", double(st->samples));
          o.Set("bprSum", st->bpr_sum);
          o.Set("regSum", st->reg_sum);
          return o;
        },
        {info.This()});
  }

  Napi::Value FinalVectors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto guard = acquire(env, "finalVectors");
    auto t = t_;
    auto out = Napi::Float32Array::New(env, size_t(t->nodes() * t->config().dim));
    float* data = out.Data();
    return PromiseWorker::Run(
        env,
        [t, data, guard]() mutable {
          t->final_vectors(data);
        },
        [ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out))](Napi::Env) -> Napi::Value {
          return ref->Value();
        },
        {info.This(), out});
  }

  Napi::Value GetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto guard = acquire(env, "getState");
    auto copy = [&](const std::vector<float>& v) {
      auto a = Napi::Float32Array::New(env, v.size());
      std::copy(v.begin(), v.end(), a.Data());
      return a;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("ego", copy(t_->ego()));
    o.Set("adamM", copy(t_->adam_m()));
    o.Set("adamV", copy(t_->adam_v()));
    o.Set("step", double(t_->step()));
    return o;
  }

  Napi::Value SetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object a = object_arg(info, 0, "state");
    auto guard = acquire(env, "setState");
    auto ego = typed_array<float>(a.Get("ego"), "ego");
    auto m = typed_array<float>(a.Get("adamM"), "adamM");
    auto v = typed_array<float>(a.Get("adamV"), "adamV");
    int64_t step = int_prop(a, "step", 0);
    if (m.length != ego.length || v.length != ego.length)
      throw Napi::RangeError::New(env, "ego, adamM and adamV must have the same length");
    guard_call(env, [&] { t_->set_state(ego.data, m.data, v.data, int64_t(ego.length), step); });
    return env.Undefined();
  }

  template <typename F>
  static void guard_call(Napi::Env env, F&& f) {
    guard(env, [&] {
      f();
      return 0;
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!t_) return env.Undefined();
    if (busy_->load())
      throw to_js_error(env, "ERR_TOKENREC_BUSY", "CfTrainer.dispose: a call on this trainer is still running (await it first)");
    t_.reset();
    return env.Undefined();
  }

  Napi::Value NumUsers(const Napi::CallbackInfo& info) { return num(info, [](const CfTrainer& t) { return t.graph().num_users; }); }
  Napi::Value NumItems(const Napi::CallbackInfo& info) { return num(info, [](const CfTrainer& t) { return t.graph().num_items; }); }
  Napi::Value Dim(const Napi::CallbackInfo& info) { return num(info, [](const CfTrainer& t) { return t.config().dim; }); }
  Napi::Value Layers(const Napi::CallbackInfo& info) {
    return num(info, [](const CfTrainer& t) { return int64_t(t.config().layers); });
  }
  Napi::Value Interactions(const Napi::CallbackInfo& info) {
    return num(info, [](const CfTrainer& t) { return t.graph().interactions(); });
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !t_); }

  template <typename F>
  Napi::Value num(const Napi::CallbackInfo& info, F f) {
    if (!t_) throw to_js_error(info.Env(), "ERR_TOKENREC_DISPOSED", "CfTrainer: the trainer was disposed");
    return Napi::Number::New(info.Env(), double(f(*t_)));
  }
};

Napi::Value CreateCfTrainer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object a = object_arg(info, 0, "createCfTrainer options");
  TrainCsr csr = train_csr(a);
  CfTrainConfig c;
  c.dim = int_prop(a, "dim", 1);
  c.layers = int(int_prop(a, "layers", 0));
  c.batch_size = int_prop(a, "batchSize", 1);
  c.lambda = float(num_prop(a, "lambda", 1e-4));
  c.adam.lr = float(num_prop(a, "lr", 1e-3));
  c.init_std = float(num_prop(a, "initStd", 0.1));
  c.seed = uint64_t(int_prop(a, "seed", 0));
  c.cuda = use_cuda(env, string_prop(a, "backend", "cpu"));
  auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
  auto holder = std::make_shared<std::shared_ptr<CfTrainer>>();
  return PromiseWorker::Run(
      env,
      [csr, c, holder] { *holder = std::make_shared<CfTrainer>(csr.U, csr.I, csr.ptr.data, csr.idx.data, c); },
      [holder, ctor](Napi::Env env) -> Napi::Value {
        return ctor->New({Napi::External<std::shared_ptr<CfTrainer>>::New(env, holder.get())});
      },
      {a, a.Get("trainPtr"), a.Get("trainIdx")});
}

// The new users' histories: historyPtr (B + 1), historyIdx (historyPtr[B]); ids are checked by the core.
struct HistoryCsr {
  int64_t B;
  View<int32_t> ptr, idx;
};
HistoryCsr history_csr(Napi::Env env, const Napi::Value& ptr, const Napi::Value& idx) {
  HistoryCsr h;
  h.ptr = typed_array<int32_t>(ptr, "historyPtr");
  h.idx = typed_array<int32_t>(idx, "historyIdx");
  if (h.ptr.length < 1) throw Napi::RangeError::New(env, "historyPtr must hold at least one offset");
  h.B = int64_t(h.ptr.length) - 1;
  if (h.ptr.data[h.B] < 0 || size_t(h.ptr.data[h.B]) != h.idx.length)
    throw Napi::RangeError::New(env, "historyPtr[last] must equal historyIdx.length (" + std::to_string(h.idx.length) + ")");
  return h;
}

FoldInConfig fold_in_config(const Napi::Object& a) {
  FoldInConfig fc;
  fc.steps = int(int_prop(a, "steps", 0));
  fc.negatives = int(int_prop(a, "negatives", 1));
  fc.lr = float(num_prop(a, "lr", 0.05));
  fc.lambda = float(num_prop(a, "lambda", 1e-4));
  fc.seed = uint64_t(int_prop(a, "seed", 0));
  return fc;
}

// The ego embeddings (N * dim) of a training CSR.
View<float> ego_array(const Napi::Object& a, const TrainCsr& csr, int64_t D) {
  auto ego = typed_array<float>(a.Get("ego"), "ego");
  if (int64_t(ego.length) != (csr.U + csr.I) * D)
    throw Napi::RangeError::New(a.Env(), "ego.length (" + std::to_string(ego.length) + ") must be (numUsers + numItems) * dim (" +
                                             std::to_string((csr.U + csr.I) * D) + ")");
  return ego;
}

// Runs `fold(pf, pe)` on a worker thread into two new (B * D) arrays and resolves { final, ego }.
template <typename Fold>
Napi::Promise run_fold_in(Napi::Env env, int64_t B, int64_t D, Fold fold, std::vector<Napi::Value> keep) {
  auto fin = Napi::Float32Array::New(env, size_t(B * D));
  auto eg = Napi::Float32Array::New(env, size_t(B * D));
  float *pf = fin.Data(), *pe = eg.Data();
  auto refs = std::make_shared<std::pair<Napi::Reference<Napi::Float32Array>, Napi::Reference<Napi::Float32Array>>>(
      Napi::Persistent(fin), Napi::Persistent(eg));
  keep.push_back(fin);
  keep.push_back(eg);
  return PromiseWorker::Run(
      env, [fold, pf, pe] { fold(pf, pe); },
      [refs](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("final", refs->first.Value());
        o.Set("ego", refs->second.Value());
        return o;
      },
      std::move(keep));
}

Napi::Value CfFoldIn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object a = object_arg(info, 0, "cfFoldIn options");
  TrainCsr csr = train_csr(a);
  int64_t D = int_prop(a, "dim", 1);
  int L = int(int_prop(a, "layers", 0));
  auto ego = ego_array(a, csr, D);
  HistoryCsr h = history_csr(env, a.Get("historyPtr"), a.Get("historyIdx"));
  FoldInConfig fc = fold_in_config(a);
  return run_fold_in(
      env, h.B, D,
      [csr, D, L, ego, h, fc](float* pf, float* pe) {
        CfGraph g = build_cf_graph(csr.U, csr.I, csr.ptr.data, csr.idx.data);
        cf_fold_in_cpu(g, ego.data, D, L, h.B, h.ptr.data, h.idx.data, fc, pf, pe);
      },
      {a, a.Get("trainPtr"), a.Get("trainIdx"), a.Get("ego"), a.Get("historyPtr"), a.Get("historyIdx")});
}

class CfFoldInContextJs : public Napi::ObjectWrap<CfFoldInContextJs> {
 public:
  static Napi::FunctionReference* Define(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(
        env, "CfFoldInContext",
        {InstanceMethod("foldIn", &CfFoldInContextJs::FoldIn), InstanceMethod("dispose", &CfFoldInContextJs::Dispose),
         InstanceAccessor("numUsers", &CfFoldInContextJs::NumUsers, nullptr),
         InstanceAccessor("numItems", &CfFoldInContextJs::NumItems, nullptr),
         InstanceAccessor("dim", &CfFoldInContextJs::Dim, nullptr),
         InstanceAccessor("layers", &CfFoldInContextJs::Layers, nullptr),
         InstanceAccessor("disposed", &CfFoldInContextJs::Disposed, nullptr)});
    auto* ctor = new Napi::FunctionReference(Napi::Persistent(f));
    env.AddCleanupHook([ctor] { delete ctor; });
    exports.Set("CfFoldInContext", f);
    return ctor;
  }

  // Only createCfFoldInContext constructs: it passes an External holding the built context.
  explicit CfFoldInContextJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CfFoldInContextJs>(info) {
    if (info.Length() < 1 || !info[0].IsExternal())
      throw_type(info.Env(), "CfFoldInContext cannot be constructed directly: use createCfFoldInContext()");
    c_ = *info[0].As<Napi::External<std::shared_ptr<const FoldInContext>>>().Data();
  }

 private:
  // Shared with running foldIn workers, so dispose() only drops this object's hold on it.
  std::shared_ptr<const FoldInContext> c_;

  const FoldInContext& live(Napi::Env env, const char* what) const {
    if (!c_)
      throw to_js_error(env, "ERR_TOKENREC_DISPOSED", std::string("CfFoldInContext.") + what + ": the context was disposed");
    return *c_;
  }

  Napi::Value FoldIn(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    live(env, "foldIn");
    if (info.Length() < 2) throw_type(env, "foldIn(historyPtr, historyIdx, options)");
    HistoryCsr h = history_csr(env, info[0], info[1]);
    Napi::Object o = info.Length() > 2 && !info[2].IsUndefined() ? object_arg(info, 2, "foldIn options") : Napi::Object::New(env);
    FoldInConfig fc = fold_in_config(o);
    auto c = c_;
    return run_fold_in(
        env, h.B, c->dim(), [c, h, fc](float* pf, float* pe) { c->fold_in(h.B, h.ptr.data, h.idx.data, fc, pf, pe); },
        {info.This(), info[0], info[1]});
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    c_.reset();
    return info.Env().Undefined();
  }

  template <typename F>
  Napi::Value num(const Napi::CallbackInfo& info, F f) {
    return Napi::Number::New(info.Env(), double(f(live(info.Env(), "property"))));
  }
  Napi::Value NumUsers(const Napi::CallbackInfo& info) { return num(info, [](const FoldInContext& c) { return c.num_users(); }); }
  Napi::Value NumItems(const Napi::CallbackInfo& info) { return num(info, [](const FoldInContext& c) { return c.num_items(); }); }
  Napi::Value Dim(const Napi::CallbackInfo& info) { return num(info, [](const FoldInContext& c) { return c.dim(); }); }
  Napi::Value Layers(const Napi::CallbackInfo& info) {
    return num(info, [](const FoldInContext& c) { return int64_t(c.layers()); });
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !c_); }
};

Napi::Value CreateCfFoldInContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object a = object_arg(info, 0, "createCfFoldInContext options");
  TrainCsr csr = train_csr(a);
  int64_t D = int_prop(a, "dim", 1);
  int L = int(int_prop(a, "layers", 0));
  auto ego = ego_array(a, csr, D);
  auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
  auto holder = std::make_shared<std::shared_ptr<const FoldInContext>>();
  return PromiseWorker::Run(
      env,
      [csr, ego, D, L, holder] {
        *holder = std::make_shared<const FoldInContext>(csr.U, csr.I, csr.ptr.data, csr.idx.data, ego.data, D, L);
      },
      [holder, ctor](Napi::Env env) -> Napi::Value {
        return ctor->New({Napi::External<std::shared_ptr<const FoldInContext>>::New(env, holder.get())});
      },
      {a, a.Get("trainPtr"), a.Get("trainIdx"), a.Get("ego")});
}

void Init(Napi::Env env, Napi::Object exports) {
  Napi::FunctionReference* ctor = CfTrainerJs::Define(env, exports);
  exports.Set("createCfTrainer", Napi::Function::New(env, CreateCfTrainer, "createCfTrainer", ctor));
  exports.Set("cfFoldIn", Napi::Function::New(env, CfFoldIn, "cfFoldIn"));
  Napi::FunctionReference* fctor = CfFoldInContextJs::Define(env, exports);
  exports.Set("createCfFoldInContext", Napi::Function::New(env, CreateCfFoldInContext, "createCfFoldInContext", fctor));
}

}  // namespace

TOKENREC_BINDING(Init);

}  // namespace tokenrec::binding
