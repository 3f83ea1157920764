// embbench-onnx-cpp: the embbench HTTP contract (docker/CONTRACT.md) served by ONNX Runtime's C++ API.
// The port is bound first; the model loads on a background thread while /health answers 503.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "config.h"
#include "embed_request.h"
#include "engine.h"
#include "metrics.h"
#include "process_info.h"
#include "tokenizer.h"

namespace {

using embbench::ApiError;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::uint64_t ns_between(Clock::time_point from, Clock::time_point to) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count();
  return ns > 0 ? static_cast<std::uint64_t>(ns) : 0;
}

std::string ms_header(std::uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", static_cast<double>(ns) / 1e6);
  return buf;
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(embbench::error_json(e), "application/json");
}

struct Server {
  embbench::Config cfg;
  embbench::ModelInfo model;
  std::string cpus;
  // Read first, so process_start is known from the start.
  embbench::Startup startup{embbench::process_start_monotonic()};
  std::shared_ptr<const embbench::Runtime> runtime;  // the Ort::Env, created before the port is bound
  // Set once by the loader thread before `ready` flips; read-only afterwards.
  std::unique_ptr<embbench::Tokenizer> tokenizer;
  std::unique_ptr<embbench::Engine> engine;
  std::atomic<bool> ready{false};
  embbench::Metrics metrics;

  void check_dim(std::size_t dim, const char* what) const {
    if (dim != model.embedding_dim) {
      throw embbench::BackendError(std::string(what) + " " + std::to_string(dim) + "-dimensional embeddings, "
                                   "embbench_model.json says embedding_dim " + std::to_string(model.embedding_dim));
    }
  }

  // Runs after main() stamped runtime_ready: LOAD_DELAY_MS counts as model load.
  void load() {
    if (cfg.load_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(cfg.load_delay_ms));
    const auto t0 = Clock::now();
    auto tok = std::make_unique<embbench::Tokenizer>(
        embbench::Tokenizer::from_file(cfg.model_dir + "/pytorch/tokenizer.json"));
    auto eng = std::make_unique<embbench::Engine>(runtime, cfg.model_dir + "/onnx/model.onnx", cfg.num_threads,
                                                  cfg.max_inflight);
    if (const auto dim = eng->output_dim()) check_dim(*dim, "the graph declares");
    startup.mark(embbench::Startup::Stage::model_loaded);
    const double load_ms = ms_since(t0);
    double warm_ms = 0;
    if (cfg.warmup) {
      // One real inference before /health turns 200; not counted in /metrics.
      const auto t1 = Clock::now();
      const auto out = eng->run(embbench::pad_batch({tok->encode("warm-up", model.max_seq_length)}, tok->pad_id()));
      startup.mark(embbench::Startup::Stage::warmed, out.output_ready);
      check_dim(out.dim, "the graph answers");
      warm_ms = ms_since(t1);
    }
    tokenizer = std::move(tok);
    engine = std::move(eng);
    ready.store(true, std::memory_order_release);
    std::cerr << "embbench-onnx-cpp: model " << model.name << " loaded in " << load_ms << " ms"
              << (cfg.warmup ? ", warmed up in " + std::to_string(warm_ms) + " ms" : std::string(", no warm-up (WARMUP=0)"))
              << "\n";
  }

  nlohmann::json info() const {
    return {
        {"framework", "onnxruntime"},
        {"framework_version", embbench::Engine::ort_version()},
        {"model", model.name},
        {"embedding_dim", model.embedding_dim},
        {"max_seq_length", model.max_seq_length},
        {"dtype", "float32"},
        {"threads", cfg.num_threads},
        {"cpus", cpus},
        {"max_batch", cfg.max_batch},
        {"max_inflight", cfg.max_inflight},
        {"warmup", cfg.warmup},
        {"startup", startup.to_json()},
        {"os_threads", embbench::os_threads_json(embbench::os_threads())},
        {"build",
         {{"language", "C++20"},
          {"api", "ONNX Runtime C++ API (onnxruntime_cxx_api.h)"},
          {"onnxruntime_package", "Debian trixie libonnxruntime1.21"},
          {"execution_provider", "CPUExecutionProvider"},
          {"intra_op_threads", cfg.num_threads},
          {"inter_op_threads", 1},
          {"execution_mode", "sequential"},
          {"graph_optimization_level", "ORT_ENABLE_ALL"},
          {"cpu_level", EMBBENCH_CPU_LEVEL},
          {"cxx_flags", EMBBENCH_CXX_FLAGS},
          {"compiler", "g++ " __VERSION__},
          {"http", "cpp-httplib " CPPHTTPLIB_VERSION},
          {"http_threads", cfg.http_threads},
          {"tokenizer", "embbench native tokenizer.json interpreter (Unigram, WordPiece)"},
          {"server_version", EMBBENCH_VERSION}}},
    };
  }

