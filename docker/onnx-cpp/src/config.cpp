#include "config.h"

#include <sched.h>

#include <algorithm>
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

bool Dimensions::allows(std::size_t n) const {
  if (sizes.empty()) return n >= min && n <= max;
  return std::find(sizes.begin(), sizes.end(), n) != sizes.end();
}

std::string Dimensions::describe() const {
  if (sizes.empty()) return "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  std::string out = "one of ";
  for (std::size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out;
}

namespace {

using ordered_json = nlohmann::ordered_json;

// The architectures whose folders must state their pipeline: served without it they would be
// silently wrong (as the Python server's config: docker/python/embbench_server/config.py).
constexpr const char* kArchitectures[] = {"xlm-roberta", "bert", "qwen3", "gemma3"};
constexpr const char* kDecoders[] = {"qwen3", "gemma3"};
constexpr const char* kPipelineFields[] = {"attention", "dense", "prompts", "dimensions"};

std::size_t positive_int(const std::string& path, const std::string& name, const ordered_json& v) {
  if (!v.is_number_integer() || v.get<long long>() < 1) {
    throw ConfigError(path + ": field \"" + name + "\" must be an integer >= 1: got " + v.dump());
  }
  return v.get<std::size_t>();
}

std::vector<std::pair<std::string, std::string>> parse_prompts(const std::string& path, const ordered_json& v) {
  std::vector<std::pair<std::string, std::string>> out;
  bool ok = v.is_object();
  if (ok) {
    for (const auto& [name, text] : v.items()) {
      if (name.empty() || !text.is_string()) {
        ok = false;
        break;
      }
      out.emplace_back(name, text.get<std::string>());
    }
  }
  if (!ok) throw ConfigError(path + ": field \"prompts\" must map prompt names to strings: got " + v.dump());
  return out;
}

Dimensions parse_dimensions(const std::string& path, const ordered_json& v, std::size_t embedding_dim) {
  if (!v.is_object()) throw ConfigError(path + ": field \"dimensions\" must be an object {min, max, sizes}: got " + v.dump());
  for (const char* key : {"min", "max"}) {
    if (!v.contains(key)) throw ConfigError(path + ": field \"dimensions\" lacks \"" + key + "\"");
  }
  Dimensions d;
  d.min = positive_int(path, "dimensions.min", v["min"]);
  d.max = positive_int(path, "dimensions.max", v["max"]);
  if (d.max != embedding_dim) {
    throw ConfigError(path + ": field \"dimensions.max\" is " + std::to_string(d.max) + ": expected embedding_dim (" +
                      std::to_string(embedding_dim) + ")");
  }
  if (d.min > d.max) {
    throw ConfigError(path + ": field \"dimensions.min\" is " + std::to_string(d.min) + ": more than dimensions.max (" +
                      std::to_string(d.max) + ")");
  }
  const auto sizes = v.find("sizes");
  if (sizes == v.end() || sizes->is_null()) return d;
  if (!sizes->is_array() || sizes->empty() ||
      !std::all_of(sizes->begin(), sizes->end(), [](const ordered_json& n) { return n.is_number_integer(); })) {
    throw ConfigError(path + ": field \"dimensions.sizes\" must be a non-empty list of integers: got " + sizes->dump());
  }
  for (const auto& n : *sizes) {
    const long long k = n.get<long long>();
    if (k < static_cast<long long>(d.min) || k > static_cast<long long>(d.max)) {
      throw ConfigError(path + ": field \"dimensions.sizes\" holds " + n.dump() + ": outside " + std::to_string(d.min) +
                        ".." + std::to_string(d.max));
    }
    d.sizes.push_back(static_cast<std::size_t>(k));
  }
  std::sort(d.sizes.begin(), d.sizes.end());
  d.sizes.erase(std::unique(d.sizes.begin(), d.sizes.end()), d.sizes.end());
  return d;
}

}  // namespace

ModelInfo load_model_info(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the model facts file");
  ordered_json j;
  try {
    j = ordered_json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(path + ": not valid JSON: " + e.what());
  }
  ModelInfo m;
  auto field = [&](const char* key) -> const ordered_json& {
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
  const auto known = [](const auto& list, const std::string& v) {
    return std::find(std::begin(list), std::end(list), v) != std::end(list);
  };
  if (!known(kArchitectures, m.architecture)) {
    throw ConfigError(path + ": field \"architecture\" is \"" + m.architecture +
                      "\": expected one of xlm-roberta, bert, qwen3, gemma3");
  }
  if (known(kDecoders, m.architecture)) {
    for (const char* f : kPipelineFields) {
      if (!j.contains(f)) {
        throw ConfigError(path + ": field \"" + f + "\" is missing: a " + m.architecture +
                          " model folder must state its whole pipeline (attention, dense, prompts, dimensions); "
                          "it was written by an older `embbench convert`: convert it again");
      }
    }
  }
  if (j.contains("attention")) {
    const auto& a = j["attention"];
    if (!a.is_string() || (a != "bidirectional" && a != "causal")) {
      throw ConfigError(path + ": field \"attention\" must be one of bidirectional, causal: got " + a.dump());
    }
  }
  if (j.contains("dense") && !j["dense"].is_array()) {
    throw ConfigError(path + ": field \"dense\" must be a list of layers: got " + j["dense"].dump());
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
  if (j.contains("prompts")) m.prompts = parse_prompts(path, j["prompts"]);
  if (j.contains("dimensions")) {
    m.dimensions = parse_dimensions(path, j["dimensions"], m.embedding_dim);
  } else {
    m.dimensions = {m.embedding_dim, m.embedding_dim, {m.embedding_dim}};
  }
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
