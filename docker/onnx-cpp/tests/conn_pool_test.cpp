// ConnectionPool: a task per connection, each on its own thread, so 1,100 tasks that block at once
// all run at once (a fixed pool would leave the extra ones waiting).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "conn_pool.h"

using namespace std::chrono_literals;

TEST_CASE("ConnectionPool runs 1,100 blocking tasks at the same time, then shrinks back when idle") {
  embbench::ConnectionPool::Options o;
  o.min_threads = 4;
  o.max_threads = 4096;
  o.stack_bytes = 256 * 1024;
  o.idle_timeout = 200ms;
  embbench::ConnectionPool pool(o);
  CHECK(pool.threads() == 4);

  constexpr int kTasks = 1100;
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  bool go = false;
  std::atomic<int> finished{0};
  for (int i = 0; i < kTasks; ++i) {
    REQUIRE(pool.enqueue([&] {
      std::unique_lock lk(mu);
      ++started;
      cv.notify_all();
      // Blocks like a keep-alive connection until the test lets every task go.
      cv.wait(lk, [&] { return go; });
      ++finished;
    }));
  }
  {
    std::unique_lock lk(mu);
    // Every task is running at once: none waits for another to finish.
    CHECK(cv.wait_for(lk, 20s, [&] { return started == kTasks; }));
    go = true;
  }
  cv.notify_all();
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (finished < kTasks && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  CHECK(finished == kTasks);
  CHECK(pool.peak_threads() >= static_cast<std::size_t>(kTasks));
  CHECK(pool.peak_threads() <= static_cast<std::size_t>(kTasks) + 4);
  // Idle threads above the minimum end after idle_timeout.
  const auto shrink_deadline = std::chrono::steady_clock::now() + 20s;
  while (pool.threads() > 4 && std::chrono::steady_clock::now() < shrink_deadline) std::this_thread::sleep_for(10ms);
  CHECK(pool.threads() == 4);
  // And the pool still serves.
  std::atomic<bool> ran{false};
  pool.enqueue([&] { ran = true; });
  const auto d2 = std::chrono::steady_clock::now() + 5s;
  while (!ran && std::chrono::steady_clock::now() < d2) std::this_thread::sleep_for(1ms);
  CHECK(ran);
}

TEST_CASE("ConnectionPool at max_threads queues the extra tasks until a thread frees; shutdown drains the queue") {
  embbench::ConnectionPool::Options o;
  o.min_threads = 0;
  o.max_threads = 2;
  embbench::ConnectionPool pool(o);
  std::mutex mu;
  std::condition_variable cv;
  bool go = false;
  std::atomic<int> running{0}, most{0}, done{0};
  for (int i = 0; i < 6; ++i) {
    pool.enqueue([&] {
      const int now = ++running;
      int m = most.load();
      while (now > m && !most.compare_exchange_weak(m, now)) {
      }
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return go; });
      --running;
      ++done;
    });
  }
  std::this_thread::sleep_for(50ms);
  CHECK(pool.threads() == 2);
  CHECK(most == 2);
  {
    std::lock_guard lk(mu);
    go = true;
  }
  cv.notify_all();
  pool.shutdown();
  CHECK(done == 6);
  CHECK(pool.threads() == 0);
  CHECK_FALSE(pool.enqueue([] {}));
}
