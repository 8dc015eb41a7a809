#include "parallel.h"
#include <sched.h>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include "rc_common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RC_CPU_RELAX() _mm_pause()
#else
#define RC_CPU_RELAX() std::this_thread::yield()
#endif

namespace rc {
namespace {

thread_local bool t_in_region = false;

// Iterations of the spin-wait before a worker sleeps: a few hundred microseconds, so
// the per-time-step products of a sequence (one every ~0.1–1 ms) find the workers awake,
// while an idle pool stops taking CPU from other processes soon after.
constexpr int kSpinIterations = 1 << 14;

int default_thread_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  unsigned hardware = std::thread::hardware_concurrency();
  return hardware > 0 ? static_cast<int>(hardware) : 1;
}

// A fork-join pool. A job is cut into at most `size` chunks that the dispatching thread
// and the workers claim from one atomic word, so a worker the OS has not scheduled yet
// (the machine is shared) does not hold the job up: the dispatcher runs its chunk too.
// One job at a time; the dispatcher holds `owner_` for its duration.
class Pool {
 public:
  explicit Pool(int size) : size_(size) {}

  int size() const { return size_.load(std::memory_order_relaxed); }

  void resize(int size) {
    std::lock_guard<std::mutex> lock(owner_);
    stop_workers();
    size_.store(size, std::memory_order_relaxed);
  }

  // Returns false without running anything when another thread holds the pool.
  bool try_run(int64_t count, const std::function<void(int64_t, int64_t)>& body) {
    std::unique_lock<std::mutex> lock(owner_, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    int size = size_.load(std::memory_order_relaxed);
    if (static_cast<int>(workers_.size()) != size - 1) start_workers(size - 1);

    body_ = &body;
    count_ = count;
    int parts = static_cast<int>(std::min<int64_t>(size, count));
    error_ = nullptr;
    done_.store(0, std::memory_order_relaxed);
    uint32_t job = ++job_;
    claims_.store(pack_claim(job, parts, 0), std::memory_order_release);
    publish();

    run_claims(job);
    for (int spins = 0; done_.load(std::memory_order_acquire) != parts; spins++) {
      if (spins < kSpinIterations) RC_CPU_RELAX();
      else std::this_thread::yield();
    }
    body_ = nullptr;
    if (error_) std::rethrow_exception(error_);
    return true;
  }

 private:
  // claims_ holds the job number (high 32 bits), its chunk count and the next unclaimed chunk.
  static uint64_t pack_claim(uint32_t job, int parts, int next) {
    return (uint64_t{job} << 32) | (static_cast<uint64_t>(parts) << 16) | static_cast<uint64_t>(next);
  }

  // Claims and runs chunks of `job` until none is left. A claim succeeds only while the
  // job is current, and the job cannot finish before its claimed chunks are done, so
  // the job's fields are stable while a chunk runs.
  void run_claims(uint32_t job) {
    uint64_t claim = claims_.load(std::memory_order_acquire);
    for (;;) {
      int parts = static_cast<int>((claim >> 16) & 0xFFFF), next = static_cast<int>(claim & 0xFFFF);
      if ((claim >> 32) != job || next >= parts) return;
      if (!claims_.compare_exchange_weak(claim, claim + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      run_chunk(next, parts);
      done_.fetch_add(1, std::memory_order_release);
      claim = claims_.load(std::memory_order_acquire);
    }
  }

  void run_chunk(int part, int parts) {
    int64_t begin = count_ * part / parts, end = count_ * (part + 1) / parts;
    if (begin >= end) return;
    t_in_region = true;
    try {
      (*body_)(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    t_in_region = false;
  }

  // Makes the job visible and wakes sleeping workers. The generation increment and the
  // sleeper count are both sequentially consistent, so a worker that is about to sleep
  // either sees the new generation or is counted and notified.
  void publish() {
    generation_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lock(sleep_mutex_); }
      wake_.notify_all();
    }
  }

  void worker_loop(uint64_t seen) {
    for (;;) {
      uint64_t generation = seen;
      for (int spins = 0; spins < kSpinIterations; spins++) {
        generation = generation_.load(std::memory_order_acquire);
        if (generation != seen) break;
        RC_CPU_RELAX();
      }
      if (generation == seen) {
        std::unique_lock<std::mutex> lock(sleep_mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        generation = generation_.load(std::memory_order_acquire);
      }
      seen = generation;
      if (stopping_.load(std::memory_order_acquire)) return;
      run_claims(static_cast<uint32_t>(claims_.load(std::memory_order_acquire) >> 32));
    }
  }

  void start_workers(int count) {
    stop_workers();
    uint64_t generation = generation_.load(std::memory_order_relaxed);
    for (int i = 0; i < count; i++) workers_.emplace_back([this, generation] { worker_loop(generation); });
  }

  void stop_workers() {
    if (workers_.empty()) return;
    stopping_.store(true, std::memory_order_release);
    publish();
    for (auto& worker : workers_) worker.join();
    workers_.clear();
    stopping_.store(false, std::memory_order_relaxed);
  }

  std::atomic<int> size_;
  std::mutex owner_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> claims_{0};
  std::atomic<int> done_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stopping_{false};
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
  uint32_t job_ = 0;

  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t count_ = 0;
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

// Never destroyed: joining workers from a static destructor at process exit can hang
// when the runtime has already torn threads down (as the .NET host does).
Pool& pool() {
  static Pool* instance = new Pool(default_thread_count());
  return *instance;
}

}  // namespace

void parallel_for(int64_t count, const std::function<void(int64_t, int64_t)>& body) {
  if (count <= 0) return;
  if (count == 1 || t_in_region || pool().size() <= 1 || !pool().try_run(count, body)) body(0, count);
}

int num_threads() { return pool().size(); }

void set_num_threads(int count) {
  // Resizing waits for the running job, which would be the caller's own.
  if (t_in_region) throw std::invalid_argument("set_num_threads: cannot resize the pool from inside a parallel_for body");
  pool().resize(count > 0 ? count : default_thread_count());
}

bool in_parallel_region() { return t_in_region; }

}  // namespace rc

RC_EXPORT rc_status rc_set_num_threads(int32_t count) {
  return rc::guard([&] {
    if (count > 1024) throw std::invalid_argument("count: expected at most 1024 threads (0 = default), got " + std::to_string(count));
    rc::set_num_threads(count);
  });
}

RC_EXPORT int32_t rc_get_num_threads(void) { return rc::num_threads(); }
