// FIFO admission to inference: at most `capacity` holders at once, and waiters are admitted strictly in
// the order they arrived (a ticket queue). A std::counting_semaphore makes no such promise: under load a
// thread that just released can take the slot again ahead of older waiters, and some requests starve.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace embbench {

class FifoGate {
 public:
  explicit FifoGate(std::size_t capacity);
  FifoGate(const FifoGate&) = delete;
  FifoGate& operator=(const FifoGate&) = delete;

  /// Blocks until this caller holds a slot. Callers are admitted in the order they called acquire().
  void acquire();
  /// Gives the slot back: the oldest waiter, if any, holds it when this returns.
  void release();

  /// Callers blocked in acquire() now (for tests and diagnostics).
  std::size_t waiting() const;
  /// Slots held now.
  std::size_t held() const;

  /// Holds a slot for its lifetime.
  class Hold {
   public:
    explicit Hold(FifoGate& g) : g_(g) { g_.acquire(); }
    ~Hold() { g_.release(); }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    FifoGate& g_;
  };

 private:
  // One per blocked caller, on its own stack; linked in arrival order. Each waiter has its own
  // condition variable, so a release wakes exactly the thread it admits (no thundering herd).
  struct Waiter {
    std::condition_variable cv;
    bool admitted = false;
    Waiter* next = nullptr;
  };

  mutable std::mutex mu_;
  std::size_t capacity_;
  std::size_t held_ = 0;
  std::size_t waiting_ = 0;
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
};

}  // namespace embbench
