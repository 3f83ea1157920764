// FifoGate: admission in arrival order under contention, and never more holders than slots.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "fifo_gate.h"

using namespace std::chrono_literals;

namespace {

// Waits (up to 10 s) until `pred` holds.
template <class Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

}  // namespace

TEST_CASE("FifoGate admits waiters in the order they arrived, under contention") {
  for (std::size_t slots : {1, 3}) {
    CAPTURE(slots);
    embbench::FifoGate gate(slots);
    // The test holds every slot, so all 64 threads queue, in a known order.
    for (std::size_t s = 0; s < slots; ++s) gate.acquire();
    std::mutex mu;
    std::vector<int> order;
    std::vector<std::thread> threads;
    constexpr int kThreads = 64;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        gate.acquire();
        {
          std::lock_guard lk(mu);
          order.push_back(i);
        }
        std::this_thread::sleep_for(50us);
        gate.release();
      });
      REQUIRE(eventually([&] { return gate.waiting() == static_cast<std::size_t>(i) + 1; }));
    }
    CHECK(gate.held() == slots);
    // Newcomers arriving while the queue drains must not overtake it: this thread keeps re-acquiring.
    std::atomic<bool> stop{false};
    std::atomic<int> barger_wins{0};
    std::thread barger([&] {
      while (!stop) {
        gate.acquire();
        {
          std::lock_guard lk(mu);
          order.push_back(1000);  // marks a newcomer's turn
        }
        ++barger_wins;
        gate.release();
      }
    });
    REQUIRE(eventually([&] { return gate.waiting() == kThreads + 1; }));  // the newcomer queued behind them
    for (std::size_t s = 0; s < slots; ++s) gate.release();
    for (auto& t : threads) t.join();
    stop = true;
    barger.join();
    // The 64 queued threads came first, in arrival order, whatever the number of slots: only after all
    // of them may the newcomer have had turns.
    std::vector<int> queued;
    std::size_t first_barger = order.size();
    for (std::size_t k = 0; k < order.size(); ++k) {
      if (order[k] == 1000) {
        first_barger = std::min(first_barger, k);
      } else {
        queued.push_back(order[k]);
      }
    }
    std::vector<int> want(kThreads);
    for (int i = 0; i < kThreads; ++i) want[static_cast<std::size_t>(i)] = i;
    if (slots == 1) CHECK(queued == want);
    // With several slots, holders overlap and may record in another order, but each was admitted in
    // order: nobody can be more than slots-1 places ahead of its arrival.
    for (std::size_t k = 0; k < queued.size(); ++k) {
      CHECK(std::abs(queued[k] - static_cast<int>(k)) < static_cast<int>(slots));
    }
    CHECK(first_barger >= static_cast<std::size_t>(kThreads) - (slots - 1));
    CHECK(barger_wins > 0);
    CHECK(gate.held() == 0);
    CHECK(gate.waiting() == 0);
  }
}

TEST_CASE("FifoGate never lets more than its slots in, and every caller gets through") {
  for (std::size_t slots : {1, 2, 4}) {
    CAPTURE(slots);
    embbench::FifoGate gate(slots);
    std::atomic<int> inside{0}, most{0}, done{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; ++t) {
      threads.emplace_back([&] {
        for (int k = 0; k < 300; ++k) {
          embbench::FifoGate::Hold h(gate);
          const int now = ++inside;
          int m = most.load();
          while (now > m && !most.compare_exchange_weak(m, now)) {
          }
          std::this_thread::yield();
          --inside;
          ++done;
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK(done == 16 * 300);
    CHECK(most.load() <= static_cast<int>(slots));
    CHECK(most.load() >= 1);
    CHECK(gate.held() == 0);
  }
}

TEST_CASE("FifoGate: a free slot goes straight to a newcomer when nobody waits; release without acquire throws") {
  embbench::FifoGate gate(2);
  gate.acquire();
  gate.acquire();
  CHECK(gate.held() == 2);
  gate.release();
  gate.release();
  CHECK(gate.held() == 0);
  CHECK_THROWS_AS(gate.release(), std::logic_error);
  CHECK_THROWS_AS(embbench::FifoGate(0), std::invalid_argument);
}
