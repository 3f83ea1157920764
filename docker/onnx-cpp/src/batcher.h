// SERVING=batched: the contract's batcher (docker/CONTRACT.md, "Serving modes and the batcher").
// Requests are tokenized on arrival and queued in order; MAX_INFLIGHT workers each take the oldest
// request and the next ones in order while the batch stays within MAX_BATCH_TOKENS padded tokens and at
// least half of its padded tokens are real, stopping at the first request that does not fit (it leads
// the next batch: nothing is overtaken). With MAX_WAIT_US > 0 and room left, a worker waits until
// MAX_WAIT_US after its oldest request was queued for more. One inference per batch; each request gets
// its own rows back.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine.h"
#include "tokenizer.h"

namespace embbench {

/// The size of a request, or of a batch of requests, as the batching rule sees it.
struct BatchShape {
  std::size_t rows = 0;
  std::size_t longest = 0;  // tokens in the longest row
  std::size_t tokens = 0;   // real tokens in all rows
  std::size_t padded() const { return rows * longest; }
  BatchShape joined(const BatchShape& o) const {
    return {rows + o.rows, longest > o.longest ? longest : o.longest, tokens + o.tokens};
  }
};

BatchShape shape_of(const std::vector<Encoding>& rows);

/// Whether a request of shape `next` may join the non-empty `batch`: the joined batch stays within
/// `max_batch_tokens` padded tokens and at least half of its padded tokens are real tokens.
bool fits(const BatchShape& batch, const BatchShape& next, std::size_t max_batch_tokens);

/// How many of `queue` (oldest first) the next batch takes: always the first (alone if it is larger than
/// the budget), then the following ones while they fit, stopping at the first one that does not.
std::size_t plan_batch(const std::vector<BatchShape>& queue, std::size_t max_batch_tokens);

class Batcher {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::size_t max_batch_tokens = 16384;
    std::chrono::microseconds max_wait{0};
    std::size_t workers = 1;  // MAX_INFLIGHT
  };

  /// Runs one padded batch (the engine in the server, a fake in tests); may throw.
  using Runner = std::function<EngineOutput(const Batch&)>;
  /// Called after every inference that succeeded, with its rows (embbench_batch_size).
  using BatchObserver = std::function<void(std::size_t rows)>;

  /// One request's share of its batch's inference.
  struct Result {
    std::vector<float> embeddings;  // [rows, dim], this request's rows in its own order
    std::size_t rows = 0;
    std::size_t dim = 0;
    Clock::time_point run_start{}, run_end{};  // the batch's runtime call
    std::size_t batch_rows = 0;                 // rows of the whole inference
    std::size_t batch_requests = 0;             // requests that shared it
  };

  Batcher(Options opts, int64_t pad_id, Runner run, BatchObserver on_batch = nullptr);
  /// Fails the requests still queued, lets running batches finish and joins the workers.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// Queues one request's rows (non-empty), stamped `queued_at`, and blocks until its batch has run.
  /// Throws what the runner threw (BackendError), for every request of that batch.
  Result submit(std::vector<Encoding> rows, Clock::time_point queued_at = Clock::now());

  /// Requests queued and not yet taken by a worker.
  std::size_t queued() const;
  /// Requests queued since the start.
  std::size_t submitted() const;
  const Options& options() const { return opts_; }

 private:
  struct Pending {
    std::vector<Encoding> rows;
    BatchShape shape;
    Clock::time_point queued_at;
    std::promise<Result> done;
  };

  void worker();
  /// Takes the next batch from the queue (the lock held; may wait MAX_WAIT_US, releasing it meanwhile).
  std::vector<std::unique_ptr<Pending>> take_batch(std::unique_lock<std::mutex>& lk);
  void run_batch(std::vector<std::unique_ptr<Pending>>& batch);

  Options opts_;
  int64_t pad_id_;
  Runner run_;
  BatchObserver on_batch_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;     // the queue became non-empty, or the forming worker finished
  std::condition_variable arrival_cv_;  // a request arrived (for the worker waiting MAX_WAIT_US)
  std::deque<std::unique_ptr<Pending>> queue_;
  bool forming_ = false;  // one worker at a time forms a batch, so batches leave the queue in order
  bool stopping_ = false;
  std::size_t submitted_ = 0;
  std::vector<std::thread> workers_;
};

}  // namespace embbench
