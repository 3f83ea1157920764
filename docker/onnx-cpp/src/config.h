// Server settings from the environment (docker/CONTRACT.md) and model facts from embbench_model.json.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace embbench {

/// A setting that is missing or malformed: the message names the variable or file and field.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Config {
  std::string model_dir;
  std::string host = "127.0.0.1";
  int port = 8080;
  int num_threads = 0;
  int max_batch = 64;
  int max_inflight = 1;
  std::size_t max_body_bytes = 2097152;
  int load_delay_ms = 0;
  /// WARMUP: run one warm-up inference before /health turns 200 ("1", the default) or not ("0").
  bool warmup = true;
  /// SERVING: "sequential" (each request is one inference) or "batched" (the contract's batcher).
  bool batched = false;
  /// MAX_BATCH_TOKENS (batched): most padded tokens (rows x longest row) in one inference.
  std::size_t max_batch_tokens = 16384;
  /// MAX_WAIT_US (batched): how long a batch may wait for more requests after its oldest one arrived.
  std::int64_t max_wait_us = 0;
  /// HTTP_THREADS: the most HTTP threads. cpp-httplib serves a keep-alive connection on one thread for
  /// its whole life, so this is the most connections served at once; threads are created as
  /// connections arrive and end after 30 s idle.
  int http_threads = 4096;
  /// ORT_INTRA_OP_SPINNING: session.intra_op.allow_spinning, default the three ONNX Runtime frontends'
  /// shared policy; the variable exists to measure the alternative.
  std::optional<bool> intra_op_spinning;
};

/// Reads the contract's variables through `getenv` (injected for tests); throws ConfigError.
Config config_from_env(const std::function<const char*(const char*)>& getenv);

/// The output sizes a model supports (Matryoshka): `sizes`, or every size from `min` to `max` when
/// `sizes` is empty; `max` is embedding_dim.
struct Dimensions {
  std::size_t min = 0, max = 0;
  std::vector<std::size_t> sizes;  // ascending, no repeats
  bool allows(std::size_t n) const;
  /// The allowed sizes as a 422 names them: "one of 16, 32" or "an integer from 8 to 64".
  std::string describe() const;
};

struct ModelInfo {
  std::string name;
  std::string architecture;
  std::string pooling;
  bool normalize = true;
  std::size_t max_seq_length = 0;
  std::size_t embedding_dim = 0;
  /// The graph ONNX Runtime loads, relative to MODEL_DIR: "ort_graph" when the file names one (the
  /// optimised graph convert writes), else onnx/model.onnx.
  std::string ort_graph = "onnx/model.onnx";
  /// Prompt name -> text prepended to each input before tokenization, in the file's order.
  std::vector<std::pair<std::string, std::string>> prompts;
  /// The sizes `dimensions` may ask for; [embedding_dim] for a folder from before the field.
  Dimensions dimensions;
};

/// Parses MODEL_DIR/embbench_model.json; throws ConfigError naming the file and field.
ModelInfo load_model_info(const std::string& path);

/// The CPUs this process may run on (its affinity mask), as a cpuset string such as "0-1,4".
std::string affinity_cpuset();

}  // namespace embbench
