// The ONNX Runtime session: one Ort::Session shared by all request threads, at most MAX_INFLIGHT
// Run() calls at once (a counting semaphore), intra-op threads = NUM_THREADS, inter-op 1.
#pragma once

#include <cstdint>
#include <memory>
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
};

class Engine {
 public:
  /// Loads `onnx_path`; throws BackendError naming the file and ONNX Runtime's message.
  Engine(const std::string& onnx_path, int num_threads, int max_inflight);
  ~Engine();

  /// Runs the graph on `batch` (thread-safe), waiting for an inference slot first.
  EngineOutput run(const Batch& batch);

  /// ONNX Runtime's own version string (OrtGetApiBase()->GetVersionString()).
  static std::string ort_version();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace embbench
