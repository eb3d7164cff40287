// Deterministic test data (splitmix64), shared by the C++ tests and benchmarks.
#pragma once
#include <cstdint>
#include <vector>

struct TestRng {
  uint64_t s;
  explicit TestRng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return float(next() >> 40) / float(1ull << 24); }  // [0, 1)
  float symmetric() { return 2.f * uniform() - 1.f; }                   // [-1, 1)
  int below(int n) { return int(next() % uint64_t(n)); }
  std::vector<float> vec(size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = symmetric();
    return v;
  }
};
