// Node-API binding of the MQ-Tokenizer kernels (include/tokenrec/{mlp,vq,optim,tokenizer}.h).
//
//   vqNearest({ a, codebooks, K, dim, backend }) -> Promise<{ idx: Int32Array (B*K), dist: Float32Array (B*K) }>
//     a: Float32Array (B*K*dim) laid out (B, K, dim); codebooks: Float32Array (K*L*dim) laid out (K, L, dim).
//   kmeans({ data, dim, L, iters, seed }) -> Promise<{ centroids: Float32Array (L*dim), mse: number }>
//   new MqTokenizer({ d, K, L, dc, encHidden, decHidden, maskRate, beta, lr, beta1, beta2, eps, weightDecay, decorrelation, seed, independentMasks })
//     .trainStep(x, rowIds, epoch) -> Promise<{ loss, recon, codebook, commitment, decorrelation, codes: Int32Array (B*K) }>
//     .encode(x, backend?) -> Promise<{ codes: Int32Array (B*K), dist: Float32Array (B*K) }>   (no mask)
//     .encoderOutputs(x) -> Promise<Float32Array (B*K*dc)>
//     .reconstruct(x) -> Promise<{ recon: Float32Array (B*d), codes: Int32Array (B*K) }>
//     .setCodewords(k, rows: Int32Array (n), values: Float32Array (n*dc))    re-seed; clears their AdamW moments
//     .getParams() -> Float32Array (a copy)   .setParams(Float32Array)   .layout() -> offsets and widths
//     .step (number of AdamW updates so far)  .dispose()
// Every method of a disposed tokenizer throws; work already queued finishes on its own reference.
#include <algorithm>
#include <cmath>
#include <memory>

#include "tokenrec/mlp.h"
#include "tokenrec/tokenizer.h"
#include "tokenrec/vq.h"
#include "util.h"

namespace tokenrec::binding {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

// Rows of a flat array of `width` columns, or a RangeError naming the argument.
int64_t rows_of(Napi::Env env, size_t length, int64_t width, const char* name, const char* unit) {
  if (width <= 0 || length % size_t(width))
    throw Napi::RangeError::New(env, std::string(name) + ".length (" + std::to_string(length) + ") is not a multiple of " +
                                         unit + " (" + str(width) + ")");
  return int64_t(length) / width;
}

int64_t int_prop_or(const Napi::Object& o, const char* key, int64_t fallback, int64_t min) {
  if (o.Get(key).IsUndefined()) return fallback;
  return int_prop(o, key, min);
}

std::vector<int64_t> int_list_prop(const Napi::Object& o, const char* key, std::vector<int64_t> fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsArray()) throw_type(o.Env(), std::string(key) + " must be an array of positive integers");
  auto arr = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 1) || d != double(int64_t(d)))
      throw Napi::RangeError::New(o.Env(), std::string(key) + "[" + std::to_string(i) + "] must be a positive integer");
    out.push_back(int64_t(d));
  }
  return out;
}

Napi::Value VqNearest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(info, 0, "vqNearest options");
  int64_t K = int_prop(o, "K", 1), D = int_prop(o, "dim", 1);
  auto a = typed_array<float>(o.Get("a"), "a");
  auto cb = typed_array<float>(o.Get("codebooks"), "codebooks");
  int64_t B = rows_of(env, a.length, K * D, "a", "K * dim");
  int64_t L = rows_of(env, cb.length, K * D, "codebooks", "K * dim");
  if (L == 0) throw Napi::RangeError::New(env, "codebooks is empty");
  bool cuda = use_cuda(env, string_prop(o, "backend", "auto"));
  auto idx = Napi::Int32Array::New(env, size_t(B * K));
  auto dist = Napi::Float32Array::New(env, size_t(B * K));
  int32_t* pi = idx.Data();
  float* pd = dist.Data();
  const float* pa = a.data;
  const float* pc = cb.data;
  auto keep_idx = std::make_shared<Napi::Reference<Napi::Int32Array>>(Napi::Persistent(idx));
  auto keep_dist = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(dist));
  return PromiseWorker::Run(
      env,
      [=] { cuda ? vq_nearest_cuda(pa, pc, B, K, L, D, pi, pd) : vq_nearest_cpu(pa, pc, B, K, L, D, pi, pd); },
      [keep_idx, keep_dist](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("idx", keep_idx->Value());
        r.Set("dist", keep_dist->Value());
        return r;
      },
      {o, o.Get("a"), o.Get("codebooks"), idx, dist});
}

