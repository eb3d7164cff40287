// CPU top-K against two references: an exact one (the same fma chain over the same normalised
// vectors, so ids and scores must match bit for bit) and a float64 one (scores within 1e-5).
// Plus hand-worked ties, k > N, padding after exclusions, appends, thread counts, bad arguments.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <thread>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/parallel.h"
#include "tokenrec/topk.h"

using namespace tokenrec;

struct Result {
  std::vector<int32_t> ids;
  std::vector<float> scores;
  int64_t kout = 0;
};

static Result run(ItemIndex& ix, const std::vector<float>& Q, int64_t B, int64_t k, const std::vector<int32_t>* ptr = nullptr,
                  const std::vector<int32_t>* idx = nullptr) {
  Result r;
  r.kout = topk_columns(k, ix.size());
  r.ids.assign(size_t(B * r.kout), 7777);
  r.scores.assign(size_t(B * r.kout), 7777.f);
  TopkQuery q{Q.data(), B, k, ptr ? ptr->data() : nullptr, idx ? idx->data() : nullptr};
  ix.search_cpu(q, r.ids.data(), r.scores.data());
  return r;
}

// Reference: scores as the kernel defines them (fma chain over normalised rows), full sort.
static Result reference(const std::vector<float>& I, int64_t N, const std::vector<float>& Q, int64_t B, int64_t D, int64_t k,
                        bool cosine, const std::vector<int32_t>* ptr, const std::vector<int32_t>* idx, bool use_double) {
  std::vector<float> In = cosine ? normalize_rows(I.data(), N, D) : I;
  std::vector<float> Qn = cosine ? normalize_rows(Q.data(), B, D) : Q;
  Result r;
  r.kout = std::min(k, N);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<std::pair<float, int32_t>> all;
    for (int64_t j = 0; j < N; ++j) {
      bool ex = false;
      if (ptr)
        for (int32_t e = (*ptr)[size_t(b)]; e < (*ptr)[size_t(b + 1)]; ++e) ex |= (*idx)[size_t(e)] == j;
      if (ex) continue;
      float s;
      if (use_double) {
        double acc = 0, nu = 0, ni = 0;
        for (int64_t d = 0; d < D; ++d) {
          acc += double(Q[size_t(b * D + d)]) * I[size_t(j * D + d)];
          nu += double(Q[size_t(b * D + d)]) * Q[size_t(b * D + d)];
          ni += double(I[size_t(j * D + d)]) * I[size_t(j * D + d)];
        }
        s = float(cosine ? (nu > 0 && ni > 0 ? acc / std::sqrt(nu * ni) : 0) : acc);
      } else {
        float acc = 0.f;
        for (int64_t d = 0; d < D; ++d) acc = std::fma(Qn[size_t(b * D + d)], In[size_t(j * D + d)], acc);
        s = acc;
      }
      all.push_back({s, int32_t(j)});
    }
    std::sort(all.begin(), all.end(), [](auto& a, auto& c) { return a.first > c.first || (a.first == c.first && a.second < c.second); });
    for (int64_t i = 0; i < r.kout; ++i) {
      bool have = i < int64_t(all.size());
      r.ids.push_back(have ? all[size_t(i)].second : -1);
      r.scores.push_back(have ? all[size_t(i)].first : -std::numeric_limits<float>::infinity());
    }
  }
  return r;
}

TEST(hand_worked_ties_and_order) {
  // q = (1, 0). Items: 0:(1,0) 1:(2,0) 2:(1,0) 3:(0,1) 4:(2,0) 5:(-1,0)
  std::vector<float> I = {1, 0, 2, 0, 1, 0, 0, 1, 2, 0, -1, 0}, Q = {1, 0};
  ItemIndex dot(2, Similarity::Dot);
  dot.add(I.data(), 6);
  Result r = run(dot, Q, 1, 3);
  CHECK((r.ids == std::vector<int32_t>{1, 4, 0}));  // 2-way tie at 2: index order; then 1 at the smaller index
  CHECK((r.scores == std::vector<float>{2, 2, 1}));
  // Cosine: items 0, 1, 2, 4 all score exactly 1.
  ItemIndex cos(2, Similarity::Cosine);
  cos.add(I.data(), 6);
  r = run(cos, Q, 1, 6);
  CHECK((r.ids == std::vector<int32_t>{0, 1, 2, 4, 3, 5}));
  CHECK((r.scores == std::vector<float>{1, 1, 1, 1, 0, -1}));
  // Exclusions, and k > N: 6 columns, the excluded ones padded with -1 / -inf.
  std::vector<int32_t> ptr = {0, 3}, idx = {1, 5, 1};
  r = run(cos, Q, 1, 50, &ptr, &idx);
  CHECK(r.kout == 6);
  CHECK((r.ids == std::vector<int32_t>{0, 2, 4, 3, -1, -1}));
  CHECK(r.scores[4] == -std::numeric_limits<float>::infinity() && r.scores[5] == -std::numeric_limits<float>::infinity());
  // A zero query has cosine 0 with everything: the smallest indices win.
  std::vector<float> Z = {0, 0};
  r = run(cos, Z, 1, 3);
  CHECK((r.ids == std::vector<int32_t>{0, 1, 2}));
  CHECK((r.scores == std::vector<float>{0, 0, 0}));
}

