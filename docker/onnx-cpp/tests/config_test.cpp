#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "config.h"

using embbench::ConfigError;

namespace {

embbench::Config from(std::map<std::string, std::string> env) {
  return embbench::config_from_env([&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

}  // namespace

TEST_CASE("config_from_env() applies the contract's defaults") {
  const auto c = from({{"MODEL_DIR", "/m"}, {"NUM_THREADS", "2"}});
  CHECK(c.host == "127.0.0.1");
  CHECK(c.port == 8080);
  CHECK(c.max_batch == 64);
  CHECK(c.max_inflight == 1);
  CHECK(c.max_body_bytes == 2097152);
  CHECK(c.load_delay_ms == 0);
  CHECK(c.num_threads == 2);
  CHECK(c.warmup);
}

TEST_CASE("config_from_env() reads WARMUP: 1 or 0, anything else names the variable and the value") {
  CHECK(from({{"MODEL_DIR", "/m"}, {"NUM_THREADS", "1"}, {"WARMUP", "1"}}).warmup);
  CHECK_FALSE(from({{"MODEL_DIR", "/m"}, {"NUM_THREADS", "1"}, {"WARMUP", "0"}}).warmup);
  CHECK(from({{"MODEL_DIR", "/m"}, {"NUM_THREADS", "1"}, {"WARMUP", ""}}).warmup);  // empty = unset, like the others
  for (const char* bad : {"x", "2", "true", "false", " 0", "00", "-1"}) {
    CAPTURE(bad);
    const std::string want = "WARMUP=\"" + std::string(bad) + "\" is not 0 or 1";
    CHECK_THROWS_WITH_AS(from({{"MODEL_DIR", "/m"}, {"NUM_THREADS", "1"}, {"WARMUP", bad}}),
                         doctest::Contains(want.c_str()), ConfigError);
  }
}

TEST_CASE("config_from_env() names a missing or malformed variable") {
  CHECK_THROWS_WITH_AS(from({{"NUM_THREADS", "2"}}), doctest::Contains("MODEL_DIR is required"), ConfigError);
  CHECK_THROWS_WITH_AS(from({{"MODEL_DIR", "/m"}}), doctest::Contains("NUM_THREADS is required"), ConfigError);
  CHECK_THROWS_WITH_AS(from({{"MODEL_DIR", "/m"}, {"NUM_THREADS", "two"}}),
                       doctest::Contains("NUM_THREADS=\"two\" is not an integer"), ConfigError);
  CHECK_THROWS_WITH_AS(from({{"MODEL_DIR", "/m"}, {"NUM_THREADS", "1"}, {"PORT", "70000"}}),
                       doctest::Contains("PORT=70000 is out of range"), ConfigError);
}

TEST_CASE("load_model_info() reads embbench_model.json and names missing fields") {
  const std::string path = "/tmp/embbench_model_test.json";
  {
    std::ofstream(path) << R"({"name": "tiny", "architecture": "bert", "pooling": "mean", "normalize": true,
                              "max_seq_length": 128, "embedding_dim": 64})";
  }
  const auto m = embbench::load_model_info(path);
  CHECK(m.name == "tiny");
  CHECK(m.max_seq_length == 128);
  CHECK(m.embedding_dim == 64);
  { std::ofstream(path) << R"({"name": "tiny", "architecture": "bert", "max_seq_length": 128})"; }
  CHECK_THROWS_WITH_AS(embbench::load_model_info(path), doctest::Contains("\"embedding_dim\" is missing"), ConfigError);
  std::remove(path.c_str());
}

TEST_CASE("affinity_cpuset() lists the CPUs this process may use") {
  const auto s = embbench::affinity_cpuset();
  CHECK_FALSE(s.empty());
  CHECK(s.find_first_not_of("0123456789,-") == std::string::npos);
}

TEST_CASE("config_from_env() reads SERVING, MAX_BATCH_TOKENS and MAX_WAIT_US with the contract's defaults") {
  const auto d = from({{"MODEL_DIR", "/m"}, {"NUM_THREADS", "1"}});
  CHECK_FALSE(d.batched);
  CHECK(d.max_batch_tokens == 16384);
  CHECK(d.max_wait_us == 0);
  CHECK_FALSE(d.intra_op_spinning.has_value());
  CHECK(d.http_threads >= 1024);  // the contract's 1,024 concurrent connections
  const auto b = from({{"MODEL_DIR", "/m"}, {"NUM_THREADS", "1"}, {"SERVING", "batched"}, {"MAX_BATCH_TOKENS", "4096"},
                       {"MAX_WAIT_US", "2000"}, {"ORT_INTRA_OP_SPINNING", "0"}});
  CHECK(b.batched);
  CHECK(b.max_batch_tokens == 4096);
  CHECK(b.max_wait_us == 2000);
  CHECK(b.intra_op_spinning == false);
  CHECK_FALSE(from({{"MODEL_DIR", "/m"}, {"NUM_THREADS", "1"}, {"SERVING", "sequential"}}).batched);
}

TEST_CASE("config_from_env(): a malformed SERVING, MAX_BATCH_TOKENS, MAX_WAIT_US is a configuration error naming it") {
  auto bad = [](const char* name, const char* value, const char* want) {
    CAPTURE(name);
    CAPTURE(value);
    CHECK_THROWS_WITH_AS(from({{"MODEL_DIR", "/m"}, {"NUM_THREADS", "1"}, {name, value}}), doctest::Contains(want),
                         ConfigError);
  };
  bad("SERVING", "Batched", "SERVING=\"Batched\" is not sequential or batched");
  bad("SERVING", "dynamic", "SERVING=\"dynamic\" is not sequential or batched");
  bad("SERVING", "batched ", "SERVING=\"batched \"");
  bad("MAX_BATCH_TOKENS", "0", "MAX_BATCH_TOKENS=0 is out of range");
  bad("MAX_BATCH_TOKENS", "-5", "MAX_BATCH_TOKENS=-5 is out of range");
  bad("MAX_BATCH_TOKENS", "16k", "MAX_BATCH_TOKENS=\"16k\" is not an integer");
  bad("MAX_BATCH_TOKENS", "1.5", "MAX_BATCH_TOKENS=\"1.5\" is not an integer");
  bad("MAX_WAIT_US", "-1", "MAX_WAIT_US=-1 is out of range");
  bad("MAX_WAIT_US", "soon", "MAX_WAIT_US=\"soon\" is not an integer");
  bad("MAX_INFLIGHT", "0", "MAX_INFLIGHT=0 is out of range");
  bad("ORT_INTRA_OP_SPINNING", "yes", "ORT_INTRA_OP_SPINNING=\"yes\" is not 0 or 1");
}

TEST_CASE("load_model_info() takes ort_graph when the file names one, else onnx/model.onnx") {
  const std::string path = "/tmp/embbench_model_graph_test.json";
  const std::string base = R"("name": "tiny", "architecture": "bert", "max_seq_length": 128, "embedding_dim": 64)";
  { std::ofstream(path) << "{" << base << "}"; }
  CHECK(embbench::load_model_info(path).ort_graph == "onnx/model.onnx");
  { std::ofstream(path) << "{" << base << R"(, "ort_graph": "onnx/model_fused.onnx"})"; }
  CHECK(embbench::load_model_info(path).ort_graph == "onnx/model_fused.onnx");
  { std::ofstream(path) << "{" << base << R"(, "ort_graph": null})"; }
  CHECK(embbench::load_model_info(path).ort_graph == "onnx/model.onnx");
  { std::ofstream(path) << "{" << base << R"(, "ort_graph": 3})"; }
  CHECK_THROWS_WITH_AS(embbench::load_model_info(path), doctest::Contains("\"ort_graph\" is not a string"), ConfigError);
  for (const char* g : {"/etc/model.onnx", "../other/model.onnx", "onnx/../../x.onnx", ""}) {
    CAPTURE(g);
    { std::ofstream(path) << "{" << base << R"(, "ort_graph": ")" << g << R"("})"; }
    CHECK_THROWS_WITH_AS(embbench::load_model_info(path), doctest::Contains("is not a path inside the model folder"),
                         ConfigError);
  }
  std::remove(path.c_str());
}

TEST_CASE("load_model_info() reads prompts in the file's order and the Matryoshka sizes") {
  const std::string path = "/tmp/embbench_model_pipeline_test.json";
  const std::string base = R"("name": "tiny-gemma3", "architecture": "gemma3", "max_seq_length": 512,
      "embedding_dim": 64, "attention": "bidirectional", "dense": [])";
  {
    std::ofstream(path) << "{" << base << R"(, "prompts": {"query": "q: ", "document": "d: "},
        "dimensions": {"min": 16, "max": 64, "sizes": [64, 48, 32, 16, 32]}})";
  }
  const auto m = embbench::load_model_info(path);
  REQUIRE(m.prompts.size() == 2);
  CHECK(m.prompts[0] == std::pair<std::string, std::string>{"query", "q: "});
  CHECK(m.prompts[1].first == "document");
  CHECK(m.dimensions.sizes == std::vector<std::size_t>{16, 32, 48, 64});
  CHECK(m.dimensions.describe() == "one of 16, 32, 48, 64");
  CHECK(m.dimensions.allows(48));
  CHECK_FALSE(m.dimensions.allows(40));
  { std::ofstream(path) << "{" << base << R"(, "prompts": {}, "dimensions": {"min": 8, "max": 64}})"; }
  const auto q = embbench::load_model_info(path);
  CHECK(q.prompts.empty());
  CHECK(q.dimensions.sizes.empty());
  CHECK(q.dimensions.describe() == "an integer from 8 to 64");
  CHECK(q.dimensions.allows(8));
  CHECK(q.dimensions.allows(63));
  CHECK_FALSE(q.dimensions.allows(7));
  std::remove(path.c_str());
}

