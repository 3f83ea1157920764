// GET /metrics: cumulative /embed counters in the Prometheus text format 0.0.4 (docker/CONTRACT.md).
// Every counter is a lock-free atomic, so recording a request takes no lock on the hot path.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace embbench {

/// The Content-Type of a /metrics answer.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4";

/// The phases of one /embed request, in nanoseconds of a monotonic clock (the contract's table).
struct PhaseTimes {
  std::uint64_t request_ns = 0;    // the body read -> the answer serialised
  std::uint64_t parse_ns = 0;      // the body read -> the request parsed and validated
  std::uint64_t tokenize_ns = 0;   // the tokenizer called -> the padded batch ready
  std::uint64_t queue_ns = 0;      // the padded batch ready -> an inference slot held
  std::uint64_t inference_ns = 0;  // the slot held -> the model's output in hand
  std::uint64_t serialize_ns = 0;  // the output in hand -> the answer serialised
};

class Metrics {
 public:
  /// The upper bounds of embbench_batch_size's buckets; +Inf follows.
  static constexpr std::array<std::uint64_t, 9> kBatchBuckets{1, 2, 4, 8, 16, 32, 64, 128, 256};

  /// SERVING=sequential: counts one /embed answered 200, `inputs` texts of `tokens` tokens (after
  /// truncation, special tokens included, padding excluded), run as one inference of `inputs` rows.
  void record(std::size_t inputs, std::uint64_t tokens, const PhaseTimes& t) {
    record_request(inputs, tokens, t);
    record_batch(inputs);
  }
  /// Counts one /embed answered 200 without its inference (SERVING=batched: the batcher counts those).
  void record_request(std::size_t inputs, std::uint64_t tokens, const PhaseTimes& t);
  /// Counts one inference of `rows` rows in embbench_batch_size.
  void record_batch(std::size_t rows);

  /// The exposition text: every counter, then the batch-size histogram.
  std::string text() const;

 private:
  static void add(std::atomic<std::uint64_t>& c, std::uint64_t v) { c.fetch_add(v, std::memory_order_relaxed); }
  static std::uint64_t get(const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); }

  std::atomic<std::uint64_t> requests_{0}, inputs_{0}, tokens_{0};
  std::atomic<std::uint64_t> request_ns_{0}, parse_ns_{0}, tokenize_ns_{0}, queue_ns_{0}, inference_ns_{0},
      serialize_ns_{0};
  // Per bucket, not cumulative: bucket i counts batches in (bound[i-1], bound[i]]; the last is > 256.
  std::array<std::atomic<std::uint64_t>, kBatchBuckets.size() + 1> batch_buckets_{};
  std::atomic<std::uint64_t> batch_sum_{0};
};

/// Nanoseconds as exact decimal seconds: 1500000000 -> "1.500000000".
std::string ns_to_seconds_text(std::uint64_t ns);

}  // namespace embbench
