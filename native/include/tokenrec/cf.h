// Collaborative filtering (stage 0): LightGCN and MF trained with BPR.
//
// Nodes: users are 0..U-1, items are U..U+I-1 (item i is node U+i). The graph is the
// symmetric-normalised bipartite adjacency A = D^-1/2 [[0, R], [R^T, 0]] D^-1/2 of the training
// interactions R (U, I), stored as CSR with the rows' column indices ascending.
//
// LightGCN: F = 1/(L+1) * sum_{l=0..L} A^l E, with E (N, D) the ego embeddings. MF is L = 0 (F = E).
// Because A is symmetric, the backward of the propagation is the propagation itself:
// dLoss/dE = 1/(L+1) * sum_l A^l dLoss/dF.
//
// BPR per batch of B triples (u, p, n): loss = mean_b softplus(<F_u, F_n> - <F_u, F_p>)
//   + lambda * 0.5 * sum_b (|E_u|^2 + |E_p|^2 + |E_n|^2) / B      (L2 on the batch's ego rows)
// Optimiser: Adam, dense over every parameter (as the reference LightGCN: its gradient is dense
// anyway once it has been propagated).
//
// Every CPU kernel is deterministic whatever the thread count: the propagation is row-parallel
// (each output row summed by one thread in CSR order) and the BPR scatter-add runs in batch order.
#pragma once
#include <cstdint>
#include <vector>

namespace tokenrec {

// Non-owning view of a CSR matrix with float values: row r holds idx/val[ptr[r] .. ptr[r+1]).
struct CsrView {
  int64_t rows = 0, cols = 0;
  const int32_t* ptr = nullptr;  // (rows + 1)
  const int32_t* idx = nullptr;  // (ptr[rows])
  const float* val = nullptr;    // (ptr[rows])
};

// The normalised adjacency of a training set, plus the per-user sorted item lists that negative
// sampling needs.
struct CfGraph {
  int64_t num_users = 0, num_items = 0;
  std::vector<int32_t> ptr, idx;  // (N + 1), (2 * nnz): adjacency over N = U + I nodes
  std::vector<float> val;         // (2 * nnz): 1 / sqrt(deg(a) * deg(b))
  std::vector<int32_t> uptr, uidx;  // (U + 1), (nnz): items of each user, ascending, deduplicated
  int64_t nodes() const { return num_users + num_items; }
  int64_t interactions() const { return int64_t(uidx.size()); }
  CsrView view() const { return CsrView{nodes(), nodes(), ptr.data(), idx.data(), val.data()}; }
};

// train_ptr: (U + 1) CSR offsets, train_idx: (train_ptr[U]) item ids in [0, I). Repeated
// (user, item) pairs are counted once. Users without items (held-out users) are isolated nodes.
// Throws when the offsets are malformed, an id is out of range, or there is no interaction at all.
CfGraph build_cf_graph(int64_t U, int64_t I, const int32_t* train_ptr, const int32_t* train_idx);

// y (rows, D) = A x, x (cols, D), both row-major. Row-parallel on the CPU.
void cf_spmm_cpu(const CsrView& A, const float* x, int64_t D, float* y);
void cf_spmm_cuda(const CsrView& A, const float* x, int64_t D, float* y);

// out (N, D) = 1/(L+1) * sum_{l=0..L} A^l x, x (N, D). L = 0 copies x. Also the backward.
void cf_propagate_cpu(const CsrView& A, const float* x, int64_t D, int L, float* out);
void cf_propagate_cuda(const CsrView& A, const float* x, int64_t D, int L, float* out);

// The (u, p, n) triples of one batch: users in [0, U), items in [0, I) (not node ids).
struct BprBatch {
  const int32_t* users = nullptr;  // (B)
  const int32_t* pos = nullptr;    // (B)
  const int32_t* neg = nullptr;    // (B)
  int64_t B = 0;
};

struct BprLoss {
  double bpr = 0;  // mean softplus(s_neg - s_pos)
  double reg = 0;  // 0.5 * sum of squared ego norms of the batch rows / B (before lambda)
};

// Fused BPR on final vectors F (N, D): gathers, dots, loss, and accumulates dLoss/dF into
// G (N, D) (G += ..., so zero it first). Scatter-add in batch order: deterministic.
// Returns the mean BPR loss. Node of item i is num_users + i.
double bpr_loss_grad_cpu(const float* F, int64_t num_users, int64_t num_items, int64_t D, const BprBatch& batch,
                         float* G);
double bpr_loss_grad_cuda(const float* F, int64_t num_users, int64_t num_items, int64_t D, const BprBatch& batch,
                          float* G);

// L2 on the batch's ego rows: G (N, D) += lambda * E_row / B for every occurrence of a row.
// Returns 0.5 * sum of squared norms / B.
double l2_reg_grad_cpu(const float* E, int64_t num_users, int64_t D, const BprBatch& batch, float lambda, float* G);

struct AdamConfig {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
};

// One Adam step (t >= 1 is the step number, for bias correction) over n parameters:
// param, m, v (n) updated in place from grad (n).
void adam_step_cpu(float* param, const float* grad, float* m, float* v, int64_t n, const AdamConfig& c, int64_t t);
void adam_step_cuda(float* param, const float* grad, float* m, float* v, int64_t n, const AdamConfig& c, int64_t t);

// Full loss of one batch and its gradient with respect to the ego embeddings E (N, D):
// F = propagate(E); loss = BPR(F) + lambda * reg(E); grad_E (N, D) is overwritten.
// `scratch` is resized as needed and reused across calls. cuda selects the CUDA mirrors.
BprLoss cf_loss_grad(const CfGraph& g, const float* E, int64_t D, int L, const BprBatch& batch, float lambda,
                     float* grad_E, std::vector<float>& scratch, bool cuda = false);

// ---- the trainer ------------------------------------------------------------------------------

struct CfTrainConfig {
  int64_t dim = 64;
  int layers = 3;           // 0 = MF
  int64_t batch_size = 2048;
  float lambda = 1e-4f;     // L2 weight on the batch's ego embeddings
  AdamConfig adam;
  float init_std = 0.1f;    // ego embeddings start as N(0, init_std^2)
  uint64_t seed = 0;
  bool cuda = false;        // use the CUDA mirrors (propagation, BPR, Adam)
};

struct EpochStats {
  int64_t batches = 0, samples = 0;
  double bpr_sum = 0, reg_sum = 0;  // sums over batches of the batch means
};

// Owns the graph, the ego embeddings and Adam's state. An epoch visits every training
// interaction once in a seeded random order, each with one uniform negative item the user has not
// interacted with in training. The epoch's sample order and negatives depend only on (seed,
// epoch), so an epoch replays identically after a checkpoint restore.
class CfTrainer {
 public:
  CfTrainer(int64_t U, int64_t I, const int32_t* train_ptr, const int32_t* train_idx, const CfTrainConfig& c);

