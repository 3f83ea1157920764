// The ONNX Runtime engine on the toy graph make_fixtures.py writes (masked sum of a fixed embedding
// table, L2-normalised), against numpy's answer; also concurrent use of the shared session.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine.h"

namespace {

int failures = 0, passes = 0;

void check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok   " : "FAIL ") << what << "\n";
  ++(ok ? passes : failures);
}

}  // namespace

int main() {
  const char* fixtures = std::getenv("EMBBENCH_FIXTURES");
  if (!fixtures) {
    std::cerr << "EMBBENCH_FIXTURES is not set: the folder make_fixtures.py wrote\n";
    return 2;
  }
  const std::string dir = std::string(fixtures) + "/toy";
  std::ifstream in(dir + "/expected.json");
  const auto expected = nlohmann::json::parse(in);

  std::vector<embbench::Encoding> encs;
  for (const auto& row : expected.at("ids")) encs.push_back({row.get<std::vector<int64_t>>(), 0});
  const auto batch = embbench::pad_batch(encs, 0);
  check(batch.seq == 4 && batch.attention_mask == std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 0},
        "pad_batch() pads right to the longest row with a 0 mask");

  embbench::EngineOptions opts;
  opts.model_path = dir + "/onnx/model.onnx";
  opts.model_file = "onnx/model.onnx";
  embbench::Engine engine(opts);
  const auto out = engine.run(batch);
  const auto want = expected.at("embeddings").get<std::vector<std::vector<float>>>();
  double max_diff = 0;
  for (std::size_t r = 0; r < out.rows; ++r) {
    for (std::size_t d = 0; d < out.dim; ++d) max_diff = std::max(max_diff, std::abs(double(out.embeddings[r * out.dim + d]) - want[r][d]));
  }
  check(out.rows == 2 && out.dim == want[0].size() && max_diff <= 1e-6,
        "run() matches numpy (max |diff| " + std::to_string(max_diff) + ")");

  // Eight threads share the session at once; every answer must be the same.
  std::vector<std::thread> threads;
  std::vector<embbench::EngineOutput> outs(8);
  for (int i = 0; i < 8; ++i) threads.emplace_back([&, i] { outs[i] = engine.run(batch); });
  for (auto& t : threads) t.join();
  bool same = true;
  for (const auto& o : outs) same = same && o.embeddings == out.embeddings;
  check(same, "concurrent run() calls on one session agree");

  // The contract's session options with two intra-op threads, the extra one pinned (when this process
  // may use two CPUs): the session loads, answers the same, and reports its settings.
  const auto cpus = embbench::cpus_for_threads();
  embbench::EngineOptions two = opts;
  two.num_threads = 2;
  two.intra_op_spinning = false;
  two.intra_op_affinities = embbench::intra_op_affinities(cpus, 2);
  embbench::Engine pinned(two);
  const auto out2 = pinned.run(batch);
  check(out2.embeddings == out.embeddings, "a 2-thread session with affinities \"" + two.intra_op_affinities +
                                               "\" answers the same rows");
  const auto facts = pinned.facts();
  check(facts["model_file"] == "onnx/model.onnx" && facts["intra_op_threads"] == 2 && facts["inter_op_threads"] == 1 &&
            facts["intra_op_spinning"] == false && facts["graph_optimization_level"] == "ORT_ENABLE_ALL" &&
            facts["execution_mode"] == "sequential" && facts["cpu_mem_arena"] == true &&
            facts["intra_op_thread_affinities"] == std::to_string(cpus.size() > 1 ? cpus[1] + 1 : cpus[0] + 1) &&
            facts["onnxruntime_version"] == embbench::Engine::ort_version() &&
            !facts["onnxruntime_build"].get<std::string>().empty() &&
            facts["onnxruntime_library"].get<std::string>().find("libonnxruntime") != std::string::npos,
        "facts() reports the session: " + facts.dump());
  check(out.run_start <= out.run_end, "run() stamps the runtime call");

  check(!embbench::Engine::ort_version().empty() && embbench::Engine::ort_version().rfind("1.21", 0) == 0,
        "ort_version() is " + embbench::Engine::ort_version());

  try {
    embbench::EngineOptions bad;
    bad.model_path = "/nonexistent/model.onnx";
    embbench::Engine missing(bad);
    check(false, "a missing model file throws");
  } catch (const embbench::BackendError& e) {
    check(std::string(e.what()).find("/nonexistent/model.onnx") != std::string::npos, "a missing model file throws naming it");
  }
  std::cout << passes << " passed, " << failures << " failed\n";
  return failures == 0 ? 0 : 1;
}
