// Minimal test harness for the C++ tests (no dependency): TEST cases register themselves,
// CHECK records a failure without stopping the case, main() runs all and returns non-zero on any
// failure. A GPU test calls skip_without_cuda() first; it exits 77 (ctest: skipped) without one.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "tokenrec/backend.h"

namespace check {

struct Case {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<Case>& cases() {
  static std::vector<Case> c;
  return c;
}
inline int& failures() {
  static int f = 0;
  return f;
}
struct Registrar {
  Registrar(const char* n, std::function<void()> f) { cases().push_back({n, std::move(f)}); }
};

inline void skip_without_cuda() {
  auto info = tokenrec::backend_info();
  if (!info.cuda.available) {
    std::printf("SKIP: no CUDA device (%s)\n", info.cuda.error.c_str());
    std::exit(77);
  }
}

}  // namespace check

#define CHECK_CAT2(a, b) a##b
#define CHECK_CAT(a, b) CHECK_CAT2(a, b)
#define TEST(name)                                                              \
  static void name();                                                           \
  static check::Registrar CHECK_CAT(reg_, name)(#name, name);                   \
  static void name()

#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      ++check::failures();                                                            \
      std::printf("  FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);                 \
    }                                                                                 \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                               \
  do {                                                                                      \
    double _a = (a), _b = (b);                                                              \
    if (!(std::fabs(_a - _b) <= (tol))) {                                                   \
      ++check::failures();                                                                  \
      std::printf("  FAILED %s:%d: %s = %.9g vs %s = %.9g (tol %g)\n", __FILE__, __LINE__, \
                  #a, _a, #b, _b, double(tol));                                             \
    }                                                                                       \
  } while (0)

#define CHECK_THROWS(stmt)                                                            \
  do {                                                                                \
    bool _threw = false;                                                              \
    try {                                                                             \
      stmt;                                                                           \
    } catch (const std::exception&) {                                                 \
      _threw = true;                                                                  \
    }                                                                                 \
    if (!_threw) {                                                                    \
      ++check::failures();                                                            \
      std::printf("  FAILED %s:%d: expected an exception from %s\n", __FILE__, __LINE__, #stmt); \
    }                                                                                 \
  } while (0)

int main() {
  int failed_cases = 0;
  for (auto& c : check::cases()) {
    int before = check::failures();
    try {
      c.fn();
    } catch (const std::exception& e) {
      ++check::failures();
      std::printf("  FAILED: uncaught exception: %s\n", e.what());
    }
    bool ok = check::failures() == before;
    failed_cases += !ok;
    std::printf("[%s] %s\n", ok ? "ok" : "FAIL", c.name);
  }
  std::printf("%zu cases, %d failed\n", check::cases().size(), failed_cases);
  return failed_cases == 0 ? 0 : 1;
}