  void embed(const httplib::Request& req, httplib::Response& res) {
    // cpp-httplib calls a handler once it has read the whole body: the start of `request` and `parse`.
    const auto t_body = Clock::now();
    if (!ready.load(std::memory_order_acquire)) {
      return send_error(res, {503, "Unhealthy", "model is loading"});
    }
    if (!embbench::is_json_content_type(req.get_header_value("Content-Type"))) {
      const std::string ct = req.get_header_value("Content-Type");
      return send_error(res, {415, "UnsupportedMediaType",
                              "Content-Type must be application/json, found \"" + (ct.empty() ? "(none)" : ct) + "\""});
    }
    auto parsed = embbench::parse_embed_request(req.body, static_cast<std::size_t>(cfg.max_batch));
    if (auto* err = std::get_if<ApiError>(&parsed)) return send_error(res, *err);
    auto& request = std::get<embbench::EmbedRequest>(parsed);

    const auto t_tok = Clock::now();  // the end of `parse`, the start of `tokenize`
    std::vector<embbench::Encoding> encodings;
    encodings.reserve(request.inputs.size());
    std::uint64_t tokens = 0;
    try {
      for (std::size_t i = 0; i < request.inputs.size(); ++i) {
        auto enc = tokenizer->encode(request.inputs[i], model.max_seq_length);
        if (!request.truncate && enc.full_length > model.max_seq_length) {
          return send_error(res, {422, "Validation",
                                  "inputs[" + std::to_string(i) + "] has " + std::to_string(enc.full_length) +
                                      " tokens, more than max_seq_length " + std::to_string(model.max_seq_length) +
                                      " (truncate is false)"});
        }
        tokens += enc.ids.size();
        encodings.push_back(std::move(enc));
      }
    } catch (const std::invalid_argument& e) {
      return send_error(res, {422, "Validation", e.what()});
    }
    const auto batch = embbench::pad_batch(encodings, tokenizer->pad_id());
    const auto t_batch = Clock::now();  // the end of `tokenize`, the start of `queue`

    embbench::EngineOutput out;
    try {
      out = engine->run(batch);  // stamps slot_acquired (queue -> inference) and output_ready
    } catch (const std::exception& e) {
      return send_error(res, {500, "Backend", e.what()});
    }
    for (float v : out.embeddings) {
      if (!std::isfinite(v)) return send_error(res, {500, "Backend", "the model produced a non-finite embedding value"});
    }
    std::string body = embbench::embeddings_json(out.embeddings.data(), out.rows, out.dim);
    const auto t_done = Clock::now();  // the answer serialised: the end of `serialize` and `request`

    const embbench::PhaseTimes t{
        .request_ns = ns_between(t_body, t_done),
        .parse_ns = ns_between(t_body, t_tok),
        .tokenize_ns = ns_between(t_tok, t_batch),
        .queue_ns = ns_between(t_batch, out.slot_acquired),
        .inference_ns = ns_between(out.slot_acquired, out.output_ready),
        .serialize_ns = ns_between(out.output_ready, t_done),
    };
    res.set_content(std::move(body), "application/json");
    res.set_header("x-tokenization-time", ms_header(t.tokenize_ns));
    res.set_header("x-inference-time", ms_header(t.queue_ns + t.inference_ns));
    res.set_header("x-total-time", ms_header(t.request_ns));
    metrics.record(out.rows, tokens, t);
  }
};

void method_not_allowed(httplib::Server& svr, const std::string& path, const std::string& allowed) {
  auto h = [path, allowed](const httplib::Request& req, httplib::Response& res) {
    res.set_header("Allow", allowed);
    send_error(res, {405, "MethodNotAllowed", req.method + " is not allowed on " + path + ": use " + allowed});
  };
  if (allowed != "GET") svr.Get(path, h);
  if (allowed != "POST") svr.Post(path, h);
  svr.Put(path, h);
  svr.Delete(path, h);
  svr.Patch(path, h);
  svr.Options(path, h);
}

}  // namespace

