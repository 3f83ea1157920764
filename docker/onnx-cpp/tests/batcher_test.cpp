// The batcher (SERVING=batched) against a fake runner: which requests share an inference, in what
// order, and whether each request gets its own rows back.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "batcher.h"

using namespace std::chrono_literals;
using embbench::Batch;
using embbench::Batcher;
using embbench::BatchShape;
using embbench::Encoding;
using embbench::EngineOutput;

namespace {

constexpr int64_t kPad = 0;

// A row of `len` tokens whose ids identify it: first id = `tag`, then 1s.
Encoding row(int64_t tag, std::size_t len) {
  Encoding e;
  e.ids.assign(len, 1);
  e.ids[0] = tag;
  e.full_length = len;
  return e;
}

// A fake model: each output row is [first id, real tokens (mask sum), padded length]; it records the
// batches it ran and can be held (a gate the test opens) so requests pile up in the queue.
struct FakeModel {
  std::mutex mu;
  std::condition_variable cv;
  bool open = true;
  int running = 0, most_running = 0;
  std::vector<std::vector<int64_t>> batches;  // the tags of each batch's rows, in row order
  std::vector<std::size_t> seqs;              // each batch's padded length
  std::vector<std::chrono::steady_clock::time_point> starts;

  EngineOutput run(const Batch& b) {
    EngineOutput out;
    out.run_start = std::chrono::steady_clock::now();
    {
      std::unique_lock lk(mu);
      std::vector<int64_t> tags;
      for (std::size_t r = 0; r < b.rows; ++r) tags.push_back(b.input_ids[r * b.seq]);
      batches.push_back(tags);
      seqs.push_back(b.seq);
      starts.push_back(out.run_start);
      ++running;
      most_running = std::max(most_running, running);
      cv.wait(lk, [&] { return open; });
    }
    std::this_thread::sleep_for(2ms);
    out.rows = b.rows;
    out.dim = 3;
    for (std::size_t r = 0; r < b.rows; ++r) {
      int64_t real = 0;
      for (std::size_t s = 0; s < b.seq; ++s) {
        real += b.attention_mask[r * b.seq + s];
        // Padding is the pad id with mask 0, always on the right.
        if (b.attention_mask[r * b.seq + s] == 0) CHECK(b.input_ids[r * b.seq + s] == kPad);
      }
      out.embeddings.push_back(static_cast<float>(b.input_ids[r * b.seq]));
      out.embeddings.push_back(static_cast<float>(real));
      out.embeddings.push_back(static_cast<float>(b.seq));
    }
    out.run_end = std::chrono::steady_clock::now();
    {
      std::lock_guard lk(mu);
      --running;
    }
    return out;
  }
  void hold() {
    std::lock_guard lk(mu);
    open = false;
  }
  void release() {
    {
      std::lock_guard lk(mu);
      open = true;
    }
    cv.notify_all();
  }
  std::size_t batch_count() {
    std::lock_guard lk(mu);
    return batches.size();
  }
};

template <class Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

// Submits requests from their own threads, one after another in a known queue order: request i is
// submitted only once request i-1 has been queued.
struct Clients {
  Batcher& b;
  std::vector<std::future<Batcher::Result>> results;
  void submit(std::vector<Encoding> rows) {
    const std::size_t before = b.submitted();
    results.push_back(std::async(std::launch::async, [this, rows = std::move(rows)]() mutable {
      return b.submit(std::move(rows));
    }));
    REQUIRE(eventually([&] { return b.submitted() == before + 1; }));
  }
};

// Checks that `r` holds exactly the rows `rows` asked for (tag, real tokens), padded to `seq`.
void check_rows(const Batcher::Result& r, const std::vector<Encoding>& rows, std::size_t seq) {
  REQUIRE(r.rows == rows.size());
  REQUIRE(r.dim == 3);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CHECK(r.embeddings[i * 3 + 0] == static_cast<float>(rows[i].ids[0]));
    CHECK(r.embeddings[i * 3 + 1] == static_cast<float>(rows[i].ids.size()));
    CHECK(r.embeddings[i * 3 + 2] == static_cast<float>(seq));
  }
}

Batcher::Runner runner(FakeModel& m) {
  return [&m](const Batch& b) { return m.run(b); };
}

}  // namespace

