#include "engine.h"

#include <onnxruntime_cxx_api.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <semaphore>
#include <string_view>

namespace embbench {

Batch pad_batch(const std::vector<Encoding>& encodings, int64_t pad_id) {
  Batch b;
  b.rows = encodings.size();
  for (const auto& e : encodings) b.seq = std::max(b.seq, e.ids.size());
  b.input_ids.assign(b.rows * b.seq, pad_id);
  b.attention_mask.assign(b.rows * b.seq, 0);
  for (std::size_t r = 0; r < b.rows; ++r) {
    const auto& ids = encodings[r].ids;
    std::copy(ids.begin(), ids.end(), b.input_ids.begin() + static_cast<std::ptrdiff_t>(r * b.seq));
    std::fill_n(b.attention_mask.begin() + static_cast<std::ptrdiff_t>(r * b.seq), ids.size(), 1);
  }
  return b;
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
  Ort::Session session{nullptr};
  Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::counting_semaphore<> slots;
  std::optional<std::size_t> output_dim;
  Impl(std::shared_ptr<const Runtime> rt, int max_inflight) : runtime(std::move(rt)), slots(max_inflight) {}
};

Engine::Engine(const std::string& onnx_path, int num_threads, int max_inflight)
    : Engine(std::make_shared<const Runtime>(), onnx_path, num_threads, max_inflight) {}

Engine::Engine(std::shared_ptr<const Runtime> runtime, const std::string& onnx_path, int num_threads,
               int max_inflight)
    : impl_(std::make_unique<Impl>(std::move(runtime), max_inflight)) {
  try {
    Ort::SessionOptions opts;
    // ONNX Runtime would size its pool from the host's CPUs, not the container's cpuset.
    opts.SetIntraOpNumThreads(num_threads);
    opts.SetInterOpNumThreads(1);
    opts.SetExecutionMode(ExecutionMode::ORT_SEQUENTIAL);
    opts.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
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
  impl_->slots.acquire();
  res.slot_acquired = std::chrono::steady_clock::now();
  try {
    outputs = impl_->session.Run(Ort::RunOptions{nullptr}, in_names, inputs.data(), inputs.size(), out_names, 1);
  } catch (const Ort::Exception& e) {
    impl_->slots.release();
    throw BackendError(std::string("ONNX Runtime Run failed: ") + e.what());
  }
  res.output_ready = std::chrono::steady_clock::now();
  impl_->slots.release();

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

}  // namespace embbench