Napi::Value Kmeans(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = object_arg(info, 0, "kmeans options");
  int64_t D = int_prop(o, "dim", 1), L = int_prop(o, "L", 1);
  int64_t iters = int_prop_or(o, "iters", 10, 0), seed = int_prop_or(o, "seed", 1, 0);
  auto data = typed_array<float>(o.Get("data"), "data");
  int64_t N = rows_of(env, data.length, D, "data", "dim");
  auto cent = Napi::Float32Array::New(env, size_t(L * D));
  float* pc = cent.Data();
  const float* pdata = data.data;
  auto mse = std::make_shared<double>(0);
  auto keep = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(cent));
  return PromiseWorker::Run(
      env, [=] { *mse = kmeans_cpu(pdata, N, D, L, int(iters), uint64_t(seed), pc); },
      [keep, mse](Napi::Env e) -> Napi::Value {
        Napi::Object r = Napi::Object::New(e);
        r.Set("centroids", keep->Value());
        r.Set("mse", *mse);
        return r;
      },
      {o, o.Get("data"), cent});
}

class MqTokenizerJs : public Napi::ObjectWrap<MqTokenizerJs> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(env, "MqTokenizer",
                                   {InstanceMethod("trainStep", &MqTokenizerJs::TrainStep),
                                    InstanceMethod("encode", &MqTokenizerJs::Encode),
                                    InstanceMethod("encoderOutputs", &MqTokenizerJs::EncoderOutputs),
                                    InstanceMethod("reconstruct", &MqTokenizerJs::Reconstruct),
                                    InstanceMethod("setCodewords", &MqTokenizerJs::SetCodewords),
                                    InstanceMethod("getParams", &MqTokenizerJs::GetParams),
                                    InstanceMethod("setParams", &MqTokenizerJs::SetParams),
                                    InstanceMethod("layout", &MqTokenizerJs::Layout),
                                    InstanceMethod("dispose", &MqTokenizerJs::Dispose),
                                    InstanceAccessor("step", &MqTokenizerJs::Step, nullptr),
                                    InstanceAccessor("disposed", &MqTokenizerJs::Disposed, nullptr)});
    exports.Set("MqTokenizer", f);
  }

  explicit MqTokenizerJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MqTokenizerJs>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = object_arg(info, 0, "MqTokenizer config");
    MqConfig c;
    c.d = int_prop(o, "d", 1);
    c.K = int_prop_or(o, "K", c.K, 1);
    c.L = int_prop_or(o, "L", c.L, 2);
    c.dc = int_prop_or(o, "dc", c.dc, 1);
    c.enc_hidden = int_list_prop(o, "encHidden", c.enc_hidden);
    c.dec_hidden = int_list_prop(o, "decHidden", c.dec_hidden);
    c.mask_rate = float(num_prop(o, "maskRate", c.mask_rate));
    c.beta = float(num_prop(o, "beta", c.beta));
    c.lr = float(num_prop(o, "lr", c.lr));
    c.beta1 = float(num_prop(o, "beta1", c.beta1));
    c.beta2 = float(num_prop(o, "beta2", c.beta2));
    c.eps = float(num_prop(o, "eps", c.eps));
    c.weight_decay = float(num_prop(o, "weightDecay", c.weight_decay));
    c.decorrelation = float(num_prop(o, "decorrelation", c.decorrelation));
    c.seed = uint64_t(int_prop_or(o, "seed", 1, 0));
    Napi::Value im = o.Get("independentMasks");
    if (!im.IsUndefined()) {
      if (!im.IsBoolean()) throw_type(env, "independentMasks must be a boolean");
      c.independent_masks = im.As<Napi::Boolean>().Value();
    }
    t_ = guard(env, [&] { return std::make_shared<MqTokenizer>(c); });
  }

 private:
  std::shared_ptr<MqTokenizer> t_;

  std::shared_ptr<MqTokenizer> live(Napi::Env env) const {
    if (!t_) throw to_js_error(env, "ERR_TOKENREC_DISPOSED", "MqTokenizer: used after dispose()");
    return t_;
  }

  // x as (B, d) rows.
  int64_t batch_rows(Napi::Env env, const View<float>& x) const { return rows_of(env, x.length, t_->config().d, "x", "d"); }

  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    if (info.Length() < 3) throw_type(env, "trainStep(x, rowIds, epoch) takes 3 arguments");
    auto x = typed_array<float>(info[0], "x");
    auto ids = typed_array<int32_t>(info[1], "rowIds");
    if (!info[2].IsNumber()) throw_type(env, "epoch must be a number");
    double ep = info[2].As<Napi::Number>().DoubleValue();
    if (!(ep >= 0) || ep != double(int64_t(ep))) throw Napi::RangeError::New(env, "epoch must be a non-negative integer");
    int64_t B = batch_rows(env, x);
    if (B == 0) throw Napi::RangeError::New(env, "x is empty: a training batch needs at least one row");
    if (int64_t(ids.length) != B)
      throw Napi::RangeError::New(env, "rowIds.length (" + std::to_string(ids.length) + ") must equal the batch size (" + str(B) + ")");
    const int64_t K = t->config().K;
    auto codes = Napi::Int32Array::New(env, size_t(B * K));
    int32_t* pc = codes.Data();
    const float* px = x.data;
    const int32_t* pids = ids.data;
    auto st = std::make_shared<MqStepStats>();
    auto keep = std::make_shared<Napi::Reference<Napi::Int32Array>>(Napi::Persistent(codes));
    return PromiseWorker::Run(
        env,
        [=] {
          std::lock_guard<std::mutex> g(t->mutex());
          *st = t->train_step(px, pids, B, uint64_t(ep), pc);
        },
        [st, keep](Napi::Env e) -> Napi::Value {
          Napi::Object r = Napi::Object::New(e);
          r.Set("loss", st->loss);
          r.Set("recon", st->recon);
          r.Set("codebook", st->codebook);
          r.Set("commitment", st->commitment);
          r.Set("decorrelation", st->decorrelation);
          r.Set("codes", keep->Value());
          return r;
        },
        {info[0], info[1], codes});
  }

  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    auto x = typed_array<float>(info[0], "x");
    std::string backend = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "cpu";
    bool cuda = use_cuda(env, backend);
    int64_t B = batch_rows(env, x);
    const int64_t K = t->config().K;
    auto codes = Napi::Int32Array::New(env, size_t(B * K));
    auto dist = Napi::Float32Array::New(env, size_t(B * K));
    int32_t* pc = codes.Data();
    float* pd = dist.Data();
    const float* px = x.data;
    auto kc = std::make_shared<Napi::Reference<Napi::Int32Array>>(Napi::Persistent(codes));
    auto kd = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(dist));
    return PromiseWorker::Run(
        env,
        [=] {
          std::lock_guard<std::mutex> g(t->mutex());
          if (!cuda) {
            t->encode(px, B, pc, pd);
            return;
          }
          // GPU path: each encoder's MLP and the search run on the device.
          const auto& c = t->config();
          const MlpShape& s = t->encoder_shape();
          std::vector<float> acts(size_t(s.acts_size(B))), a(size_t(B * c.K * c.dc));
          for (int64_t k = 0; k < c.K; ++k) {
            mlp_forward_cuda(s, t->params() + t->encoder_offset(k), px, B, nullptr, acts.data());
            const float* out = acts.data() + s.acts_offset(s.layers(), B);
            for (int64_t b = 0; b < B; ++b)
              std::copy(out + b * c.dc, out + (b + 1) * c.dc, a.data() + (b * c.K + k) * c.dc);
          }
          vq_nearest_cuda(a.data(), t->params() + t->codebook_offset(), B, c.K, c.L, c.dc, pc, pd);
        },
        [kc, kd](Napi::Env e) -> Napi::Value {
          Napi::Object r = Napi::Object::New(e);
          r.Set("codes", kc->Value());
          r.Set("dist", kd->Value());
          return r;
        },
        {info[0], codes, dist});
  }

  Napi::Value EncoderOutputs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    auto x = typed_array<float>(info[0], "x");
    int64_t B = batch_rows(env, x);
    auto out = Napi::Float32Array::New(env, size_t(B * t->config().K * t->config().dc));
    float* po = out.Data();
    const float* px = x.data;
    auto keep = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
    return PromiseWorker::Run(
        env,
        [=] {
          std::lock_guard<std::mutex> g(t->mutex());
          t->encoder_outputs(px, B, po);
        },
        [keep](Napi::Env) -> Napi::Value { return keep->Value(); }, {info[0], out});
  }

  Napi::Value Reconstruct(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    auto x = typed_array<float>(info[0], "x");
    int64_t B = batch_rows(env, x);
    auto rec = Napi::Float32Array::New(env, size_t(B * t->config().d));
    auto codes = Napi::Int32Array::New(env, size_t(B * t->config().K));
    float* pr = rec.Data();
    int32_t* pc = codes.Data();
    const float* px = x.data;
    auto kr = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(rec));
    auto kc = std::make_shared<Napi::Reference<Napi::Int32Array>>(Napi::Persistent(codes));
    return PromiseWorker::Run(
        env,
        [=] {
          std::lock_guard<std::mutex> g(t->mutex());
          t->reconstruct(px, B, pr, pc);
        },
        [kr, kc](Napi::Env e) -> Napi::Value {
          Napi::Object r = Napi::Object::New(e);
          r.Set("recon", kr->Value());
          r.Set("codes", kc->Value());
          return r;
        },
        {info[0], rec, codes});
  }

  Napi::Value SetCodewords(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    if (info.Length() < 3 || !info[0].IsNumber()) throw_type(env, "setCodewords(k, rows, values): k must be a number");
    int64_t k = info[0].As<Napi::Number>().Int64Value();
    auto rows = typed_array<int32_t>(info[1], "rows");
    auto vals = typed_array<float>(info[2], "values");
    if (vals.length != rows.length * size_t(t->config().dc))
      throw Napi::RangeError::New(env, "values.length (" + std::to_string(vals.length) + ") must be rows.length * dc (" +
                                           std::to_string(rows.length * size_t(t->config().dc)) + ")");
    guard(env, [&] {
      std::lock_guard<std::mutex> g(t->mutex());
      t->set_codewords(k, rows.data, int64_t(rows.length), vals.data);
    });
    return env.Undefined();
  }

  Napi::Value GetParams(const Napi::CallbackInfo& info) {
    auto t = live(info.Env());
    std::lock_guard<std::mutex> g(t->mutex());
    auto out = Napi::Float32Array::New(info.Env(), size_t(t->num_params()));
    std::copy(t->params(), t->params() + t->num_params(), out.Data());
    return out;
  }

  Napi::Value SetParams(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    auto p = typed_array<float>(info[0], "params");
    if (int64_t(p.length) != t->num_params())
      throw Napi::RangeError::New(env, "params.length (" + std::to_string(p.length) + ") must be " + str(t->num_params()) +
                                           " for this configuration");
    for (size_t i = 0; i < p.length; ++i)
      if (!std::isfinite(p.data[i])) throw to_js_error(env, "ERR_TOKENREC_NOT_FINITE", "params[" + std::to_string(i) + "] is not finite");
    std::lock_guard<std::mutex> g(t->mutex());
    std::copy(p.data, p.data + p.length, t->params());
    return env.Undefined();
  }

  Napi::Value Layout(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto t = live(env);
    Napi::Object r = Napi::Object::New(env);
    auto dims = [&](const MlpShape& s) {
      Napi::Array a = Napi::Array::New(env, s.dims.size());
      for (size_t i = 0; i < s.dims.size(); ++i) a.Set(uint32_t(i), double(s.dims[i]));
      return a;
    };
    Napi::Array enc = Napi::Array::New(env, size_t(t->config().K));
    for (int64_t k = 0; k < t->config().K; ++k) enc.Set(uint32_t(k), double(t->encoder_offset(k)));
    r.Set("numParams", double(t->num_params()));
    r.Set("encoderOffsets", enc);
    r.Set("encoderParams", double(t->encoder_shape().num_params()));
    r.Set("codebookOffset", double(t->codebook_offset()));
    r.Set("decoderOffset", double(t->decoder_offset()));
    r.Set("decoderParams", double(t->decoder_shape().num_params()));
    r.Set("encoderDims", dims(t->encoder_shape()));
    r.Set("decoderDims", dims(t->decoder_shape()));
    return r;
  }

  Napi::Value Step(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(live(info.Env())->step())); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !t_); }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    t_.reset();
    return info.Env().Undefined();
  }
};

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("vqNearest", Napi::Function::New(env, VqNearest, "vqNearest"));
  exports.Set("kmeans", Napi::Function::New(env, Kmeans, "kmeans"));
  MqTokenizerJs::Init(env, exports);
}

}  // namespace
TOKENREC_BINDING(Init);

}  // namespace tokenrec::binding
