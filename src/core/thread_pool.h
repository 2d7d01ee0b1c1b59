// A fixed pool of worker threads that runs one parallel loop at a time.
//
// Thread-safety: one caller at a time drives parallel_for (the pool is owned by
// a context and used from the thread that runs the model); workers only run
// the functions it hands them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <mutex>
#include <thread>
#include <vector>

namespace strata {

// A non-owning reference to a callable, like the proposed std::function_ref:
// unlike std::function it never allocates, so parallel loops on the decode
// path cost no heap traffic. The callable must outlive the call.
template <typename Signature>
class FunctionRef;

template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  template <typename F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, FunctionRef>)
  FunctionRef(F&& f)  // NOLINT(google-explicit-constructor): used like a lambda parameter
      : object_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* object, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(object))(std::forward<Args>(args)...);
        }) {}
  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void* object_;
  R (*call_)(void*, Args...);
};

class ThreadPool {
 public:
  // threads <= 0 means one per hardware core. The calling thread is worker 0,
  // so `threads` counts it.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Splits [0, n) into size() contiguous chunks of nearly equal length (each a
  // multiple of `grain` except the last) and calls fn(begin, end, worker) for
  // each non-empty one, in parallel. Returns when all are done. The split
  // depends only on n, grain and size(), so results are reproducible.
  void parallel_for(size_t n, size_t grain, FunctionRef<void(size_t, size_t, int)> fn);

  // Calls fn(begin, end, worker) on chunks of [0, n) of `grain` elements (the
  // last may be shorter), handed out in order to whichever worker is free:
  // for loops whose chunks cost unevenly (memory-bound products, where one
  // core may stall more than the other) and whose results do not depend on
  // which worker computes a chunk.
  void parallel_for_dynamic(size_t n, size_t grain, FunctionRef<void(size_t, size_t, int)> fn);

  // Calls fn(worker) once on every worker (including the caller).
  void run_on_all(FunctionRef<void(int)> fn);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const FunctionRef<void(int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  bool stop_ = false;
};

}  // namespace strata
