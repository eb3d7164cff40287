#include "tokenrec/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace tokenrec {
namespace {

// One parallel_for call. Chunks are claimed with an atomic counter so that the caller and any
// number of pool workers can share the job without a per-chunk queue.
struct Job {
  int64_t begin, end, chunk, nchunks;
  const std::function<void(int64_t, int64_t)>* fn;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mu;
  std::condition_variable cv;
  std::exception_ptr error;

  // Runs chunks until none is left; returns when this thread can claim no more.
  void work() {
    for (;;) {
      int64_t c = next.fetch_add(1);
      if (c >= nchunks) return;
      int64_t lo = begin + c * chunk, hi = std::min(end, lo + chunk);
      try {
        (*fn)(lo, hi);
      } catch (...) {
        std::lock_guard<std::mutex> g(mu);
        if (!error) error = std::current_exception();
      }
      if (done.fetch_add(1) + 1 == nchunks) {
        std::lock_guard<std::mutex> g(mu);
        cv.notify_all();
      }
    }
  }
};

class Pool {
 public:
  explicit Pool(int n) {
    for (int i = 0; i < n; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return static_cast<int>(workers_.size()); }
  void submit(const std::shared_ptr<Job>& job, int helpers) {
    {
      std::lock_guard<std::mutex> g(mu_);
      for (int i = 0; i < helpers; ++i) queue_.push_back(job);
    }
    cv_.notify_all();
  }

 private:
  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait(g, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        job = queue_.front();
        queue_.pop_front();
      }
      job->work();
    }
  }
  std::vector<std::thread> workers_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

int default_threads() {
  if (const char* s = std::getenv("TOKENREC_NUM_THREADS")) {
    int n = std::atoi(s);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

std::atomic<int> g_threads{0};

Pool& pool() {
  // Sized for the largest thread count a caller may ask for later; idle workers only sleep.
  static Pool p(std::max(default_threads(), static_cast<int>(std::thread::hardware_concurrency())) - 1);
  return p;
}

}  // namespace

int num_threads() {
  int n = g_threads.load();
  return n > 0 ? n : default_threads();
}

void set_num_threads(int n) { g_threads.store(n > 0 ? n : 0); }

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t lo, int64_t hi)>& fn) {
  if (end <= begin) return;
  int64_t n = end - begin;
  grain = std::max<int64_t>(1, grain);
  int threads = std::min<int64_t>(num_threads(), (n + grain - 1) / grain);
  if (threads <= 1) {
    fn(begin, end);
    return;
  }
  auto job = std::make_shared<Job>();
  // A few chunks per thread balance uneven chunks without much claiming overhead.
  int64_t nchunks = std::min<int64_t>((n + grain - 1) / grain, int64_t(threads) * 4);
  job->chunk = (n + nchunks - 1) / nchunks;
  job->nchunks = (n + job->chunk - 1) / job->chunk;
  job->begin = begin;
  job->end = end;
  job->fn = &fn;
  int helpers = std::min<int>(threads - 1, pool().size());
  pool().submit(job, helpers);
  job->work();
  std::unique_lock<std::mutex> g(job->mu);
  job->cv.wait(g, [&] { return job->done.load() == job->nchunks; });
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace tokenrec
