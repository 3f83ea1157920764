// The ONNX Runtime session: one Ort::Session shared by every inference thread, created with the
// contract's session options (docker/CONTRACT.md, "ONNX Runtime: one graph, one library, one set of
// session options").
#pragma once

#include <sched.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <functional>
#include <nlohmann/json.hpp>
#include <utility>
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
/// The same over rows owned elsewhere (the batcher joins several requests' rows).
Batch pad_rows(const std::vector<const Encoding*>& rows, int64_t pad_id);

struct EngineOutput {
  std::vector<float> embeddings;  // [rows, dim]
  std::size_t rows = 0;
  std::size_t dim = 0;
  /// When Session::Run was called and when it returned (the contract's `inference` phase).
  std::chrono::steady_clock::time_point run_start{}, run_end{};
};

/// The spinning policy of ONNX Runtime's intra-op threads (session.intra_op.allow_spinning), the same in
/// the three ONNX Runtime frontends (docker/CONTRACT.md): off, chosen by measurement (README.md, "Spinning").
inline constexpr bool kDefaultIntraOpSpinning = false;

/// The session options the contract fixes, and the graph to load.
struct EngineOptions {
  std::string model_path;                      // the file to load
  std::string model_file;                      // as /info.build.model_file reports it (relative to MODEL_DIR)
  int num_threads = 1;                         // intra_op_num_threads (NUM_THREADS)
  bool intra_op_spinning = kDefaultIntraOpSpinning;
  std::string intra_op_affinities;             // session.intra_op_thread_affinities; empty: not set
  std::optional<int> inference_thread_cpu;     // where the calling thread runs (inference_thread_cpu())
};

/// The CPUs intra-op threads are pinned to, in order: the first CPU of every core, then the cores'
/// other CPUs (hyperthread siblings), so NUM_THREADS = physical cores puts one thread on each core.
/// `cpus` is the affinity mask's CPUs; `core_of(cpu)` names a CPU's core (package, core id).
std::vector<int> cpus_for_threads(const std::vector<int>& cpus,
                                  const std::function<std::pair<int, int>(int)>& core_of);
/// The same for this process: its affinity mask and /sys's topology (a CPU whose topology cannot be
/// read counts as a core of its own).
std::vector<int> cpus_for_threads();

/// session.intra_op_thread_affinities for `num_threads` intra-op threads. The calling thread (the HTTP or
/// batch thread that calls Run) is the first of them and ONNX Runtime never pins it, so it stands for
/// ordered[0]; extra thread k (1..n-1) is pinned to ordered[k % size], one CPU each. ONNX Runtime numbers
/// processors from 1, so CPU c is written c+1. Empty for one thread (no extra threads) or no CPUs.
std::string intra_op_affinities(const std::vector<int>& ordered, int num_threads);

/// The facts of a session made with `opts` (Engine::facts()), known before it is created.
nlohmann::json session_facts(const EngineOptions& opts);

/// The CPU the thread that calls Run (the intra-op pool's first thread) is pinned to while it runs an
/// inference: ordered[0] with MAX_INFLIGHT = 1, none otherwise (several inference threads share the
/// session's pool, so they keep the whole cpuset).
std::optional<int> inference_thread_cpu(const std::vector<int>& ordered, int max_inflight);

/// Pins the calling thread alone to `cpu` for its lifetime, then gives it back the CPUs it had; does
/// nothing without a CPU or when the kernel refuses.
class PinThisThread {
 public:
  explicit PinThisThread(std::optional<int> cpu);
  ~PinThisThread();
  PinThisThread(const PinThisThread&) = delete;
  PinThisThread& operator=(const PinThisThread&) = delete;
  bool pinned() const { return pinned_; }

 private:
  bool pinned_ = false;
  cpu_set_t saved_{};
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

/// One Ort::Session shared by every thread that runs inference. Admission (FIFO, MAX_INFLIGHT) is the
/// caller's: run() itself is thread-safe and never waits.
class Engine {
 public:
  /// Loads opts.model_path in `runtime`; throws BackendError naming the file and ONNX Runtime's message.
  Engine(std::shared_ptr<const Runtime> runtime, const EngineOptions& opts);
  /// The same in a runtime of its own.
  explicit Engine(const EngineOptions& opts);
  ~Engine();

  /// Runs the graph on `batch`.
  EngineOutput run(const Batch& batch);

  /// sentence_embedding's second dimension when the graph fixes it, nullopt when it is symbolic.
  std::optional<std::size_t> output_dim() const;

  /// The session's facts for /info.build and --bench-run: graph file, session options, library.
  nlohmann::json facts() const;
  const EngineOptions& options() const;

  /// ONNX Runtime's own version string (OrtGetApiBase()->GetVersionString()).
  static std::string ort_version();
  /// ONNX Runtime's build description (GetBuildInfoString()), e.g. git commit and build type.
  static std::string ort_build_info();
  /// The path of the libonnxruntime shared object this process runs.
  static std::string ort_library_path();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace embbench