TEST_CASE("plan_batch: the budget, the half-real rule, and the first request that does not fit stops the batch") {
  auto s = [](std::size_t rows, std::size_t longest, std::size_t tokens) { return BatchShape{rows, longest, tokens}; };
  // Budget: 3 rows x 32 = 96 fits 100, a fourth row (128) does not, nor any later one.
  CHECK(embbench::plan_batch({s(1, 32, 32), s(1, 32, 32), s(1, 32, 32), s(1, 32, 32), s(1, 2, 2)}, 100) == 3);
  // Half real: [4] + [4] + [32] pads to 96 with 40 real tokens (< 48): the 32-token one leads the next
  // batch, and the 4-token request behind it is not taken around it.
  CHECK(embbench::plan_batch({s(1, 4, 4), s(1, 4, 4), s(1, 32, 32), s(1, 4, 4)}, 16384) == 2);
  // [4] + [32]: 64 padded, 36 real (>= 32): fits.
  CHECK(embbench::plan_batch({s(1, 4, 4), s(1, 32, 32)}, 16384) == 2);
  // Exactly half real fits: [16] + two rows of 4: 3 x 16 = 48 padded, 24 real.
  CHECK(embbench::plan_batch({s(1, 16, 16), s(2, 4, 8)}, 16384) == 2);   // 48 padded, 24 real: exactly half
  CHECK(embbench::plan_batch({s(1, 16, 16), s(2, 3, 6)}, 16384) == 1);   // 48 padded, 22 real: under half
  // A request larger than the budget still runs, alone.
  CHECK(embbench::plan_batch({s(4, 64, 256), s(1, 2, 2)}, 100) == 1);
  CHECK(embbench::plan_batch({s(1, 2, 2), s(4, 64, 256)}, 100) == 1);
  // Budget boundary: exactly the budget fits.
  CHECK(embbench::plan_batch({s(2, 25, 50), s(2, 25, 50)}, 100) == 2);
  CHECK(embbench::plan_batch({s(2, 25, 50), s(2, 25, 50)}, 99) == 1);
  CHECK(embbench::plan_batch({}, 100) == 0);
  CHECK(embbench::shape_of({row(5, 3), row(6, 7)}).padded() == 14);
  CHECK(embbench::shape_of({row(5, 3), row(6, 7)}).tokens == 10);
}

TEST_CASE("Batcher: queued requests share one inference, in arrival order, each answered with its own rows") {
  FakeModel m;
  Batcher b({.max_batch_tokens = 16384, .max_wait = 0us, .workers = 1}, kPad, runner(m));
  Clients c{b, {}};
  m.hold();
  c.submit({row(100, 5)});  // taken at once by the free worker, which then blocks in the model
  REQUIRE(eventually([&] { return m.batch_count() == 1 && b.queued() == 0; }));
  // Eight concurrent requests of 1 to 3 rows queue behind it.
  std::vector<std::vector<Encoding>> reqs;
  int64_t tag = 1;
  for (int i = 0; i < 8; ++i) {
    std::vector<Encoding> rows;
    for (int k = 0; k <= i % 3; ++k, ++tag) rows.push_back(row(tag, 3 + static_cast<std::size_t>((tag * 5) % 4)));
    reqs.push_back(rows);
    c.submit(rows);
  }
  CHECK(b.queued() == 8);
  m.release();
  for (auto& f : c.results) f.wait();
  REQUIRE(m.batch_count() == 2);
  // The second inference holds every queued request, rows in request order then row order.
  std::vector<int64_t> want;
  for (int64_t t = 1; t < tag; ++t) want.push_back(t);
  CHECK(m.batches[1] == want);
  std::size_t total_rows = 0;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    const auto r = c.results[i + 1].get();
    check_rows(r, reqs[i], m.seqs[1]);
    CHECK(r.batch_requests == 8);
    CHECK(r.batch_rows == want.size());
    total_rows += r.rows;
  }
  CHECK(total_rows == want.size());
  check_rows(c.results[0].get(), {row(100, 5)}, 5);
}

TEST_CASE("Batcher: the token budget closes a batch at the first request that does not fit; nothing is overtaken") {
  FakeModel m;
  std::vector<std::size_t> observed;
  std::mutex omu;
  Batcher b({.max_batch_tokens = 40, .max_wait = 0us, .workers = 1}, kPad, runner(m), [&](std::size_t rows) {
    std::lock_guard lk(omu);
    observed.push_back(rows);
  });
  Clients c{b, {}};
  m.hold();
  c.submit({row(1, 4)});
  REQUIRE(eventually([&] { return m.batch_count() == 1 && b.queued() == 0; }));
  c.submit({row(2, 10), row(3, 10)});  // 20 padded
  c.submit({row(4, 10)});              // 30
  c.submit({row(5, 10), row(6, 8)});   // would be 50 > 40: stops here, leads the next batch
  c.submit({row(7, 2)});               // would fit the first batch's room, but must not overtake
  c.submit({row(8, 10)});
  m.release();
  for (auto& f : c.results) f.wait();
  REQUIRE(m.batch_count() == 3);
  CHECK(m.batches[1] == std::vector<int64_t>{2, 3, 4});
  // [5,6] + [7]: 3 x 10 = 30, real 20 (>= 15); + [8]: 40 padded, 30 real: fits exactly.
  CHECK(m.batches[2] == std::vector<int64_t>{5, 6, 7, 8});
  check_rows(c.results[3].get(), {row(5, 10), row(6, 8)}, 10);
  check_rows(c.results[4].get(), {row(7, 2)}, 10);
  CHECK(observed == std::vector<std::size_t>{1, 3, 4});  // embbench_batch_size: one per inference
}