TEST(matches_references_on_random_data) {
  TestRng rng(5);
  int cases = 0;
  for (int64_t D : {1, 7, 16, 64, 65}) {
    for (int64_t N : {1, 15, 203, 3001}) {
      for (Similarity sim : {Similarity::Dot, Similarity::Cosine}) {
        const bool cosine = sim == Similarity::Cosine;
        int64_t B = 1 + rng.below(40);
        auto I = rng.vec(size_t(N * D)), Q = rng.vec(size_t(B * D));
        // Exact duplicates (ties), and in cosine mode also scaled copies (ties after normalisation).
        for (int64_t j = 0; j + 1 < N && j < 30; j += 2)
          for (int64_t d = 0; d < D; ++d) I[size_t((N - 1 - j) * D + d)] = I[size_t(j * D + d)] * (cosine ? 1.f : 1.f);
        std::vector<int32_t> ptr(size_t(B + 1), 0), idx;
        for (int64_t b = 0; b < B; ++b) {
          for (int e = rng.below(12); e > 0; --e) idx.push_back(rng.below(int(N)));
          ptr[size_t(b + 1)] = int32_t(idx.size());
        }
        for (int64_t k : {int64_t(1), int64_t(10), int64_t(300)}) {
          ItemIndex ix(D, sim);
          ix.add(I.data(), N);
          Result got = run(ix, Q, B, k, &ptr, &idx);
          Result exact = reference(I, N, Q, B, D, k, cosine, &ptr, &idx, false);
          Result dbl = reference(I, N, Q, B, D, k, cosine, &ptr, &idx, true);
          CHECK(got.kout == exact.kout);
          if (scoring_is_fma_chain()) {
            bool same = got.ids == exact.ids && got.scores == exact.scores;
            if (!same) std::printf("    D=%ld N=%ld sim=%d k=%ld: differs from the exact reference\n", long(D), long(N), int(sim), long(k));
            CHECK(same);
          }
          double worst = 0;
          for (size_t i = 0; i < got.scores.size(); ++i) {
            if (std::isinf(dbl.scores[i])) {
              CHECK(got.ids[i] == -1);
              continue;
            }
            worst = std::max(worst, std::fabs(double(got.scores[i]) - dbl.scores[i]));
          }
          CHECK(worst < 1e-5 * (cosine ? 1 : double(D)));
          ++cases;
        }
      }
    }
  }
  CHECK(cases == 5 * 4 * 2 * 3);
}

TEST(results_do_not_depend_on_threads_batch_or_appends) {
  TestRng rng(9);
  const int64_t D = 24, N = 20000, B = 50, k = 37;
  auto I = rng.vec(size_t(N * D)), Q = rng.vec(size_t(B * D));
  for (int64_t j = 0; j < 500; ++j)
    for (int64_t d = 0; d < D; ++d) I[size_t((N - 1 - j) * D + d)] = I[size_t(j * D + d)];
  ItemIndex whole(D, Similarity::Cosine);
  whole.add(I.data(), N);
  ItemIndex parts(D, Similarity::Cosine);
  for (int64_t j0 : {int64_t(0), int64_t(5), int64_t(21), int64_t(4000), int64_t(19999)}) {
    int64_t j1 = j0 == 0 ? 5 : j0 == 5 ? 21 : j0 == 21 ? 4000 : j0 == 4000 ? 19999 : N;
    parts.add(I.data() + j0 * D, j1 - j0);
  }
  CHECK(parts.size() == N);
  Result a = run(whole, Q, B, k);
  Result b = run(parts, Q, B, k);
  CHECK(a.ids == b.ids && a.scores == b.scores);
  set_num_threads(1);
  Result c = run(whole, Q, B, k);
  set_num_threads(0);
  CHECK(a.ids == c.ids && a.scores == c.scores);
  // Query b alone gives the same row as inside the batch.
  for (int64_t q : {int64_t(0), int64_t(17), int64_t(49)}) {
    std::vector<float> one(Q.begin() + q * D, Q.begin() + (q + 1) * D);
    Result s = run(whole, one, 1, k);
    CHECK(std::equal(s.ids.begin(), s.ids.end(), a.ids.begin() + q * k));
  }
}