int main() {
  auto server = std::make_shared<Server>();
  try {
    server->cfg = embbench::config_from_env([](const char* n) { return std::getenv(n); });
    server->model = embbench::load_model_info(server->cfg.model_dir + "/embbench_model.json");
  } catch (const embbench::ConfigError& e) {
    std::cerr << "embbench-onnx-cpp: " << e.what() << "\n";
    return 2;
  }
  server->cpus = embbench::affinity_cpuset();
  const auto& cfg = server->cfg;
  try {
    server->runtime = std::make_shared<const embbench::Runtime>();
  } catch (const std::exception& e) {
    std::cerr << "embbench-onnx-cpp: " << e.what() << "\n";
    return 1;
  }

  httplib::Server svr;
  const int workers = cfg.http_threads;
  svr.new_task_queue = [workers] { return new httplib::ThreadPool(static_cast<std::size_t>(workers)); };
  svr.set_payload_max_length(cfg.max_body_bytes);
  // Load generators reuse their connections for the whole run.
  svr.set_keep_alive_max_count(std::numeric_limits<int>::max());
  svr.set_keep_alive_timeout(60);
  svr.set_tcp_nodelay(true);
  // Answers are never compressed (docker/CONTRACT.md). Debian's cpp-httplib is built with brotli and
  // zlib and would otherwise compress JSON for any client that offers Accept-Encoding (oha does),
  // costing milliseconds per request that no other server pays. The Request handed to this handler
  // is httplib's own non-const object, so dropping the header here is well defined.
  svr.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    const_cast<httplib::Request&>(req).headers.erase("Accept-Encoding");
    return httplib::Server::HandlerResponse::Unhandled;
  });

  svr.Post("/embed", [server](const httplib::Request& req, httplib::Response& res) { server->embed(req, res); });
  method_not_allowed(svr, "/embed", "POST");
  svr.Get("/health", [server](const httplib::Request&, httplib::Response& res) {
    if (server->ready.load(std::memory_order_acquire)) res.set_content(R"({"status":"ok"})", "application/json");
    else send_error(res, {503, "Unhealthy", "model is loading"});
  });
  method_not_allowed(svr, "/health", "GET");
  svr.Get("/info", [server](const httplib::Request&, httplib::Response& res) {
    // A thread name is 15 bytes cut anywhere, possibly inside a UTF-8 sequence: replace, never throw.
    res.set_content(server->info().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
  });
  method_not_allowed(svr, "/info", "GET");
  svr.Get("/metrics", [server](const httplib::Request&, httplib::Response& res) {
    res.set_content(server->metrics.text(), embbench::kMetricsContentType);
  });
  method_not_allowed(svr, "/metrics", "GET");

  // Errors cpp-httplib raises itself (unrouted path, oversized body, bad request line) get the
  // contract's JSON; answers a handler already wrote are left alone.
  const std::size_t max_body = cfg.max_body_bytes;
  svr.set_error_handler([max_body](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    switch (res.status) {
      case 404: send_error(res, {404, "NotFound", "no such path: " + req.path}); break;
      case 413:
        send_error(res, {413, "PayloadTooLarge", "request body exceeds MAX_BODY_BYTES=" + std::to_string(max_body)});
        break;
      case 405: send_error(res, {405, "MethodNotAllowed", req.method + " is not allowed on " + req.path}); break;
      default:
        send_error(res, {res.status, res.status >= 500 ? "Backend" : "Validation",
                         "HTTP " + std::to_string(res.status) + " for " + req.method + " " + req.path});
    }
    return httplib::Server::HandlerResponse::Handled;
  });
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, {500, "Backend", what});
  });

  if (!svr.bind_to_port(cfg.host, cfg.port)) {
    std::cerr << "embbench-onnx-cpp: cannot bind " << cfg.host << ":" << cfg.port << "\n";
    return 1;
  }
  std::cerr << "embbench-onnx-cpp: listening on " << cfg.host << ":" << cfg.port << " (ONNX Runtime "
            << embbench::Engine::ort_version() << ", threads " << cfg.num_threads << ", cpus " << server->cpus << ")\n";
  // The runtime is initialised and the port bound: the model is read next (after LOAD_DELAY_MS).
  server->startup.mark(embbench::Startup::Stage::runtime_ready);
  std::thread([server] {
    try {
      server->load();
    } catch (const std::exception& e) {
      // A server that cannot load its model must not sit at 503 forever: exit so the harness sees it.
      std::cerr << "embbench-onnx-cpp: loading the model failed: " << e.what() << "\n";
      std::_Exit(1);
    }
  }).detach();
  svr.listen_after_bind();
  return 0;
}
