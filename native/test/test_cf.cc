// Collaborative-filtering kernels: graph normalisation by hand, propagation against a dense
// reference, finite-difference gradient checks of the whole batch loss (LightGCN and MF), Adam
// against hand-computed values, determinism across thread counts, negative sampling, training
// that lowers the loss and fold-in vectors for unseen users.
#include <cmath>
#include <cstring>
#include <vector>

#include "check.h"
#include "rand.h"
#include "tokenrec/cf.h"
#include "tokenrec/parallel.h"

using namespace tokenrec;

// A small random training set: U users, I items, each user 1..maxk items.
struct Toy {
  int64_t U, I;
  std::vector<int32_t> ptr, idx;
};
static Toy toy(int64_t U, int64_t I, int maxk, uint64_t seed) {
  TestRng r(seed);
  Toy t{U, I, {0}, {}};
  for (int64_t u = 0; u < U; ++u) {
    int k = 1 + r.below(maxk);
    for (int j = 0; j < k; ++j) t.idx.push_back(r.below(int(I)));
    t.ptr.push_back(int32_t(t.idx.size()));
  }
  return t;
}

// Dense normalised adjacency (double) for reference.
static std::vector<double> dense_adj(const CfGraph& g) {
  int64_t N = g.nodes();
  std::vector<double> A(size_t(N * N), 0);
  std::vector<double> deg(size_t(N), 0);
  for (int64_t u = 0; u < g.num_users; ++u)
    for (int32_t k = g.uptr[size_t(u)]; k < g.uptr[size_t(u + 1)]; ++k) {
      deg[size_t(u)]++;
      deg[size_t(g.num_users + g.uidx[size_t(k)])]++;
    }
  for (int64_t u = 0; u < g.num_users; ++u)
    for (int32_t k = g.uptr[size_t(u)]; k < g.uptr[size_t(u + 1)]; ++k) {
      int64_t i = g.num_users + g.uidx[size_t(k)];
      double w = 1.0 / std::sqrt(deg[size_t(u)] * deg[size_t(i)]);
      A[size_t(u * N + i)] = w;
      A[size_t(i * N + u)] = w;
    }
  return A;
}

TEST(graph_by_hand) {
  // 2 users, 3 items: u0 {0, 1, 1 (duplicate)}, u1 {1}. Degrees: u0 2, u1 1, i0 1, i1 2, i2 0.
  int32_t ptr[] = {0, 3, 4}, idx[] = {1, 0, 1, 1};
  CfGraph g = build_cf_graph(2, 3, ptr, idx);
  CHECK(g.interactions() == 3);
  CHECK(g.uidx[0] == 0 && g.uidx[1] == 1 && g.uidx[2] == 1);
  CHECK(g.ptr.size() == 6);
  CHECK(g.ptr[5] == 6);
  // Row u0: items 0, 1 (nodes 2, 3), weights 1/sqrt(2*1), 1/sqrt(2*2).
  CHECK(g.idx[0] == 2 && g.idx[1] == 3);
  CHECK_NEAR(g.val[0], 1 / std::sqrt(2.0), 1e-7);
  CHECK_NEAR(g.val[1], 0.5, 1e-7);
  // Row i1 (node 3) = entries 4..5: users 0 and 1, ascending, weights 1/sqrt(2*2), 1/sqrt(1*2).
  CHECK(g.ptr[3] == 4 && g.ptr[4] == 6);
  CHECK(g.idx[4] == 0 && g.idx[5] == 1);
  CHECK_NEAR(g.val[4], 0.5, 1e-7);
  CHECK_NEAR(g.val[5], 1 / std::sqrt(2.0), 1e-7);
  // Item 2 (node 4) has no neighbours.
  CHECK(g.ptr[5] == g.ptr[4]);
}

TEST(graph_rejects_bad_input) {
  int32_t ptr_empty[] = {0, 0, 0}, idx0[] = {0};
  CHECK_THROWS(build_cf_graph(2, 3, ptr_empty, idx0));  // no interactions
  int32_t ptr[] = {0, 1}, bad[] = {3};
  CHECK_THROWS(build_cf_graph(1, 3, ptr, bad));  // item out of range
  int32_t ptr_dec[] = {0, 2, 1}, idx2[] = {0, 1};
  CHECK_THROWS(build_cf_graph(2, 3, ptr_dec, idx2));
  CHECK_THROWS(build_cf_graph(0, 3, ptr, idx0));
  CfTrainConfig c;
  c.dim = 0;
  int32_t okp[] = {0, 1}, oki[] = {0};
  CHECK_THROWS(CfTrainer(1, 3, okp, oki, c));  // dim 0
  c.dim = 4;
  int32_t allp[] = {0, 2}, alli[] = {0, 1};
  CHECK_THROWS(CfTrainer(1, 2, allp, alli, c));  // a user has every item: no negative
}

