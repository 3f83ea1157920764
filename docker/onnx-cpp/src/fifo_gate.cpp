#include "fifo_gate.h"

#include <stdexcept>

namespace embbench {

FifoGate::FifoGate(std::size_t capacity) : capacity_(capacity) {
  if (capacity == 0) throw std::invalid_argument("FifoGate needs at least one slot");
}

void FifoGate::acquire() {
  std::unique_lock lk(mu_);
  // A free slot goes to a newcomer only when nobody is queued ahead of it.
  if (head_ == nullptr && held_ < capacity_) {
    ++held_;
    return;
  }
  Waiter me;
  if (tail_) tail_->next = &me;
  else head_ = &me;
  tail_ = &me;
  ++waiting_;
  me.cv.wait(lk, [&] { return me.admitted; });
  // release() unlinked `me` and counted the slot as held on its behalf.
}

void FifoGate::release() {
  std::unique_lock lk(mu_);
  if (Waiter* w = head_) {
    // Hand the slot straight to the oldest waiter: `held_` does not change.
    head_ = w->next;
    if (!head_) tail_ = nullptr;
    --waiting_;
    w->admitted = true;
    // Notify under the lock: `w` lives on the waiter's stack and may be gone once the lock is released.
    w->cv.notify_one();
    return;
  }
  if (held_ == 0) throw std::logic_error("FifoGate::release() without a matching acquire()");
  --held_;
}

std::size_t FifoGate::waiting() const {
  std::lock_guard lk(mu_);
  return waiting_;
}

std::size_t FifoGate::held() const {
  std::lock_guard lk(mu_);
  return held_;
}

}  // namespace embbench