TEST_CASE("Batcher: the half-real-tokens rule keeps a long request out of a batch of short ones") {
  FakeModel m;
  Batcher b({.max_batch_tokens = 16384, .max_wait = 0us, .workers = 1}, kPad, runner(m));
  Clients c{b, {}};
  m.hold();
  c.submit({row(1, 4)});
  REQUIRE(eventually([&] { return m.batch_count() == 1 && b.queued() == 0; }));
  c.submit({row(2, 4)});
  c.submit({row(3, 4)});
  c.submit({row(4, 64)});  // 3 x 64 = 192 padded, 72 real: under half
  c.submit({row(5, 4)});
  c.submit({row(6, 60)});
  m.release();
  for (auto& f : c.results) f.wait();
  REQUIRE(m.batch_count() == 3);
  CHECK(m.batches[1] == std::vector<int64_t>{2, 3});
  // [64] + [4]: 128 padded, 68 real: fits; + [60]: 192 padded, 128 real: fits.
  CHECK(m.batches[2] == std::vector<int64_t>{4, 5, 6});
  CHECK(m.seqs[1] == 4);
  CHECK(m.seqs[2] == 64);
  check_rows(c.results[4].get(), {row(5, 4)}, 64);
}

TEST_CASE("Batcher: a request larger than MAX_BATCH_TOKENS runs alone, and the next one leads the next batch") {
  FakeModel m;
  Batcher b({.max_batch_tokens = 16, .max_wait = 0us, .workers = 1}, kPad, runner(m));
  Clients c{b, {}};
  m.hold();
  c.submit({row(1, 2)});
  REQUIRE(eventually([&] { return m.batch_count() == 1 && b.queued() == 0; }));
  c.submit({row(2, 8), row(3, 8), row(4, 8)});  // 24 > 16
  c.submit({row(5, 2)});
  c.submit({row(6, 2)});
  m.release();
  for (auto& f : c.results) f.wait();
  REQUIRE(m.batch_count() == 3);
  CHECK(m.batches[1] == std::vector<int64_t>{2, 3, 4});
  CHECK(m.batches[2] == std::vector<int64_t>{5, 6});
  check_rows(c.results[1].get(), {row(2, 8), row(3, 8), row(4, 8)}, 8);
}

TEST_CASE("Batcher: MAX_WAIT_US holds a batch open for requests arriving after its oldest; 0 runs at once") {
  SUBCASE("MAX_WAIT_US = 150 ms: a request 40 ms later joins, and the batch starts 150 ms after the first") {
    FakeModel m;
    Batcher b({.max_batch_tokens = 16384, .max_wait = 150000us, .workers = 1}, kPad, runner(m));
    const auto t0 = std::chrono::steady_clock::now();
    auto first = std::async(std::launch::async, [&] { return b.submit({row(1, 4)}, t0); });
    std::this_thread::sleep_for(40ms);
    auto second = std::async(std::launch::async, [&] { return b.submit({row(2, 4)}); });
    const auto r1 = first.get();
    const auto r2 = second.get();
    REQUIRE(m.batch_count() == 1);
    CHECK(m.batches[0] == std::vector<int64_t>{1, 2});
    CHECK(r1.batch_requests == 2);
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(m.starts[0] - t0).count();
    CHECK(waited >= 150);
    CHECK(waited < 1000);
    check_rows(r2, {row(2, 4)}, 4);
  }
  SUBCASE("MAX_WAIT_US = 150 ms stops waiting once the budget is full") {
    FakeModel m;
    Batcher b({.max_batch_tokens = 8, .max_wait = 150000us, .workers = 1}, kPad, runner(m));
    const auto t0 = std::chrono::steady_clock::now();
    b.submit({row(1, 4), row(2, 4)}, t0);  // 8 of 8 tokens: no room left, no wait
    CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
  }
  SUBCASE("MAX_WAIT_US = 0: a lone request runs at once, a later one in its own batch") {
    FakeModel m;
    Batcher b({.max_batch_tokens = 16384, .max_wait = 0us, .workers = 1}, kPad, runner(m));
    const auto t0 = std::chrono::steady_clock::now();
    auto first = std::async(std::launch::async, [&] { return b.submit({row(1, 4)}, t0); });
    first.wait();
    CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
    std::this_thread::sleep_for(20ms);
    b.submit({row(2, 4)});
    REQUIRE(m.batch_count() == 2);
    CHECK(m.batches[0] == std::vector<int64_t>{1});
    CHECK(m.batches[1] == std::vector<int64_t>{2});
  }
}

