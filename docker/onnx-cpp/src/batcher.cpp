#include "batcher.h"

#include <pthread.h>

#include <algorithm>
#include <string>

namespace embbench {

BatchShape shape_of(const std::vector<Encoding>& rows) {
  BatchShape s;
  s.rows = rows.size();
  for (const auto& e : rows) {
    s.longest = std::max(s.longest, e.ids.size());
    s.tokens += e.ids.size();
  }
  return s;
}

bool fits(const BatchShape& batch, const BatchShape& next, std::size_t max_batch_tokens) {
  const BatchShape j = batch.joined(next);
  return j.padded() <= max_batch_tokens && 2 * j.tokens >= j.padded();
}

std::size_t plan_batch(const std::vector<BatchShape>& queue, std::size_t max_batch_tokens) {
  if (queue.empty()) return 0;
  BatchShape batch = queue[0];
  std::size_t n = 1;
  while (n < queue.size() && fits(batch, queue[n], max_batch_tokens)) batch = batch.joined(queue[n++]);
  return n;
}

Batcher::Batcher(Options opts, int64_t pad_id, Runner run, BatchObserver on_batch)
    : opts_(opts), pad_id_(pad_id), run_(std::move(run)), on_batch_(std::move(on_batch)) {
  if (opts_.workers == 0) opts_.workers = 1;
  for (std::size_t i = 0; i < opts_.workers; ++i) {
    workers_.emplace_back([this] { worker(); });
    pthread_setname_np(workers_.back().native_handle(), "batch");
  }
}

Batcher::~Batcher() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  arrival_cv_.notify_all();
  for (auto& t : workers_) t.join();
  for (auto& p : queue_) {
    p->done.set_exception(std::make_exception_ptr(BackendError("the server is shutting down")));
  }
}

Batcher::Result Batcher::submit(std::vector<Encoding> rows, Clock::time_point queued_at) {
  if (rows.empty()) throw std::invalid_argument("Batcher::submit() needs at least one row");
  auto p = std::make_unique<Pending>();
  p->shape = shape_of(rows);
  p->rows = std::move(rows);
  p->queued_at = queued_at;
  auto fut = p->done.get_future();
  {
    std::lock_guard lk(mu_);
    if (stopping_) throw BackendError("the server is shutting down");
    queue_.push_back(std::move(p));
    ++submitted_;
  }
  work_cv_.notify_one();
  arrival_cv_.notify_one();
  return fut.get();
}

std::size_t Batcher::queued() const {
  std::lock_guard lk(mu_);
  return queue_.size();
}

std::size_t Batcher::submitted() const {
  std::lock_guard lk(mu_);
  return submitted_;
}

std::vector<std::unique_ptr<Batcher::Pending>> Batcher::take_batch(std::unique_lock<std::mutex>& lk) {
  std::vector<std::unique_ptr<Pending>> batch;
  BatchShape shape;
  // The oldest request leads, alone if it is larger than the budget.
  batch.push_back(std::move(queue_.front()));
  queue_.pop_front();
  shape = batch.front()->shape;
  const auto deadline = batch.front()->queued_at + opts_.max_wait;
  for (;;) {
    bool blocked = false;  // the next request does not fit: it leads the next batch
    while (!queue_.empty()) {
      if (!fits(shape, queue_.front()->shape, opts_.max_batch_tokens)) {
        blocked = true;
        break;
      }
      shape = shape.joined(queue_.front()->shape);
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    // Wait for more only while MAX_WAIT_US allows, the queue is drained and the budget has room.
    if (blocked || stopping_ || opts_.max_wait.count() <= 0 || shape.padded() >= opts_.max_batch_tokens) break;
    if (Clock::now() >= deadline) break;
    arrival_cv_.wait_until(lk, deadline, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) break;  // the deadline passed (or stopping) with nothing new
  }
  return batch;
}

void Batcher::worker() {
  std::unique_lock lk(mu_);
  for (;;) {
    work_cv_.wait(lk, [&] { return stopping_ || (!queue_.empty() && !forming_); });
    if (stopping_) return;
    forming_ = true;
    auto batch = take_batch(lk);
    forming_ = false;
    // Another free worker may lead the next batch (MAX_INFLIGHT > 1) while this one runs.
    if (!queue_.empty()) work_cv_.notify_one();
    lk.unlock();
    run_batch(batch);
    lk.lock();
  }
}

void Batcher::run_batch(std::vector<std::unique_ptr<Pending>>& batch) {
  std::vector<const Encoding*> rows;
  for (const auto& p : batch) {
    for (const auto& e : p->rows) rows.push_back(&e);
  }
  EngineOutput out;
  try {
    const Batch padded = pad_rows(rows, pad_id_);
    out = run_(padded);
    if (out.rows != rows.size() || out.embeddings.size() != out.rows * out.dim) {
      throw BackendError("the batch of " + std::to_string(rows.size()) + " rows answered " + std::to_string(out.rows) +
                         " rows");
    }
  } catch (...) {
    if (batch.size() > 1) {
      // One request's failure must not fail the others it shared the batch with: each runs alone
      // (docker/CONTRACT.md), and only the requests that fail alone answer the error.
      for (auto& p : batch) {
        std::vector<std::unique_ptr<Pending>> alone;
        alone.push_back(std::move(p));
        run_batch(alone);
      }
      return;
    }
    batch.front()->done.set_exception(std::current_exception());
    return;
  }
  if (on_batch_) on_batch_(out.rows);
  std::size_t first = 0;
  for (auto& p : batch) {
    Result r;
    r.rows = p->rows.size();
    r.dim = out.dim;
    r.embeddings.assign(out.embeddings.begin() + static_cast<std::ptrdiff_t>(first * out.dim),
                        out.embeddings.begin() + static_cast<std::ptrdiff_t>((first + r.rows) * out.dim));
    r.run_start = out.run_start;
    r.run_end = out.run_end;
    r.batch_rows = out.rows;
    r.batch_requests = batch.size();
    first += r.rows;
    p->done.set_value(std::move(r));
  }
}

}  // namespace embbench
