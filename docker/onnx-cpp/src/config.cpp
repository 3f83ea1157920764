#include "config.h"

#include <sched.h>

#include <charconv>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>

namespace embbench {

namespace {

long long parse_int(const char* name, const char* raw, long long lo, long long hi) {
  const std::string_view text(raw);
  long long v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    throw ConfigError(std::string(name) + "=\"" + raw + "\" is not an integer");
  }
  if (v < lo || v > hi) {
    throw ConfigError(std::string(name) + "=" + raw + " is out of range: expected " + std::to_string(lo) + ".." +
                      std::to_string(hi));
  }
  return v;
}

}  // namespace

Config config_from_env(const std::function<const char*(const char*)>& getenv) {
  Config c;
  auto get = [&](const char* name) -> const char* {
    const char* v = getenv(name);
    return (v && *v) ? v : nullptr;
  };
  const char* dir = get("MODEL_DIR");
  if (!dir) throw ConfigError("MODEL_DIR is required: the model folder written by embbench convert");
  c.model_dir = dir;
  if (const char* v = get("HOST")) c.host = v;
  if (const char* v = get("PORT")) c.port = static_cast<int>(parse_int("PORT", v, 1, 65535));
  const char* threads = get("NUM_THREADS");
  if (!threads) throw ConfigError("NUM_THREADS is required: the inference thread pool size");
  c.num_threads = static_cast<int>(parse_int("NUM_THREADS", threads, 1, 1024));
  if (const char* v = get("MAX_BATCH")) c.max_batch = static_cast<int>(parse_int("MAX_BATCH", v, 1, 1 << 20));
  if (const char* v = get("MAX_INFLIGHT")) c.max_inflight = static_cast<int>(parse_int("MAX_INFLIGHT", v, 1, 4096));
  if (const char* v = get("MAX_BODY_BYTES")) {
    c.max_body_bytes = static_cast<std::size_t>(parse_int("MAX_BODY_BYTES", v, 1, std::numeric_limits<int>::max()));
  }
  if (const char* v = get("LOAD_DELAY_MS")) c.load_delay_ms = static_cast<int>(parse_int("LOAD_DELAY_MS", v, 0, 3600000));
  if (const char* v = get("WARMUP")) {
    const std::string_view w(v);
    if (w != "0" && w != "1") throw ConfigError(std::string("WARMUP=\"") + v + "\" is not 0 or 1");
    c.warmup = w == "1";
  }
  if (const char* v = get("SERVING")) {
    const std::string_view s(v);
    if (s != "sequential" && s != "batched") {
      throw ConfigError(std::string("SERVING=\"") + v + "\" is not sequential or batched");
    }
    c.batched = s == "batched";
  }
  if (const char* v = get("MAX_BATCH_TOKENS")) {
    c.max_batch_tokens = static_cast<std::size_t>(parse_int("MAX_BATCH_TOKENS", v, 1, 1LL << 40));
  }
  if (const char* v = get("MAX_WAIT_US")) c.max_wait_us = parse_int("MAX_WAIT_US", v, 0, 3600LL * 1000000);
  if (const char* v = get("HTTP_THREADS")) c.http_threads = static_cast<int>(parse_int("HTTP_THREADS", v, 1, 65536));
  if (const char* v = get("ORT_INTRA_OP_SPINNING")) {
    const std::string_view w(v);
    if (w != "0" && w != "1") throw ConfigError(std::string("ORT_INTRA_OP_SPINNING=\"") + v + "\" is not 0 or 1");
    c.intra_op_spinning = w == "1";
  }
  return c;
}

ModelInfo load_model_info(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the model facts file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(path + ": not valid JSON: " + e.what());
  }
  ModelInfo m;
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!j.is_object() || !j.contains(key)) throw ConfigError(path + ": field \"" + std::string(key) + "\" is missing");
    return j[key];
  };
  try {
    m.name = field("name").get<std::string>();
    m.architecture = field("architecture").get<std::string>();
    m.pooling = j.value("pooling", std::string());
    m.normalize = j.value("normalize", true);
    m.max_seq_length = field("max_seq_length").get<std::size_t>();
    m.embedding_dim = field("embedding_dim").get<std::size_t>();
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(path + ": a field has the wrong type: " + e.what());
  }
  if (j.contains("ort_graph") && !j["ort_graph"].is_null()) {
    if (!j["ort_graph"].is_string()) throw ConfigError(path + ": \"ort_graph\" is not a string");
    const std::string g = j["ort_graph"].get<std::string>();
    // A path inside the model folder: relative, no "..".
    if (g.empty() || g.front() == '/' || ("/" + g + "/").find("/../") != std::string::npos) {
      throw ConfigError(path + ": \"ort_graph\" \"" + g + "\" is not a path inside the model folder");
    }
    m.ort_graph = g;
  }
  if (m.max_seq_length < 2) throw ConfigError(path + ": max_seq_length " + std::to_string(m.max_seq_length) + " is below 2");
  if (m.embedding_dim == 0) throw ConfigError(path + ": embedding_dim is 0");
  return m;
}

std::string affinity_cpuset() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return "";
  std::string out;
  for (int cpu = 0; cpu < CPU_SETSIZE;) {
    if (!CPU_ISSET(cpu, &set)) {
      ++cpu;
      continue;
    }
    int last = cpu;
    while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) ++last;
    if (!out.empty()) out += ',';
    out += std::to_string(cpu);
    if (last > cpu) out += '-' + std::to_string(last);
    cpu = last + 1;
  }
  return out;
}

}  // namespace embbench
