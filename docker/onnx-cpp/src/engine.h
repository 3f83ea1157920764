// The ONNX Runtime session: one Ort::Session shared by all request threads, at most MAX_INFLIGHT
// Run() calls at once (a counting semaphore), intra-op threads = NUM_THREADS, inter-op 1.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <semaphore>
#include <stdexcept>
#include <string>
#include <vector>

#include "tokenizer.h"

namespace embbench {

/// The inference backend failed (answered as 500 Backend).
class BackendError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A padded batch, row-major [rows, seq].
struct Batch {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> attention_mask;
  std::size_t rows = 0;
  std::size_t seq = 0;
};

/// Pads encodings on the right to the longest with `pad_id`; mask 1 for tokens, 0 for padding.
Batch pad_batch(const std::vector<Encoding>& encodings, int64_t pad_id);

struct EngineOutput {
  std::vector<float> embeddings;  // [rows, dim]
  std::size_t rows = 0;
  std::size_t dim = 0;
  /// When run() held an inference slot, and when the graph's output was back (the end of the
  /// contract's `queue` phase and of its `inference` phase).
  std::chrono::steady_clock::time_point slot_acquired{}, output_ready{};
};

/// The ONNX Runtime environment (Ort::Env): created once, before any model is read, and shared by
/// the sessions created in it.
class Runtime {
 public:
  Runtime();
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

 private:
  friend class Engine;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Engine {
 public:
  /// Loads `onnx_path` in `runtime`; throws BackendError naming the file and ONNX Runtime's message.
  Engine(std::shared_ptr<const Runtime> runtime, const std::string& onnx_path, int num_threads, int max_inflight);
  /// The same in a runtime of its own.
  Engine(const std::string& onnx_path, int num_threads, int max_inflight);
  ~Engine();

  /// Runs the graph on `batch` (thread-safe), waiting for an inference slot first.
  EngineOutput run(const Batch& batch);

  /// sentence_embedding's second dimension when the graph fixes it, nullopt when it is symbolic.
  std::optional<std::size_t> output_dim() const;

  /// ONNX Runtime's own version string (OrtGetApiBase()->GetVersionString()).
  static std::string ort_version();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace embbench
