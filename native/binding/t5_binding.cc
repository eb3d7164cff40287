// The native T5 backbone as a JS class (wrapped with types and validation in lib/t5/model.ts):
//
//   new T5Model(config, seed)         config: { vocabSize, dModel, dKv, dFf, numHeads,
//                                     numEncoderLayers, numDecoderLayers, relativeAttentionNumBuckets,
//                                     relativeAttentionMaxDistance, dropoutRate, layerNormEpsilon }
//   forward({ batch, encoderLength, decoderLength, inputIds: Int32Array (B*S),
//             attentionMask?: Int32Array (B*S), decoderInputIds: Int32Array (B*T), train })
//       -> Promise<Float32Array (B*T*dModel)>   the decoder's final hidden states
//   backward(gradOutput: Float32Array (B*T*dModel)) -> Promise<void>   adds into the gradients
//   step({ lr, weightDecay, clipNorm }) -> Promise<{ gradNorm }>       AdamW (+ clipping)
//   zeroGrad(), getTensors(), getGradients(), setTensors(map), tensorInfo(), inputGradients(),
//   setDropoutSeed(seed), numParameters(), dispose()
//   getOptimizerState() -> { steps, m: { name: Float32Array }, v: { name: Float32Array } }
//   setOptimizerState({ steps, m, v })   AdamW's moments (every tensor, by HF name) and step count
//
// Long calls run on libuv workers (PromiseWorker); the model's mutex serialises them. Quick
// synchronous calls refuse (with an error) to wait for a running one rather than block the event
// loop. dispose() drops the model; a call in flight keeps it alive until it ends.
//
// Also: benchSgemm({ m, n, k, iters, builtin }) -> Promise<{ seconds, cpuSeconds, gflops, backend }>,
// the GEMM's throughput for bench/t5-train.ts (cpuSeconds: CPU time of the process, all threads).
#include <chrono>
#include <cmath>
#include <ctime>
#include <memory>
#include <mutex>

#include "tokenrec/gemm.h"
#include "tokenrec/t5.h"
#include "util.h"

