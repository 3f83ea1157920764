// The HTTP layer's threads. cpp-httplib serves a keep-alive connection on one thread for the
// connection's whole life, so a fixed pool of N threads leaves connection N+1 unserved until another
// closes. This pool grows instead: a task that finds no idle thread gets a new one, up to `max_threads`
// (the contract asks for at least 1,024 concurrent connections), and a thread idle for `idle_timeout`
// ends, down to `min_threads`. Threads are created with a small stack (`stack_bytes`), so a thousand of
// them cost little memory: the handlers keep their data on the heap (RSS is the pages touched).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

namespace embbench {

class ConnectionPool {
 public:
  struct Options {
    std::size_t min_threads = 8;
    std::size_t max_threads = 4096;
    std::size_t stack_bytes = 1024 * 1024;
    std::chrono::milliseconds idle_timeout{30000};
  };

  explicit ConnectionPool(Options opts);
  /// Stops the pool (see shutdown()).
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  /// Runs `task` on an idle thread, or on a new one when none is idle and the pool is below
  /// max_threads; at max_threads the task waits for a thread. False once shut down.
  bool enqueue(std::function<void()> task);

  /// Lets queued tasks finish, then waits for every thread to end.
  void shutdown();

  std::size_t threads() const;   // alive now
  std::size_t idle() const;      // alive and waiting for a task
  std::size_t peak_threads() const;

 private:
  void worker();
  bool spawn_locked();  // false when the OS refuses a thread

  Options opts_;
  mutable std::mutex mu_;
  std::condition_variable task_cv_;  // tasks queued or shutdown
  std::condition_variable done_cv_;  // a thread ended
  std::deque<std::function<void()>> tasks_;
  std::size_t threads_ = 0, idle_ = 0, peak_ = 0;
  bool stopping_ = false;
};

}  // namespace embbench