TEST_CASE("Batcher: MAX_INFLIGHT workers run that many inferences at once, batches still in queue order") {
  FakeModel m;
  Batcher b({.max_batch_tokens = 8, .max_wait = 0us, .workers = 2}, kPad, runner(m));
  Clients c{b, {}};
  m.hold();
  c.submit({row(1, 8)});
  c.submit({row(2, 8)});
  REQUIRE(eventually([&] { return m.batch_count() == 2 && b.queued() == 0; }));  // both workers busy
  c.submit({row(3, 8)});
  c.submit({row(4, 8)});
  c.submit({row(5, 8)});
  CHECK(b.queued() == 3);
  m.release();
  for (auto& f : c.results) f.wait();
  REQUIRE(m.batch_count() == 5);
  CHECK(m.most_running == 2);
  // Each request (8 tokens fill the budget) ran alone; two workers may enter the model in either order.
  auto ran = m.batches;
  std::sort(ran.begin(), ran.end());
  for (std::size_t i = 0; i < 5; ++i) CHECK(ran[i] == std::vector<int64_t>{static_cast<int64_t>(i + 1)});
}

TEST_CASE("Batcher: many concurrent submitters all get their own rows; a failing inference fails its requests only") {
  FakeModel m;
  std::atomic<int> calls{0};
  Batcher b({.max_batch_tokens = 64, .max_wait = 0us, .workers = 1}, kPad, [&](const Batch& batch) {
    if (++calls == 1) throw embbench::BackendError("boom");
    return m.run(batch);
  });
  CHECK_THROWS_WITH_AS(b.submit({row(9, 3)}), "boom", embbench::BackendError);
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 20; ++k) {
        const int64_t tag = 1000 + t * 100 + k;
        const std::size_t len = 2 + static_cast<std::size_t>((t + k) % 6);
        const auto r = b.submit({row(tag, len), row(tag + 50, 2)});
        if (r.rows == 2 && r.embeddings[0] == static_cast<float>(tag) && r.embeddings[1] == static_cast<float>(len) &&
            r.embeddings[3] == static_cast<float>(tag + 50) && r.embeddings[4] == 2.0f) {
          ++good;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(good == 32 * 20);
  std::size_t rows = 0;
  for (const auto& bt : m.batches) rows += bt.size();
  CHECK(rows == 32 * 20 * 2);
  CHECK(m.batch_count() < 32 * 20);  // some requests shared an inference
}

TEST_CASE("Batcher: a request that fails a shared inference fails alone; the others it shared with are answered") {
  FakeModel m;
  // Any batch holding the poisoned row (tag 666) fails, as an inference a bad input breaks would.
  Batcher b({.max_batch_tokens = 64, .max_wait = 300ms, .workers = 1}, kPad, [&](const Batch& batch) {
    for (std::size_t r = 0; r < batch.rows; ++r) {
      if (batch.input_ids[r * batch.seq] == 666) {
        std::lock_guard lk(m.mu);
        m.batches.push_back({666});
        throw embbench::BackendError("poisoned");
      }
    }
    return m.run(batch);
  });
  std::vector<std::thread> threads;
  std::atomic<int> answered{0}, failed{0};
  for (const int64_t tag : {11, 666, 12, 13}) {
    threads.emplace_back([&, tag] {
      try {
        const auto r = b.submit({row(tag, 3)});
        if (r.rows == 1 && r.embeddings[0] == static_cast<float>(tag)) ++answered;
      } catch (const embbench::BackendError& e) {
        if (tag == 666 && std::string(e.what()) == "poisoned") ++failed;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(answered == 3);
  CHECK(failed == 1);
  // The shared attempt failed once, then each request ran alone (the poisoned one failing again).
  std::size_t alone = 0;
  for (const auto& tags : m.batches) alone += tags.size() == 1 ? 1 : 0;
  CHECK(alone >= 4);
}