TEST(propagation_matches_dense_reference) {
  Toy t = toy(13, 17, 6, 5);
  CfGraph g = build_cf_graph(t.U, t.I, t.ptr.data(), t.idx.data());
  auto A = dense_adj(g);
  const int64_t N = g.nodes();
  TestRng r(9);
  for (int64_t D : {1, 5, 64}) {
    auto x = r.vec(size_t(N * D));
    for (int L : {0, 1, 3}) {
      std::vector<float> out(size_t(N * D));
      cf_propagate_cpu(g.view(), x.data(), D, L, out.data());
      // Reference: sum of A^l x in double.
      std::vector<double> cur(x.begin(), x.end()), acc(cur);
      for (int l = 1; l <= L; ++l) {
        std::vector<double> nxt(size_t(N * D), 0);
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < N; ++j)
            if (A[size_t(i * N + j)] != 0)
              for (int64_t d = 0; d < D; ++d) nxt[size_t(i * D + d)] += A[size_t(i * N + j)] * cur[size_t(j * D + d)];
        cur = nxt;
        for (size_t k = 0; k < acc.size(); ++k) acc[k] += cur[k];
      }
      double err = 0;
      for (size_t k = 0; k < acc.size(); ++k) err = std::max(err, std::fabs(acc[k] / (L + 1) - out[k]));
      CHECK(err < 1e-5);
    }
  }
}

// Finite differences of the batch loss with respect to every ego entry, against cf_loss_grad.
static void gradient_check(int L) {
  Toy t = toy(5, 7, 4, 21 + uint64_t(L));
  CfGraph g = build_cf_graph(t.U, t.I, t.ptr.data(), t.idx.data());
  const int64_t D = 3, N = g.nodes(), n = N * D;
  TestRng r(4 + uint64_t(L));
  std::vector<float> E = r.vec(size_t(n));
  for (auto& x : E) x *= 0.7f;
  // Triples with repeats (user 1 twice, item 2 as a positive and a negative) to test the scatter.
  std::vector<int32_t> us = {0, 1, 1, 3, 4}, ps = {2, 2, 5, 0, 6}, ns = {4, 3, 2, 1, 2};
  BprBatch b{us.data(), ps.data(), ns.data(), int64_t(us.size())};
  const float lambda = 0.3f;
  std::vector<float> grad(static_cast<size_t>(n)), scratch;
  cf_loss_grad(g, E.data(), D, L, b, lambda, grad.data(), scratch);
  auto loss_at = [&](const std::vector<float>& e) {
    std::vector<float> gtmp(static_cast<size_t>(n)), s2;
    BprLoss l = cf_loss_grad(g, e.data(), D, L, b, lambda, gtmp.data(), s2);
    return l.bpr + lambda * l.reg;
  };
  double worst = 0;
  int nonzero = 0;
  for (int64_t k = 0; k < n; ++k) {
    const float h = 1e-2f;
    auto ep = E, em = E;
    ep[size_t(k)] += h;
    em[size_t(k)] -= h;
    double fd = (loss_at(ep) - loss_at(em)) / (double(ep[size_t(k)]) - double(em[size_t(k)]));
    double err = std::fabs(fd - grad[size_t(k)]);
    worst = std::max(worst, err / std::max(1e-2, std::fabs(fd)));
    nonzero += std::fabs(grad[size_t(k)]) > 1e-6;
  }
  std::printf("    L=%d: worst relative error %.3g over %ld entries (%d non-zero)\n", L, worst, long(n), nonzero);
  CHECK(worst < 2e-2);
  CHECK(nonzero > 10);  // the check must actually exercise gradients
}

TEST(gradient_check_lightgcn) { gradient_check(3); }
TEST(gradient_check_lightgcn_one_layer) { gradient_check(1); }
TEST(gradient_check_mf) { gradient_check(0); }