namespace tokenrec::binding {
namespace {

double num_prop(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw_type(o.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

T5Config parse_config(const Napi::Object& o) {
  T5Config c;
  c.vocab_size = int_prop(o, "vocabSize", 1);
  c.d_model = int_prop(o, "dModel", 1);
  c.d_kv = int_prop(o, "dKv", 1);
  c.d_ff = int_prop(o, "dFf", 1);
  c.num_heads = int_prop(o, "numHeads", 1);
  c.num_encoder_layers = int_prop(o, "numEncoderLayers", 1);
  c.num_decoder_layers = int_prop(o, "numDecoderLayers", 1);
  c.num_buckets = int_prop(o, "relativeAttentionNumBuckets", 2);
  c.max_distance = int_prop(o, "relativeAttentionMaxDistance", 1);
  c.dropout_rate = float(num_prop(o, "dropoutRate"));
  c.layer_norm_eps = float(num_prop(o, "layerNormEpsilon"));
  return c;
}

class T5ModelWrap : public Napi::ObjectWrap<T5ModelWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(
        env, "T5Model",
        {InstanceMethod("forward", &T5ModelWrap::Forward), InstanceMethod("backward", &T5ModelWrap::Backward),
         InstanceMethod("step", &T5ModelWrap::Step), InstanceMethod("zeroGrad", &T5ModelWrap::ZeroGrad),
         InstanceMethod("getTensors", &T5ModelWrap::GetTensors),
         InstanceMethod("getGradients", &T5ModelWrap::GetGradients),
         InstanceMethod("setTensors", &T5ModelWrap::SetTensors), InstanceMethod("tensorInfo", &T5ModelWrap::TensorInfo),
         InstanceMethod("inputGradients", &T5ModelWrap::InputGradients),
         InstanceMethod("setDropoutSeed", &T5ModelWrap::SetDropoutSeed),
         InstanceMethod("getOptimizerState", &T5ModelWrap::GetOptimizerState),
         InstanceMethod("setOptimizerState", &T5ModelWrap::SetOptimizerState),
         InstanceMethod("numParameters", &T5ModelWrap::NumParameters),
         InstanceMethod("dispose", &T5ModelWrap::Dispose)});
    exports.Set("T5Model", f);
  }

  explicit T5ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T5ModelWrap>(info) {
    Napi::Env env = info.Env();
    Napi::Object cfg = object_arg(info, 0, "config");
    if (info.Length() < 2 || !info[1].IsNumber()) throw_type(env, "seed must be a number");
    double seed = info[1].As<Napi::Number>().DoubleValue();
    if (!(seed >= 0 && seed <= 9007199254740991.0) || seed != double(uint64_t(seed)))
      throw Napi::RangeError::New(env, "seed must be a non-negative integer");
    T5Config c = parse_config(cfg);
    guard(env, [&] { model_ = std::make_shared<T5Model>(c, uint64_t(seed)); });
  }

 private:
  std::shared_ptr<T5Model> model_;
  std::shared_ptr<T5Model> live(Napi::Env env) {
    if (!model_) throw to_js_error(env, "ERR_TOKENREC_DISPOSED", "T5Model has been disposed");
    return model_;
  }
  // Lock for synchronous calls: refuse instead of blocking the event loop behind a worker.
  std::unique_lock<std::mutex> try_lock(Napi::Env env, T5Model& m) {
    std::unique_lock<std::mutex> g(m.mutex(), std::try_to_lock);
    if (!g.owns_lock())
      throw to_js_error(env, "ERR_TOKENREC_BUSY",
                        "T5Model is busy with a forward/backward/step: await it before calling this method");
    return g;
  }

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    Napi::Object a = object_arg(info, 0, "forward options");
    int64_t B = int_prop(a, "batch", 1), S = int_prop(a, "encoderLength", 1), T = int_prop(a, "decoderLength", 1);
    auto ids = typed_array<int32_t>(a.Get("inputIds"), "inputIds");
    auto dids = typed_array<int32_t>(a.Get("decoderInputIds"), "decoderInputIds");
    if (int64_t(ids.length) != B * S)
      throw Napi::RangeError::New(env, "inputIds.length (" + std::to_string(ids.length) + ") must be batch * encoderLength (" + std::to_string(B * S) + ")");
    if (int64_t(dids.length) != B * T)
      throw Napi::RangeError::New(env, "decoderInputIds.length (" + std::to_string(dids.length) + ") must be batch * decoderLength (" + std::to_string(B * T) + ")");
    View<int32_t> mask;
    Napi::Value mv = a.Get("attentionMask");
    bool has_mask = !mv.IsUndefined() && !mv.IsNull();
    if (has_mask) {
      mask = typed_array<int32_t>(mv, "attentionMask");
      if (int64_t(mask.length) != B * S)
        throw Napi::RangeError::New(env, "attentionMask.length (" + std::to_string(mask.length) + ") must be batch * encoderLength (" + std::to_string(B * S) + ")");
    }
    Napi::Value tv = a.Get("train");
    if (!tv.IsBoolean()) throw_type(env, "train must be a boolean");
    bool train = tv.As<Napi::Boolean>().Value();
    T5Batch bt{B, S, T, ids.data, has_mask ? mask.data : nullptr, dids.data};
    auto out = Napi::Float32Array::New(env, size_t(B * T * m->config().d_model));
    float* od = out.Data();
    return PromiseWorker::Run(
        env,
        [m, bt, train, od] {
          std::lock_guard<std::mutex> g(m->mutex());
          m->forward(bt, train, od);
        },
        [ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out))](Napi::Env) -> Napi::Value {
          return ref->Value();
        },
        {a, a.Get("inputIds"), mv, a.Get("decoderInputIds"), out});
  }

  Napi::Value Backward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    if (info.Length() < 1) throw_type(env, "gradOutput must be a Float32Array");
    auto g = typed_array<float>(info[0], "gradOutput");
    int64_t want;
    {
      auto lk = try_lock(env, *m);
      want = m->pending_output_size();
    }
    if (want == 0)
      throw to_js_error(env, "ERR_TOKENREC_INVALID_ARGUMENT",
                        "T5Model.backward: no train forward to differentiate (call forward with train: true first; one backward per forward)");
    if (int64_t(g.length) != want)
      throw Napi::RangeError::New(env, "gradOutput.length (" + std::to_string(g.length) + ") must equal the last train forward's output size (" + std::to_string(want) + ")");
    const float* gd = g.data;
    return PromiseWorker::Run(
        env,
        [m, gd] {
          std::lock_guard<std::mutex> lk(m->mutex());
          m->backward(gd);
        },
        [](Napi::Env e) -> Napi::Value { return e.Undefined(); }, {info[0]});
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    Napi::Object a = object_arg(info, 0, "step options");
    AdamWOptions o;
    o.lr = float(num_prop(a, "lr"));
    if (!a.Get("weightDecay").IsUndefined()) o.weight_decay = float(num_prop(a, "weightDecay"));
    if (!a.Get("clipNorm").IsUndefined()) o.clip_norm = float(num_prop(a, "clipNorm"));
    if (!a.Get("beta1").IsUndefined()) o.beta1 = float(num_prop(a, "beta1"));
    if (!a.Get("beta2").IsUndefined()) o.beta2 = float(num_prop(a, "beta2"));
    if (!a.Get("eps").IsUndefined()) o.eps = float(num_prop(a, "eps"));
    auto norm = std::make_shared<double>(0);
    return PromiseWorker::Run(
        env,
        [m, o, norm] {
          std::lock_guard<std::mutex> lk(m->mutex());
          *norm = m->step(o);
        },
        [norm](Napi::Env e) -> Napi::Value {
          Napi::Object r = Napi::Object::New(e);
          r.Set("gradNorm", *norm);
          return r;
        },
        {a});
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    auto m = live(info.Env());
    auto lk = try_lock(info.Env(), *m);
    m->zero_grad();
    return info.Env().Undefined();
  }

  Napi::Value Export(Napi::Env env, bool grads) {
    auto m = live(env);
    auto lk = try_lock(env, *m);
    Napi::Object o = Napi::Object::New(env);
    const std::vector<float>& src = grads ? m->grads() : m->params();
    for (const T5Tensor& t : m->tensors()) {
      auto arr = Napi::Float32Array::New(env, size_t(t.size));
      std::copy(src.begin() + t.offset, src.begin() + t.offset + t.size, arr.Data());
      o.Set(t.name, arr);
    }
    return o;
  }
  Napi::Value GetTensors(const Napi::CallbackInfo& info) { return Export(info.Env(), false); }
  Napi::Value GetGradients(const Napi::CallbackInfo& info) { return Export(info.Env(), true); }

  // setTensors({ name: Float32Array }) copies the given tensors in (others keep their values).
  // Unknown names and wrong sizes are errors, checked before anything is copied.
  Napi::Value SetTensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    Napi::Object map = object_arg(info, 0, "tensors");
    auto lk = try_lock(env, *m);
    Napi::Array keys = map.GetPropertyNames();
    std::vector<std::pair<int, View<float>>> todo;
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      std::string name = keys.Get(i).As<Napi::String>().Utf8Value();
      int ti = m->find_tensor(name);
      if (ti < 0) throw to_js_error(env, "ERR_TOKENREC_INVALID_ARGUMENT", "setTensors: this T5 has no tensor named '" + name + "'");
      auto v = typed_array<float>(map.Get(name), ("tensor '" + name + "'").c_str());
      const T5Tensor& t = m->tensors()[size_t(ti)];
      if (int64_t(v.length) != t.size)
        throw Napi::RangeError::New(env, "setTensors: tensor '" + name + "' has " + std::to_string(v.length) + " values, expected " + std::to_string(t.size));
      for (size_t j = 0; j < v.length; ++j)
        if (!std::isfinite(v.data[j]))
          throw to_js_error(env, "ERR_TOKENREC_NOT_FINITE", "setTensors: tensor '" + name + "' holds a non-finite value at flat index " + std::to_string(j));
      todo.push_back({ti, v});
    }
    for (auto& [ti, v] : todo) {
      const T5Tensor& t = m->tensors()[size_t(ti)];
      std::copy(v.data, v.data + v.length, m->params().begin() + t.offset);
    }
    return Napi::Number::New(env, double(todo.size()));
  }

  Napi::Value TensorInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    Napi::Object o = Napi::Object::New(env);
    for (const T5Tensor& t : m->tensors()) {
      Napi::Array shape = Napi::Array::New(env, t.shape.size());
      for (size_t i = 0; i < t.shape.size(); ++i) shape.Set(uint32_t(i), double(t.shape[i]));
      o.Set(t.name, shape);
    }
    return o;
  }

  Napi::Value InputGradients(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    auto lk = try_lock(env, *m);
    const float* e = m->encoder_input_grad();
    if (!e) return env.Null();
    // Sizes of the last backward's batch: inferred from the stored train batch.
    int64_t ne = last_enc_size(*m), nd = last_dec_size(*m);
    auto ea = Napi::Float32Array::New(env, size_t(ne));
    auto da = Napi::Float32Array::New(env, size_t(nd));
    std::copy(e, e + ne, ea.Data());
    std::copy(m->decoder_input_grad(), m->decoder_input_grad() + nd, da.Data());
    Napi::Object o = Napi::Object::New(env);
    o.Set("encoder", ea);
    o.Set("decoder", da);
    return o;
  }
  static int64_t last_enc_size(T5Model& m) { return m.input_grad_sizes().first; }
  static int64_t last_dec_size(T5Model& m) { return m.input_grad_sizes().second; }

  Napi::Value SetDropoutSeed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    if (info.Length() < 1 || !info[0].IsNumber()) throw_type(env, "seed must be a number");
    auto lk = try_lock(env, *m);
    m->set_dropout_seed(uint64_t(info[0].As<Napi::Number>().Int64Value()));
    return env.Undefined();
  }

  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    auto lk = try_lock(env, *m);
    Napi::Object mo = Napi::Object::New(env), vo = Napi::Object::New(env);
    for (const T5Tensor& t : m->tensors()) {
      auto ma = Napi::Float32Array::New(env, size_t(t.size));
      auto va = Napi::Float32Array::New(env, size_t(t.size));
      std::copy(m->adam_m().begin() + t.offset, m->adam_m().begin() + t.offset + t.size, ma.Data());
      std::copy(m->adam_v().begin() + t.offset, m->adam_v().begin() + t.offset + t.size, va.Data());
      mo.Set(t.name, ma);
      vo.Set(t.name, va);
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("steps", double(m->steps_taken()));
    o.Set("m", mo);
    o.Set("v", vo);
    return o;
  }

  // setOptimizerState({ steps, m, v }): m and v map every tensor name to a Float32Array of its
  // size. Names and sizes are checked here; values (finite, v >= 0) by the core, which changes
  // nothing unless all of it is valid.
  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto m = live(env);
    Napi::Object a = object_arg(info, 0, "optimizer state");
    Napi::Value sv = a.Get("steps");
    if (!sv.IsNumber()) throw_type(env, "optimizer state: steps must be a number");
    double steps = sv.As<Napi::Number>().DoubleValue();
    if (!(steps >= 0 && steps <= 9007199254740991.0) || steps != double(int64_t(steps)))
      throw Napi::RangeError::New(env, "optimizer state: steps must be a non-negative integer, got " + std::to_string(steps));
    auto lk = try_lock(env, *m);
    const int64_t n = m->num_parameters();
    std::vector<float> flat[2] = {std::vector<float>(size_t(n)), std::vector<float>(size_t(n))};
    const char* which[2] = {"m", "v"};
    for (int k = 0; k < 2; ++k) {
      Napi::Value mv = a.Get(which[k]);
      if (!mv.IsObject()) throw_type(env, std::string("optimizer state: ") + which[k] + " must be an object of Float32Arrays by tensor name");
      Napi::Object map = mv.As<Napi::Object>();
      Napi::Array keys = map.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string name = keys.Get(i).As<Napi::String>().Utf8Value();
        if (m->find_tensor(name) < 0)
          throw to_js_error(env, "ERR_TOKENREC_INVALID_ARGUMENT", std::string("optimizer state: ") + which[k] + " has a tensor '" + name + "' this T5 does not have");
      }
      for (const T5Tensor& t : m->tensors()) {
        std::string what = std::string("optimizer state ") + which[k] + "['" + t.name + "']";
        if (!map.Has(t.name)) throw to_js_error(env, "ERR_TOKENREC_INVALID_ARGUMENT", what + " is missing");
        auto view = typed_array<float>(map.Get(t.name), what.c_str());
        if (int64_t(view.length) != t.size)
          throw Napi::RangeError::New(env, what + " has " + std::to_string(view.length) + " values, expected " + std::to_string(t.size));
        std::copy(view.data, view.data + view.length, flat[k].begin() + t.offset);
      }
    }
    guard(env, [&] { m->set_optimizer_state(int64_t(steps), flat[0].data(), n, flat[1].data(), n); });
    return env.Undefined();
  }

  Napi::Value NumParameters(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(live(info.Env())->num_parameters()));
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();
    return info.Env().Undefined();
  }
};

