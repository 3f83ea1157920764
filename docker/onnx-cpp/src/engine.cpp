#include "engine.h"

#include <onnxruntime_cxx_api.h>

#include <dlfcn.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <string_view>

namespace embbench {

Batch pad_rows(const std::vector<const Encoding*>& rows, int64_t pad_id) {
  Batch b;
  b.rows = rows.size();
  for (const auto* e : rows) b.seq = std::max(b.seq, e->ids.size());
  b.input_ids.assign(b.rows * b.seq, pad_id);
  b.attention_mask.assign(b.rows * b.seq, 0);
  for (std::size_t r = 0; r < b.rows; ++r) {
    const auto& ids = rows[r]->ids;
    std::copy(ids.begin(), ids.end(), b.input_ids.begin() + static_cast<std::ptrdiff_t>(r * b.seq));
    std::fill_n(b.attention_mask.begin() + static_cast<std::ptrdiff_t>(r * b.seq), ids.size(), 1);
  }
  return b;
}

Batch pad_batch(const std::vector<Encoding>& encodings, int64_t pad_id) {
  std::vector<const Encoding*> rows;
  rows.reserve(encodings.size());
  for (const auto& e : encodings) rows.push_back(&e);
  return pad_rows(rows, pad_id);
}

std::vector<int> cpus_for_threads(const std::vector<int>& cpus,
                                  const std::function<std::pair<int, int>(int)>& core_of) {
  // Rank each CPU by how many CPUs of its core come before it: rank 0 (one per core) first.
  std::vector<std::pair<int, int>> ranked;  // (rank, cpu), cpus kept in ascending order within a rank
  std::map<std::pair<int, int>, int> seen;
  for (int cpu : cpus) ranked.emplace_back(seen[core_of(cpu)]++, cpu);
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<int> out;
  for (const auto& [rank, cpu] : ranked) out.push_back(cpu);
  return out;
}

std::vector<int> cpus_for_threads() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  auto read_int = [](const std::string& path) -> std::optional<int> {
    std::ifstream in(path);
    int v = 0;
    if (in >> v) return v;
    return std::nullopt;
  };
  return cpus_for_threads(cpus, [&](int cpu) -> std::pair<int, int> {
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    const auto pkg = read_int(dir + "physical_package_id"), core = read_int(dir + "core_id");
    if (!pkg || !core) return {-1, cpu};  // unknown topology: a core of its own
    return {*pkg, *core};
  });
}

std::optional<int> inference_thread_cpu(const std::vector<int>& ordered, int max_inflight) {
  if (max_inflight != 1 || ordered.empty()) return std::nullopt;
  return ordered.front();
}

PinThisThread::PinThisThread(std::optional<int> cpu) {
  if (!cpu || *cpu < 0 || *cpu >= CPU_SETSIZE) return;
  if (sched_getaffinity(0, sizeof(saved_), &saved_) != 0) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(*cpu, &one);
  pinned_ = sched_setaffinity(0, sizeof(one), &one) == 0;
}

PinThisThread::~PinThisThread() {
  if (pinned_) sched_setaffinity(0, sizeof(saved_), &saved_);
}

std::string intra_op_affinities(const std::vector<int>& ordered, int num_threads) {
  std::string out;
  if (ordered.empty()) return out;
  for (int k = 1; k < num_threads; ++k) {
    if (!out.empty()) out += ';';
    out += std::to_string(ordered[static_cast<std::size_t>(k) % ordered.size()] + 1);
  }
  return out;
}