TEST(bpr_known_value) {
  // F: user (1, 0); items p = (2, 0), n = (0, 1). x = s_n - s_p = 0 - 2 = -2.
  int32_t u[] = {0}, p[] = {0}, nn[] = {1};
  float F[] = {1, 0, 2, 0, 0, 1};
  float G[6] = {0};
  double l = bpr_loss_grad_cpu(F, 1, 2, 2, BprBatch{u, p, nn, 1}, G);
  CHECK_NEAR(l, std::log1p(std::exp(-2.0)), 1e-7);
  double s = 1 / (1 + std::exp(2.0));
  CHECK_NEAR(G[0], s * (0 - 2), 1e-6);  // d/dF_u = s (F_n - F_p)
  CHECK_NEAR(G[1], s * (1 - 0), 1e-6);
  CHECK_NEAR(G[2], -s * 1, 1e-6);  // d/dF_p = -s F_u
  CHECK_NEAR(G[4], s * 1, 1e-6);   // d/dF_n = s F_u
  int32_t bad[] = {2};
  CHECK_THROWS(bpr_loss_grad_cpu(F, 1, 2, 2, BprBatch{u, bad, nn, 1}, G));
}

TEST(adam_known_values) {
  // Step 1 of Adam moves every parameter by lr * sign(g) (bias-corrected m/sqrt(v) = g/|g|).
  float p[] = {1, -1, 0.5f}, g[] = {0.3f, -2, 0}, m[3] = {0}, v[3] = {0};
  AdamConfig c;
  c.lr = 0.1f;
  adam_step_cpu(p, g, m, v, 3, c, 1);
  CHECK_NEAR(p[0], 0.9, 1e-6);
  CHECK_NEAR(p[1], -0.9, 1e-6);
  CHECK_NEAR(p[2], 0.5, 1e-7);
  CHECK_NEAR(m[0], 0.03, 1e-7);
  CHECK_NEAR(v[1], 0.004, 1e-7);
  // Step 2 with the same gradient: m = 0.057, v = 0.0001799 (for g = 0.3), bias-corrected ratio 1.
  adam_step_cpu(p, g, m, v, 3, c, 2);
  CHECK_NEAR(p[0], 0.8, 1e-5);
  CHECK_THROWS(adam_step_cpu(p, g, m, v, 3, c, 0));
}

TEST(negative_sampling_excludes_training_items) {
  int32_t ptr[] = {0, 3, 4}, idx[] = {0, 2, 4, 1};
  CfGraph g = build_cf_graph(2, 6, ptr, idx);
  uint64_t s = 1;
  int counts[6] = {0};
  for (int k = 0; k < 6000; ++k) counts[sample_negative(g, 0, s)]++;
  CHECK(counts[0] == 0 && counts[2] == 0 && counts[4] == 0);
  for (int j : {1, 3, 5}) CHECK(counts[j] > 1800 && counts[j] < 2200);  // uniform over the rest
}

static std::vector<float> train_run(int threads, int L, int epochs, double* first_loss, double* last_loss) {
  set_num_threads(threads);
  Toy t = toy(60, 40, 8, 77);
  CfTrainConfig c;
  c.dim = 8;
  c.layers = L;
  c.batch_size = 32;
  c.adam.lr = 0.01f;
  c.seed = 3;
  CfTrainer tr(t.U, t.I, t.ptr.data(), t.idx.data(), c);
  for (int e = 0; e < epochs; ++e) {
    tr.begin_epoch(e);
    EpochStats st = tr.train_batches(1 << 30);
    double mean = st.bpr_sum / double(st.batches);
    if (e == 0 && first_loss) *first_loss = mean;
    if (last_loss) *last_loss = mean;
  }
  set_num_threads(0);
  return tr.ego();
}

TEST(training_lowers_loss_and_is_deterministic_across_threads) {
  for (int L : {0, 2}) {
    double first = 0, last = 0;
    auto a = train_run(1, L, 30, &first, &last);
    auto b = train_run(2, L, 30, nullptr, nullptr);
    auto c = train_run(3, L, 30, nullptr, nullptr);
    std::printf("    L=%d: mean BPR loss epoch 1 %.4f -> epoch 30 %.4f\n", L, first, last);
    CHECK(last < 0.75 * first);
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) == 0);
  }
}

