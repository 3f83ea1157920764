#include "conn_pool.h"

#include <pthread.h>

#include <climits>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace embbench {

namespace {

struct Start {
  ConnectionPool* pool;
  void (ConnectionPool::*fn)();
};

void* thread_main(void* arg) {
  const Start s = *static_cast<Start*>(arg);
  delete static_cast<Start*>(arg);
  (s.pool->*s.fn)();
  return nullptr;
}

}  // namespace

ConnectionPool::ConnectionPool(Options opts) : opts_(opts) {
  if (opts_.max_threads == 0) throw std::invalid_argument("ConnectionPool needs max_threads >= 1");
  opts_.min_threads = std::min(opts_.min_threads, opts_.max_threads);
  std::lock_guard lk(mu_);
  for (std::size_t i = 0; i < opts_.min_threads; ++i) {
    if (!spawn_locked()) throw std::runtime_error("cannot create the HTTP threads");
  }
}

ConnectionPool::~ConnectionPool() { shutdown(); }

bool ConnectionPool::spawn_locked() {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, std::max<std::size_t>(opts_.stack_bytes, PTHREAD_STACK_MIN));
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  auto* start = new Start{this, &ConnectionPool::worker};
  const int rc = pthread_create(&t, &attr, thread_main, start);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    delete start;
    return false;
  }
  pthread_setname_np(t, "http");
  ++threads_;
  peak_ = std::max(peak_, threads_);
  return true;
}

bool ConnectionPool::enqueue(std::function<void()> task) {
  std::unique_lock lk(mu_);
  if (stopping_) return false;
  tasks_.push_back(std::move(task));
  // Every queued task needs its own thread: a connection task runs until the connection closes.
  if (tasks_.size() > idle_ && threads_ < opts_.max_threads) {
    // When the OS refuses a thread the task waits for an existing one.
    spawn_locked();
  }
  task_cv_.notify_one();
  return true;
}

void ConnectionPool::worker() {
  std::unique_lock lk(mu_);
  for (;;) {
    ++idle_;
    const bool got = task_cv_.wait_for(lk, opts_.idle_timeout, [&] { return stopping_ || !tasks_.empty(); });
    --idle_;
    if (tasks_.empty()) {
      // Timed out idle (above the minimum), or stopping with nothing left to run.
      if (stopping_ || (!got && threads_ > opts_.min_threads)) break;
      continue;
    }
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    lk.unlock();
    try {
      task();
    } catch (...) {
      // cpp-httplib handles its own errors; a task must never take the thread down with it.
    }
    task = nullptr;  // destroy the task's captures before taking the lock again
    lk.lock();
  }
  --threads_;
  // Notify under the lock: shutdown() may destroy the pool as soon as it sees threads_ == 0.
  done_cv_.notify_all();
}

void ConnectionPool::shutdown() {
  std::unique_lock lk(mu_);
  stopping_ = true;
  task_cv_.notify_all();
  done_cv_.wait(lk, [&] { return threads_ == 0; });
}

std::size_t ConnectionPool::threads() const {
  std::lock_guard lk(mu_);
  return threads_;
}

std::size_t ConnectionPool::idle() const {
  std::lock_guard lk(mu_);
  return idle_;
}

std::size_t ConnectionPool::peak_threads() const {
  std::lock_guard lk(mu_);
  return peak_;
}

}  // namespace embbench