Napi::Value BenchSgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object a = object_arg(info, 0, "benchSgemm options");
  int64_t M = int_prop(a, "m", 1), N = int_prop(a, "n", 1), K = int_prop(a, "k", 1), iters = int_prop(a, "iters", 1);
  Napi::Value bv = a.Get("builtin");
  bool builtin = bv.IsBoolean() && bv.As<Napi::Boolean>().Value();
  auto res = std::make_shared<std::pair<double, double>>(0, 0);
  return PromiseWorker::Run(
      env,
      [=] {
        std::vector<float> A(size_t(M * K)), Bm(size_t(K * N)), C(size_t(M * N));
        for (size_t i = 0; i < A.size(); ++i) A[i] = float(i % 7) * 0.1f;
        for (size_t i = 0; i < Bm.size(); ++i) Bm[i] = float(i % 5) * 0.1f;
        auto run = [&] {
          if (builtin) sgemm_builtin(false, true, M, N, K, 1.f, A.data(), K, Bm.data(), K, 0.f, C.data(), N);
          else sgemm(false, true, M, N, K, 1.f, A.data(), K, Bm.data(), K, 0.f, C.data(), N);
        };
        run();  // warm-up
        timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        auto t0 = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < iters; ++i) run();
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        res->first = s;
        res->second = (c1.tv_sec - c0.tv_sec) + 1e-9 * double(c1.tv_nsec - c0.tv_nsec);
      },
      [res, builtin, flops = 2.0 * double(M) * double(N) * double(K) * double(iters)](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("seconds", res->first);
        r.Set("cpuSeconds", res->second);
        r.Set("gflops", flops / res->first / 1e9);
        r.Set("backend", builtin ? "builtin" : gemm_backend());
        return r;
      },
      {a});
}