  const CfGraph& graph() const { return g_; }
  const CfTrainConfig& config() const { return c_; }
  int64_t nodes() const { return g_.nodes(); }

  // Draws the epoch's triples; returns the number of batches.
  int64_t begin_epoch(int64_t epoch);
  // Runs up to n more batches of the current epoch; returns what they did (0 batches when done).
  EpochStats train_batches(int64_t n);
  int64_t batches_left() const { return num_batches_ - next_batch_; }

  // Ego embeddings E (N, D), Adam moments m, v (N, D) and the step count t (for checkpoints).
  std::vector<float>& ego() { return E_; }
  std::vector<float>& adam_m() { return m_; }
  std::vector<float>& adam_v() { return v_; }
  int64_t step() const { return t_; }
  // Replaces the state; throws when a value is not finite or a size is wrong.
  void set_state(const float* E, const float* m, const float* v, int64_t n, int64_t t);

  // final (N, D) = propagate(E).
  void final_vectors(float* out) const;

 private:
  CfGraph g_;
  CfTrainConfig c_;
  std::vector<float> E_, m_, v_, grad_, scratch_;
  int64_t t_ = 0;
  std::vector<int32_t> su_, sp_, sn_;  // the current epoch's triples
  int64_t num_batches_ = 0, next_batch_ = 0;
};

// Uniform item in [0, I) that user u has not interacted with (rejection sampling against the
// sorted row). rng_state is a splitmix64 state. Throws when the user has every item.
int32_t sample_negative(const CfGraph& g, int64_t u, uint64_t& rng_state);

// ---- vectors for users unseen in training (fold-in) ------------------------------------------

struct FoldInConfig {
  int steps = 200;        // Adam steps on each new user's ego vector (chosen on validation, docs/RESULTS.md)
  int negatives = 64;     // uniform negatives per positive and step
  float lr = 0.05f;
  float lambda = 1e-4f;
  uint64_t seed = 0;
};

// Vectors for users absent from the graph, from their interactions with known items, with the item
// embeddings frozen. With the graph unchanged, the new user's layer-l output is
// h_u^(l) = sum_{i in S} (A^{l-1} E)_i / sqrt(|S| * deg(i)), so its final vector is
// f_u = (e_u + sum_{l=1..L} h_u^(l)) / (L+1): the propagated part is fixed and only the ego vector
// e_u is unknown. It is fitted by `steps` Adam steps of BPR (each of the user's items against
// `negatives` uniform unseen items, scored with the frozen final item vectors) plus the L2 term,
// from e_u = 0. MF (L = 0) is the same with no propagated part.
// E: (N, D) trained ego embeddings; hist_ptr (B + 1), hist_idx: each new user's items in [0, I).
// out_final, out_ego: (B, D). Users with no items get zero vectors. Row b's negatives are seeded by
// (c.seed, b). One-shot: builds a FoldInContext and calls it (same results, bit for bit).
void cf_fold_in_cpu(const CfGraph& g, const float* E, int64_t D, int L, int64_t B, const int32_t* hist_ptr,
                    const int32_t* hist_idx, const FoldInConfig& c, float* out_final, float* out_ego);

// What fold-in needs from a trained model, computed once: the item rows of the layer outputs
// X_l = A^l E (l = 0..L-1), the final item vectors and the item degrees. The graph and the user
// rows are dropped after construction, so a server can fold in many users without propagating
// the graph again (which costs O(interactions * D * L) per call). Immutable after construction:
// fold_in may run concurrently from several threads.
class FoldInContext {
 public:
  // How fold_in scores (user, item) pairs. Both give the same bits (each score is the same
  // d-ascending sum of rounded products, no fused multiply-add); AllItems scores the whole
  // catalogue once per step with vector lanes over items (cheap when the history is long
  // relative to the catalogue), PerPair computes only the needed dot products, four at a time
  // (cheap for a small history in a large catalogue). Auto picks by the number of dot products.
  enum class Scoring { Auto, AllItems, PerPair };

