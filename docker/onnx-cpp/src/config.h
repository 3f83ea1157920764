// Server settings from the environment (docker/CONTRACT.md) and model facts from embbench_model.json.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

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
  /// HTTP worker threads. cpp-httplib keeps a keep-alive connection on one worker, so there must
  /// be at least as many as the load generator's connections; they mostly sleep.
  int http_threads = 0;
};

/// Reads the contract's variables through `getenv` (injected for tests); throws ConfigError.
Config config_from_env(const std::function<const char*(const char*)>& getenv);

struct ModelInfo {
  std::string name;
  std::string architecture;
  std::string pooling;
  bool normalize = true;
  std::size_t max_seq_length = 0;
  std::size_t embedding_dim = 0;
};

/// Parses MODEL_DIR/embbench_model.json; throws ConfigError naming the file and field.
ModelInfo load_model_info(const std::string& path);

/// The CPUs this process may run on (its affinity mask), as a cpuset string such as "0-1,4".
std::string affinity_cpuset();

}  // namespace embbench