TEST(empty_cases) {
  ItemIndex ix(3, Similarity::Dot);
  std::vector<float> Q = {1, 2, 3};
  Result r = run(ix, Q, 1, 5);  // empty index: zero columns
  CHECK(r.kout == 0 && r.ids.empty());
  std::vector<float> I = {1, 0, 0};
  ix.add(I.data(), 1);
  r = run(ix, Q, 0, 5);  // no queries
  CHECK(r.ids.empty());
  ix.add(I.data(), 0);
  CHECK(ix.size() == 1);
}

TEST(rejects_bad_arguments) {
  ItemIndex ix(2, Similarity::Cosine);
  std::vector<float> I = {1, 0, 0, 1};
  ix.add(I.data(), 2);
  int32_t ids[4];
  float sc[4];
  float nanq[] = {NAN, 0}, q[] = {1, 0};
  CHECK_THROWS(ix.search_cpu(TopkQuery{nanq, 1, 1, nullptr, nullptr}, ids, sc));
  CHECK_THROWS(ix.search_cpu(TopkQuery{q, 1, 0, nullptr, nullptr}, ids, sc));
  CHECK_THROWS(ix.search_cpu(TopkQuery{q, 1, TOPK_MAX_K + 1, nullptr, nullptr}, ids, sc));
  int32_t ptr[] = {0, 1}, bad[] = {2}, neg_ptr[] = {0, -1}, nz_ptr[] = {1, 1};
  CHECK_THROWS(ix.search_cpu(TopkQuery{q, 1, 1, ptr, bad}, ids, sc));
  CHECK_THROWS(ix.search_cpu(TopkQuery{q, 1, 1, neg_ptr, bad}, ids, sc));
  CHECK_THROWS(ix.search_cpu(TopkQuery{q, 1, 1, nz_ptr, bad}, ids, sc));
  float inf_items[] = {INFINITY, 0};
  CHECK_THROWS(ix.add(inf_items, 1));
  CHECK(ix.size() == 2);  // a rejected add leaves the index unchanged
  CHECK_THROWS(ItemIndex(0, Similarity::Dot));
#ifndef TOKENREC_HAVE_CUDA
  CHECK_THROWS(ix.search_cuda(TopkQuery{q, 1, 1, nullptr, nullptr}, ids, sc));
#endif
}

TEST(searches_and_adds_run_concurrently) {
  // Searches through the vector overloads (as the Node binding does) while another thread adds
  // items: every search sees the index wholly before or after an add, with k > N at first.
  TestRng rng(17);
  const int64_t D = 8, k = 50;
  ItemIndex ix(D, Similarity::Dot);
  auto first = rng.vec(size_t(5 * D));
  ix.add(first.data(), 5);
  auto more = rng.vec(size_t(200 * D));
  auto Q = rng.vec(size_t(3 * D));
  std::thread adder([&] {
    for (int64_t i = 0; i < 20; ++i) ix.add(more.data() + i * 10 * D, 10);
  });
  int bad = 0;
  for (int it = 0; it < 200; ++it) {
    std::vector<int32_t> ids;
    std::vector<float> sc;
    int64_t kout = ix.search(TopkQuery{Q.data(), 3, k, nullptr, nullptr}, ids, sc, false);
    // kout = min(k, N) with N = 5 + 10 * (adds done): 5, 15, 25, 35, 45, then k.
    bad += !(kout == k || (kout >= 5 && kout < k && (kout - 5) % 10 == 0));
    bad += ids.size() != size_t(3 * kout);
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t i = 0; i < kout; ++i) {
        bad += ids[size_t(b * kout + i)] < 0 || ids[size_t(b * kout + i)] >= 205;
        if (i) bad += sc[size_t(b * kout + i)] > sc[size_t(b * kout + i - 1)];
      }
  }
  adder.join();
  CHECK(bad == 0);
  CHECK(ix.size() == 205);
}