  // g: the training graph; E: (N, D) trained ego embeddings (checked finite); L >= 0 layers.
  FoldInContext(const CfGraph& g, const float* E, int64_t D, int L);
  // Builds the graph from the training CSR (train_ptr (U + 1), train_idx) first.
  FoldInContext(int64_t U, int64_t I, const int32_t* train_ptr, const int32_t* train_idx, const float* E, int64_t D,
                int L);

  // As cf_fold_in_cpu: hist_ptr (B + 1), hist_idx (hist_ptr[B]) items in [0, I); out_final,
  // out_ego (B, D). Parallel over the B users.
  void fold_in(int64_t B, const int32_t* hist_ptr, const int32_t* hist_idx, const FoldInConfig& c, float* out_final,
               float* out_ego, Scoring scoring = Scoring::Auto) const;

  int64_t num_users() const { return U_; }
  int64_t num_items() const { return I_; }
  int64_t dim() const { return D_; }
  int layers() const { return L_; }
  // (L, I, D) item rows of X_0..X_{L-1}; (I, D) final item vectors; (I) graph degrees.
  const std::vector<float>& item_layers() const { return layer_; }
  const std::vector<float>& item_final() const { return final_; }
  const std::vector<int32_t>& item_degree() const { return deg_; }

 private:
  void fit_user(const int32_t* items, int64_t S, uint64_t rng, const FoldInConfig& c, bool all_items, float* out_final,
                float* out_ego) const;
  int64_t U_ = 0, I_ = 0, D_ = 0;
  int L_ = 0;
  std::vector<float> layer_;    // (L, I, D)
  std::vector<float> final_;    // (I, D)
  std::vector<float> final_t_;  // (D, I): final_ transposed, for AllItems scoring
  std::vector<int32_t> deg_;    // (I)
};

}  // namespace tokenrec
