// Module entry point: runs every registered binding init, and exports backendInfo() and
// thread-count control.
#include "tokenrec/backend.h"
#include "tokenrec/parallel.h"
#include "util.h"

namespace tokenrec::binding {

std::vector<InitFn>& registry() {
  static std::vector<InitFn> r;
  return r;
}

bool use_cuda(Napi::Env env, const std::string& backend) {
  if (backend == "cpu") return false;
  if (backend == "cuda") {
    auto info = backend_info();
    if (!info.cuda.available)
      throw to_js_error(env, "ERR_TOKENREC_CUDA", "backend 'cuda' was requested but is not usable: " + info.cuda.error);
    return true;
  }
  if (backend == "auto") return cuda_available();
  throw Napi::TypeError::New(env, "backend must be 'auto', 'cpu' or 'cuda', got '" + backend + "'");
}

static Napi::Value BackendInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BackendInfo b = backend_info();
  Napi::Object o = Napi::Object::New(env);
  Napi::Array compiled = Napi::Array::New(env);
  compiled.Set(uint32_t(0), "cpu");
  if (b.cuda_compiled) compiled.Set(uint32_t(1), "cuda");
  o.Set("compiled", compiled);
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("available", b.cuda.available);
  if (b.cuda.available) {
    cuda.Set("device", b.cuda.name);
    cuda.Set("computeCapability", std::to_string(b.cuda.compute_major) + "." + std::to_string(b.cuda.compute_minor));
    cuda.Set("memoryBytes", double(b.cuda.total_memory));
  } else {
    cuda.Set("reason", b.cuda.error);
  }
  o.Set("cuda", cuda);
  o.Set("cpuIsa", b.cpu_isa);
  o.Set("gemm", b.gemm);
  o.Set("threads", b.threads);
  return o;
}

static Napi::Value SetNumThreadsJs(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw_type(info.Env(), "threads must be a number");
  set_num_threads(info[0].As<Napi::Number>().Int32Value());
  return Napi::Number::New(info.Env(), num_threads());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("backendInfo", Napi::Function::New(env, BackendInfoJs, "backendInfo"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreadsJs, "setNumThreads"));
  for (InitFn f : registry()) f(env, exports);
  return exports;
}

}  // namespace tokenrec::binding

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return tokenrec::binding::Init(env, exports);
}

NODE_API_MODULE(tokenrec, InitModule)