TEST_CASE("load_model_info() defaults an encoder's missing pipeline fields and refuses a decoder's") {
  const std::string path = "/tmp/embbench_model_pipeline_test2.json";
  { std::ofstream(path) << R"({"name": "m", "architecture": "bert", "max_seq_length": 128, "embedding_dim": 64})"; }
  const auto m = embbench::load_model_info(path);
  CHECK(m.prompts.empty());
  CHECK(m.dimensions.describe() == "one of 64");
  { std::ofstream(path) << R"({"name": "m", "architecture": "qwen3", "max_seq_length": 128, "embedding_dim": 64})"; }
  CHECK_THROWS_WITH_AS(embbench::load_model_info(path), doctest::Contains("field \"attention\" is missing: a qwen3 model folder"),
                       ConfigError);
  auto bad = [&](const std::string& fields, const char* want) {
    CAPTURE(fields);
    { std::ofstream(path) << R"({"name": "m", "architecture": "qwen3", "max_seq_length": 128, "embedding_dim": 64,
        "attention": "causal", "dense": [], )" << fields << "}"; }
    CHECK_THROWS_WITH_AS(embbench::load_model_info(path), doctest::Contains(want), ConfigError);
  };
  bad(R"("prompts": {"query": 3}, "dimensions": {"min": 8, "max": 64})", "field \"prompts\" must map prompt names to strings");
  bad(R"("prompts": {}, "dimensions": {"min": 8, "max": 32})", "field \"dimensions.max\" is 32: expected embedding_dim (64)");
  bad(R"("prompts": {}, "dimensions": {"max": 64})", "field \"dimensions\" lacks \"min\"");
  bad(R"("prompts": {}, "dimensions": {"min": 65, "max": 64})", "field \"dimensions.min\" is 65: more than");
  bad(R"("prompts": {}, "dimensions": {"min": 8, "max": 64, "sizes": [4]})", "field \"dimensions.sizes\" holds 4: outside 8..64");
  bad(R"("prompts": {}, "dimensions": {"min": 8, "max": 64, "sizes": []})", "field \"dimensions.sizes\" must be a non-empty list");
  bad(R"("prompts": {}, "dimensions": [64])", "field \"dimensions\" must be an object");
  { std::ofstream(path) << R"({"name": "m", "architecture": "t5", "max_seq_length": 128, "embedding_dim": 64})"; }
  CHECK_THROWS_WITH_AS(embbench::load_model_info(path), doctest::Contains("field \"architecture\" is \"t5\""), ConfigError);
  std::remove(path.c_str());
}