TEST(resume_from_state_replays_exactly) {
  Toy t = toy(30, 25, 6, 8);
  CfTrainConfig c;
  c.dim = 4;
  c.layers = 2;
  c.batch_size = 16;
  c.adam.lr = 0.01f;
  CfTrainer a(t.U, t.I, t.ptr.data(), t.idx.data(), c);
  for (int e = 0; e < 4; ++e) {
    a.begin_epoch(e);
    a.train_batches(1 << 30);
  }
  CfTrainer b(t.U, t.I, t.ptr.data(), t.idx.data(), c);
  for (int e = 0; e < 2; ++e) {
    b.begin_epoch(e);
    b.train_batches(1 << 30);
  }
  // "Checkpoint" b after epoch 2, restore into a fresh trainer, run epochs 2..3.
  CfTrainer r(t.U, t.I, t.ptr.data(), t.idx.data(), c);
  r.set_state(b.ego().data(), b.adam_m().data(), b.adam_v().data(), int64_t(b.ego().size()), b.step());
  for (int e = 2; e < 4; ++e) {
    r.begin_epoch(e);
    r.train_batches(1 << 30);
  }
  CHECK(std::memcmp(a.ego().data(), r.ego().data(), a.ego().size() * sizeof(float)) == 0);
  auto bad = b.ego();
  bad[3] = NAN;
  CHECK_THROWS(r.set_state(bad.data(), b.adam_m().data(), b.adam_v().data(), int64_t(bad.size()), 1));
  CHECK_THROWS(r.set_state(bad.data(), b.adam_m().data(), b.adam_v().data(), int64_t(bad.size()) - 1, 1));
}

TEST(fold_in_reproduces_propagated_part_and_fits_history) {
  // A user that is in the graph has final = (e_u + sum_l (A^l E)_u) / (L+1). Folding the same
  // items in as a new user (deg + 1 instead of deg) gives a close propagated part; the fitted ego
  // vector must rank the user's own items above the average item.
  Toy t = toy(40, 30, 6, 12);
  CfTrainConfig c;
  c.dim = 8;
  c.layers = 2;
  c.batch_size = 32;
  c.adam.lr = 0.02f;
  CfTrainer tr(t.U, t.I, t.ptr.data(), t.idx.data(), c);
  for (int e = 0; e < 40; ++e) {
    tr.begin_epoch(e);
    tr.train_batches(1 << 30);
  }
  const CfGraph& g = tr.graph();
  const int64_t D = c.dim, U = g.num_users;
  std::vector<float> F(size_t(g.nodes() * D));
  tr.final_vectors(F.data());
  // New users: the histories of users 0..9.
  std::vector<int32_t> hp(g.uptr.begin(), g.uptr.begin() + 11);
  std::vector<int32_t> hi(g.uidx.begin(), g.uidx.begin() + hp[10]);
  std::vector<float> of(size_t(10 * D)), oe(size_t(10 * D));
  FoldInConfig fc;
  fc.steps = 100;
  cf_fold_in_cpu(g, tr.ego().data(), D, c.layers, 10, hp.data(), hi.data(), fc, of.data(), oe.data());
  int better = 0;
  for (int b = 0; b < 10; ++b) {
    double own = 0, all = 0;
    for (int32_t k = hp[size_t(b)]; k < hp[size_t(b + 1)]; ++k) {
      int64_t i = g.uidx[size_t(k)];
      for (int64_t d = 0; d < D; ++d) own += double(of[size_t(b * D + d)]) * F[size_t((U + i) * D + d)];
    }
    own /= (hp[size_t(b + 1)] - hp[size_t(b)]);
    for (int64_t i = 0; i < g.num_items; ++i)
      for (int64_t d = 0; d < D; ++d) all += double(of[size_t(b * D + d)]) * F[size_t((U + i) * D + d)];
    all /= double(g.num_items);
    better += own > all;
  }
  CHECK(better >= 9);
  // Empty history -> zero vector; bad item id -> error.
  int32_t ep[] = {0, 0};
  cf_fold_in_cpu(g, tr.ego().data(), D, c.layers, 1, ep, nullptr, fc, of.data(), oe.data());
  CHECK(of[0] == 0 && oe[0] == 0);
  int32_t bp[] = {0, 1}, bi[] = {30};
  CHECK_THROWS(cf_fold_in_cpu(g, tr.ego().data(), D, c.layers, 1, bp, bi, fc, of.data(), oe.data()));
}