namespace {

// Debian's libonnxruntime and libonnx both register the ONNX operator schemas, so the first session
// prints ~570 "Schema error: Trying to register schema ... already registered" lines. They are
// harmless; this runs `fn` with stderr captured, drops exactly those lines and passes on the rest.
template <class Fn>
void without_duplicate_schema_noise(Fn&& fn) {
  std::fflush(stderr);
  std::FILE* tmp = std::tmpfile();
  const int saved = tmp ? dup(2) : -1;
  if (saved < 0) {
    if (tmp) std::fclose(tmp);
    fn();
    return;
  }
  dup2(fileno(tmp), 2);
  auto restore = [&] {
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
    std::rewind(tmp);
    char line[4096];
    std::size_t dropped = 0;
    constexpr std::string_view noise = "Schema error: Trying to register schema with name";
    while (std::fgets(line, sizeof(line), tmp)) {
      const std::string_view l(line);
      if (l.substr(0, noise.size()) == noise) ++dropped;
      else if (l != "\n") std::fputs(line, stderr);
    }
    std::fclose(tmp);
    if (dropped) {
      std::fprintf(stderr, "embbench-onnx-cpp: dropped %zu duplicate ONNX schema registration messages "
                           "(Debian's libonnx and libonnxruntime both register the schemas)\n", dropped);
    }
  };
  try {
    fn();
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

}  // namespace

struct Runtime::Impl {
  Ort::Env env{nullptr};
};

Runtime::Runtime() : impl_(std::make_unique<Impl>()) {
  try {
    without_duplicate_schema_noise([&] { impl_->env = Ort::Env(ORT_LOGGING_LEVEL_WARNING, "embbench"); });
  } catch (const Ort::Exception& e) {
    throw BackendError(std::string("ONNX Runtime cannot create its environment: ") + e.what());
  }
}

Runtime::~Runtime() = default;

struct Engine::Impl {
  std::shared_ptr<const Runtime> runtime;  // outlives the session
  EngineOptions opts;
  Ort::Session session{nullptr};
  Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::optional<std::size_t> output_dim;
  Impl(std::shared_ptr<const Runtime> rt, EngineOptions o) : runtime(std::move(rt)), opts(std::move(o)) {}
};

Engine::Engine(const EngineOptions& opts) : Engine(std::make_shared<const Runtime>(), opts) {}

Engine::Engine(std::shared_ptr<const Runtime> runtime, const EngineOptions& options)
    : impl_(std::make_unique<Impl>(std::move(runtime), options)) {
  const std::string& onnx_path = impl_->opts.model_path;
  if (impl_->opts.num_threads < 1) throw BackendError("intra-op threads must be at least 1");
  try {
    Ort::SessionOptions opts;
    // The contract's session options. ONNX Runtime would size its pool from the host's CPUs, not the
    // container's cpuset: NUM_THREADS is the only source.
    opts.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
    opts.SetExecutionMode(ExecutionMode::ORT_SEQUENTIAL);
    opts.SetIntraOpNumThreads(impl_->opts.num_threads);
    opts.SetInterOpNumThreads(1);
    opts.EnableCpuMemArena();
    opts.AddConfigEntry("session.intra_op.allow_spinning", impl_->opts.intra_op_spinning ? "1" : "0");
    // No inter-op pool runs in sequential execution; set alike anyway, as the other frontends do.
    opts.AddConfigEntry("session.inter_op.allow_spinning", impl_->opts.intra_op_spinning ? "1" : "0");
    if (!impl_->opts.intra_op_affinities.empty()) {
      opts.AddConfigEntry("session.intra_op_thread_affinities", impl_->opts.intra_op_affinities.c_str());
    }
    without_duplicate_schema_noise(
        [&] { impl_->session = Ort::Session(impl_->runtime->impl_->env, onnx_path.c_str(), opts); });
  } catch (const Ort::Exception& e) {
    throw BackendError(onnx_path + ": ONNX Runtime cannot load the model: " + e.what());
  }
  // The contract's graph: inputs input_ids and attention_mask, output sentence_embedding.
  auto names = [](std::vector<Ort::AllocatedStringPtr> v) {
    std::vector<std::string> out;
    for (auto& p : v) out.emplace_back(p.get());
    return out;
  };
  Ort::AllocatorWithDefaultOptions alloc;
  std::vector<Ort::AllocatedStringPtr> in, out;
  for (std::size_t i = 0; i < impl_->session.GetInputCount(); ++i) in.push_back(impl_->session.GetInputNameAllocated(i, alloc));
  for (std::size_t i = 0; i < impl_->session.GetOutputCount(); ++i) out.push_back(impl_->session.GetOutputNameAllocated(i, alloc));
  const auto ins = names(std::move(in)), outs = names(std::move(out));
  for (const char* want : {"input_ids", "attention_mask"}) {
    if (std::find(ins.begin(), ins.end(), want) == ins.end()) {
      throw BackendError(onnx_path + ": the graph has no input \"" + want + "\"");
    }
  }
  const auto out_it = std::find(outs.begin(), outs.end(), "sentence_embedding");
  if (out_it == outs.end()) {
    throw BackendError(onnx_path + ": the graph has no output \"sentence_embedding\"");
  }
  const auto out_shape = impl_->session.GetOutputTypeInfo(static_cast<std::size_t>(out_it - outs.begin()))
                             .GetTensorTypeAndShapeInfo()
                             .GetShape();
  if (out_shape.size() == 2 && out_shape[1] > 0) impl_->output_dim = static_cast<std::size_t>(out_shape[1]);
  if (ins.size() != 2) {
    throw BackendError(onnx_path + ": the graph has " + std::to_string(ins.size()) +
                       " inputs, expected exactly input_ids and attention_mask");
  }
}

Engine::~Engine() = default;

EngineOutput Engine::run(const Batch& batch) {
  const std::array<int64_t, 2> shape{static_cast<int64_t>(batch.rows), static_cast<int64_t>(batch.seq)};
  const char* in_names[] = {"input_ids", "attention_mask"};
  const char* out_names[] = {"sentence_embedding"};
  std::vector<Ort::Value> inputs;
  inputs.push_back(Ort::Value::CreateTensor<int64_t>(impl_->cpu, const_cast<int64_t*>(batch.input_ids.data()),
                                                     batch.input_ids.size(), shape.data(), shape.size()));
  inputs.push_back(Ort::Value::CreateTensor<int64_t>(impl_->cpu, const_cast<int64_t*>(batch.attention_mask.data()),
                                                     batch.attention_mask.size(), shape.data(), shape.size()));
  std::vector<Ort::Value> outputs;
  EngineOutput res;
  res.run_start = std::chrono::steady_clock::now();
  try {
    outputs = impl_->session.Run(Ort::RunOptions{nullptr}, in_names, inputs.data(), inputs.size(), out_names, 1);
  } catch (const Ort::Exception& e) {
    throw BackendError(std::string("ONNX Runtime Run failed: ") + e.what());
  }
  res.run_end = std::chrono::steady_clock::now();

  const auto info = outputs[0].GetTensorTypeAndShapeInfo();
  const auto dims = info.GetShape();
  if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || dims.size() != 2 ||
      dims[0] != static_cast<int64_t>(batch.rows)) {
    std::string got;
    for (auto d : dims) got += (got.empty() ? "" : ",") + std::to_string(d);
    throw BackendError("sentence_embedding has shape [" + got + "], expected float32 [" +
                       std::to_string(batch.rows) + ", dim]");
  }
  res.rows = static_cast<std::size_t>(dims[0]);
  res.dim = static_cast<std::size_t>(dims[1]);
  const float* p = outputs[0].GetTensorData<float>();
  res.embeddings.assign(p, p + res.rows * res.dim);
  return res;
}

std::optional<std::size_t> Engine::output_dim() const { return impl_->output_dim; }

std::string Engine::ort_version() { return OrtGetApiBase()->GetVersionString(); }

std::string Engine::ort_build_info() {
  const char* s = Ort::GetApi().GetBuildInfoString();
  return s ? s : "";
}

std::string Engine::ort_library_path() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&OrtGetApiBase), &info) && info.dli_fname) {
    char resolved[PATH_MAX];
    if (realpath(info.dli_fname, resolved)) return resolved;
    return info.dli_fname;
  }
  return "";
}

nlohmann::json Engine::facts() const { return session_facts(impl_->opts); }

const EngineOptions& Engine::options() const { return impl_->opts; }

nlohmann::json session_facts(const EngineOptions& o) {
  return {
      {"model_file", o.model_file},
      {"onnxruntime_version", Engine::ort_version()},
      {"onnxruntime_build", Engine::ort_build_info()},
      {"onnxruntime_library", Engine::ort_library_path()},
      {"execution_provider", "CPUExecutionProvider"},
      {"graph_optimization_level", "ORT_ENABLE_ALL"},
      {"execution_mode", "sequential"},
      {"intra_op_threads", o.num_threads},
      {"inter_op_threads", 1},
      {"cpu_mem_arena", true},
      {"intra_op_spinning", o.intra_op_spinning},
      {"intra_op_thread_affinities", o.intra_op_affinities.empty() ? nlohmann::json(nullptr)
                                                                    : nlohmann::json(o.intra_op_affinities)},
      {"inference_thread_cpu", o.inference_thread_cpu ? nlohmann::json(*o.inference_thread_cpu) : nlohmann::json(nullptr)},
  };
}

}  // namespace embbench
