// Shared helpers of the Node-API binding: argument checks that throw JS TypeErrors naming the
// argument, zero-copy typed-array views, a Promise-returning AsyncWorker that keeps its inputs
// alive and turns tokenrec::Error into a JS Error with a `code`, and the module registry.
#pragma once
#include <napi.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tokenrec/error.h"

namespace tokenrec::binding {

// ---- module registry: each binding file registers an init function with TOKENREC_BINDING ----
using InitFn = void (*)(Napi::Env, Napi::Object);
std::vector<InitFn>& registry();
struct Registrar {
  explicit Registrar(InitFn f) { registry().push_back(f); }
};
#define TOKENREC_BINDING(fn) static ::tokenrec::binding::Registrar tokenrec_registrar_##fn(fn)

// ---- argument access -------------------------------------------------------------------------
[[noreturn]] inline void throw_type(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}

template <typename T>
struct ArrayTraits;
template <>
struct ArrayTraits<float> {
  static constexpr napi_typedarray_type type = napi_float32_array;
  static constexpr const char* name = "Float32Array";
};
template <>
struct ArrayTraits<int32_t> {
  static constexpr napi_typedarray_type type = napi_int32_array;
  static constexpr const char* name = "Int32Array";
};
template <>
struct ArrayTraits<uint32_t> {
  static constexpr napi_typedarray_type type = napi_uint32_array;
  static constexpr const char* name = "Uint32Array";
};

// A view of a JS typed array's memory (respects byteOffset). `ref` keeps the array alive while a
// worker uses it.
template <typename T>
struct View {
  T* data = nullptr;
  size_t length = 0;
};

template <typename T>
View<T> typed_array(const Napi::Value& v, const char* name) {
  Napi::Env env = v.Env();
  if (!v.IsTypedArray()) throw_type(env, std::string(name) + " must be a " + ArrayTraits<T>::name);
  auto ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != ArrayTraits<T>::type)
    throw_type(env, std::string(name) + " must be a " + ArrayTraits<T>::name);
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  return View<T>{arr.Data(), arr.ElementLength()};
}

inline Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsObject()) throw_type(info.Env(), std::string(name) + " must be an object");
  return info[i].As<Napi::Object>();
}

// Reads an integer property; `min` bounds it from below.
inline int64_t int_prop(const Napi::Object& o, const char* key, int64_t min) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw_type(o.Env(), std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d)) || d < double(min))
    throw Napi::RangeError::New(o.Env(), std::string(key) + " must be an integer >= " + std::to_string(min) +
                                             ", got " + v.ToString().Utf8Value());
  return static_cast<int64_t>(d);
}

// Reads an optional finite number property; `fallback` when it is undefined.
inline double num_prop(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw_type(o.Env(), std::string(key) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw Napi::RangeError::New(o.Env(), std::string(key) + " must be finite");
  return d;
}

inline std::string string_prop(const Napi::Object& o, const char* key, const std::string& fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsString()) throw_type(o.Env(), std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

// Converts a core error into a JS Error with .code set.
inline Napi::Error to_js_error(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// Runs `work` on a libuv worker thread and settles a Promise with `done(env)`. Never touches
// Node-API from Execute. Objects passed in `keep` (the typed arrays `work` reads or writes) stay
// referenced until the Promise settles.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done,
                std::vector<Napi::Value> keep)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
        done_(std::move(done)) {
    for (auto& v : keep)
      if (v.IsObject()) refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  // Queues the worker and returns its Promise.
  static Napi::Promise Run(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done,
                           std::vector<Napi::Value> keep) {
    auto* w = new PromiseWorker(env, std::move(work), std::move(done), std::move(keep));
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const tokenrec::Error& e) {
      code_ = code_name(e.code());
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "ERR_TOKENREC_OUT_OF_MEMORY";
      SetError("out of memory");
    } catch (const std::exception& e) {
      code_ = "ERR_TOKENREC_INTERNAL";
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    try {
      deferred_.Resolve(done_(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::HandleScope scope(Env());
    deferred_.Reject(to_js_error(Env(), code_, e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  std::vector<Napi::ObjectReference> refs_;
  std::string code_ = "ERR_TOKENREC_INTERNAL";
};

// Runs `fn` synchronously, converting core errors into JS errors (for fast calls).
template <typename F>
auto guard(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const tokenrec::Error& e) {
    throw to_js_error(env, code_name(e.code()), e.what());
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw to_js_error(env, "ERR_TOKENREC_OUT_OF_MEMORY", "out of memory");
  } catch (const std::exception& e) {
    throw to_js_error(env, "ERR_TOKENREC_INTERNAL", e.what());
  }
}

// Chooses CPU or CUDA for a call from a "backend" string: "cpu", "cuda" or "auto".
// An explicit "cuda" without a usable device is an error; "auto" uses CUDA when available.
bool use_cuda(Napi::Env env, const std::string& backend);

}  // namespace tokenrec::binding