TEST(fold_in_context_matches_one_shot_and_scoring_paths_agree) {
  // The context keeps only item rows; its final item vectors must be the propagation's item rows
  // bit for bit, its fold-in the one-shot's, and both scoring strategies the same bits (each
  // score is the same d-ascending sum, whether computed alone or in item lanes).
  Toy t = toy(50, 37, 8, 5);
  const int64_t D = 16;
  const int L = 3;
  CfGraph g = build_cf_graph(t.U, t.I, t.ptr.data(), t.idx.data());
  TestRng r(9);
  std::vector<float> E(size_t(g.nodes() * D));
  for (auto& x : E) x = float(r.uniform() - 0.5);
  std::vector<float> F(E.size());
  cf_propagate_cpu(g.view(), E.data(), D, L, F.data());
  FoldInContext ctx(t.U, t.I, t.ptr.data(), t.idx.data(), E.data(), D, L);
  CHECK(ctx.num_items() == t.I && ctx.dim() == D && ctx.layers() == L);
  CHECK(std::memcmp(ctx.item_final().data(), F.data() + t.U * D, size_t(t.I * D) * sizeof(float)) == 0);
  // Layer 1's item rows are A E's.
  std::vector<float> X1(E.size());
  cf_spmm_cpu(g.view(), E.data(), D, X1.data());
  CHECK(std::memcmp(ctx.item_layers().data() + t.I * D, X1.data() + t.U * D, size_t(t.I * D) * sizeof(float)) == 0);
  for (int64_t i = 0; i < t.I; ++i) CHECK(ctx.item_degree()[size_t(i)] == g.ptr[size_t(t.U + i + 1)] - g.ptr[size_t(t.U + i)]);

  // Histories of 1, 3, 20 items (with a repeat) and an empty one.
  std::vector<int32_t> hp = {0, 1, 4, 4, 25}, hi = {5, 2, 9, 2};
  for (int k = 0; k < 21; ++k) hi.push_back(int32_t((k * 7) % t.I));
  hp[4] = int32_t(hi.size());
  const int64_t B = 4;
  FoldInConfig fc;
  fc.steps = 30;
  fc.negatives = 5;
  fc.seed = 3;
  std::vector<float> of1(size_t(B * D)), oe1(size_t(B * D)), of2(of1.size()), oe2(of1.size()), of3(of1.size()), oe3(of1.size());
  cf_fold_in_cpu(g, E.data(), D, L, B, hp.data(), hi.data(), fc, of1.data(), oe1.data());
  ctx.fold_in(B, hp.data(), hi.data(), fc, of2.data(), oe2.data(), FoldInContext::Scoring::AllItems);
  ctx.fold_in(B, hp.data(), hi.data(), fc, of3.data(), oe3.data(), FoldInContext::Scoring::PerPair);
  const size_t bytes = of1.size() * sizeof(float);
  CHECK(std::memcmp(of1.data(), of2.data(), bytes) == 0 && std::memcmp(oe1.data(), oe2.data(), bytes) == 0);
  CHECK(std::memcmp(of2.data(), of3.data(), bytes) == 0 && std::memcmp(oe2.data(), oe3.data(), bytes) == 0);
  CHECK(of1[size_t(2 * D)] == 0 && oe1[size_t(2 * D)] == 0);  // the empty history
  // A different seed gives a different fit; bad inputs are errors.
  fc.seed = 4;
  ctx.fold_in(B, hp.data(), hi.data(), fc, of3.data(), oe3.data());
  CHECK(std::memcmp(oe2.data(), oe3.data(), bytes) != 0);
  int32_t bp[] = {0, 1}, bi[] = {int32_t(t.I)};
  CHECK_THROWS(ctx.fold_in(1, bp, bi, fc, of3.data(), oe3.data()));
  FoldInConfig bad = fc;
  bad.negatives = 0;
  CHECK_THROWS(ctx.fold_in(1, bp, hi.data(), bad, of3.data(), oe3.data()));
  E[3] = NAN;
  CHECK_THROWS(FoldInContext(g, E.data(), D, L));
}

TEST(fold_in_scoring_paths_agree_for_odd_dims) {
  // D not a multiple of the vector width: the scalar tails are where a compiler would fuse some
  // multiply-adds and not others; the fold-in scores are defined without fusion either way.
  Toy t = toy(30, 41, 6, 11);
  CfGraph g = build_cf_graph(t.U, t.I, t.ptr.data(), t.idx.data());
  for (int64_t D : {1, 3, 13}) {
    TestRng r{uint64_t(D)};
    std::vector<float> E(size_t(g.nodes() * D));
    for (auto& x : E) x = float(r.uniform() - 0.5);
    FoldInContext ctx(g, E.data(), D, 2);
    std::vector<int32_t> hp = {0, 2, 9}, hi = {4, 40, 1, 2, 3, 5, 8, 13, 21};
    FoldInConfig fc;
    fc.steps = 20;
    fc.negatives = 4;
    std::vector<float> a(size_t(2 * D)), ae(a.size()), b(a.size()), be(a.size());
    ctx.fold_in(2, hp.data(), hi.data(), fc, a.data(), ae.data(), FoldInContext::Scoring::AllItems);
    ctx.fold_in(2, hp.data(), hi.data(), fc, b.data(), be.data(), FoldInContext::Scoring::PerPair);
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(ae.data(), be.data(), a.size() * sizeof(float)) == 0);
  }
}