// t5RelativePositionBuckets({ positions: Int32Array, bidirectional, numBuckets, maxDistance })
//   -> Int32Array: T5's bucket of each relative position (key index - query index). Synchronous
//   (a table lookup); used by tests and by exporters that precompute the bias.
Napi::Value RelativePositionBuckets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object a = object_arg(info, 0, "t5RelativePositionBuckets options");
  auto pos = typed_array<int32_t>(a.Get("positions"), "positions");
  Napi::Value bv = a.Get("bidirectional");
  if (!bv.IsBoolean()) throw_type(env, "bidirectional must be a boolean");
  int64_t nb = int_prop(a, "numBuckets", 2), md = int_prop(a, "maxDistance", 1);
  auto out = Napi::Int32Array::New(env, pos.length);
  for (size_t i = 0; i < pos.length; ++i)
    out[i] = int32_t(t5::relative_position_bucket(pos.data[i], bv.As<Napi::Boolean>().Value(), nb, md));
  return out;
}

void Init(Napi::Env env, Napi::Object exports) {
  T5ModelWrap::Init(env, exports);
  exports.Set("t5RelativePositionBuckets", Napi::Function::New(env, RelativePositionBuckets, "t5RelativePositionBuckets"));
  exports.Set("benchSgemm", Napi::Function::New(env, BenchSgemm, "benchSgemm"));
}

}  // namespace
TOKENREC_BINDING(Init);

}  // namespace tokenrec::binding
