// embbench-onnx-cpp: the embbench HTTP contract (docker/CONTRACT.md) served by ONNX Runtime's C++ API.
// The port is bound first; the model loads on a background thread while /health answers 503.
// `embbench-onnx-cpp --bench-run --payload FILE [--runs N]` times Session::Run in-process instead.
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
#include <string>
#include <sys/socket.h>
#include <thread>
#include <vector>

#include "batcher.h"
#include "bench.h"
#include "config.h"
#include "conn_pool.h"
#include "embed_request.h"
#include "engine.h"
#include "fifo_gate.h"
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

// The accept queue's length (the kernel caps it at net.core.somaxconn).
constexpr int kListenBacklog = 4096;

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(embbench::error_json(e), "application/json");
}

// The engine exactly as the server runs it: the contract's graph choice and session options.
embbench::EngineOptions engine_options(const embbench::Config& cfg, const embbench::ModelInfo& model) {
  embbench::EngineOptions o;
  o.model_file = model.ort_graph;
  o.model_path = cfg.model_dir + "/" + model.ort_graph;
  o.num_threads = cfg.num_threads;
  o.intra_op_spinning = cfg.intra_op_spinning.value_or(embbench::kDefaultIntraOpSpinning);
  const auto cpus = embbench::cpus_for_threads();
  o.intra_op_affinities = embbench::intra_op_affinities(cpus, cfg.num_threads);
  o.inference_thread_cpu = embbench::inference_thread_cpu(cpus, cfg.max_inflight);
  return o;
}

// cpp-httplib's task queue, served by embbench::ConnectionPool: one thread per connection, created as
// connections arrive (see conn_pool.h).
class HttpThreads final : public httplib::TaskQueue {
 public:
  explicit HttpThreads(std::size_t max_threads) : pool_(options(max_threads)) {}
  bool enqueue(std::function<void()> fn) override { return pool_.enqueue(std::move(fn)); }
  void shutdown() override { pool_.shutdown(); }

 private:
  static embbench::ConnectionPool::Options options(std::size_t max_threads) {
    embbench::ConnectionPool::Options o;
    o.max_threads = max_threads;
    return o;
  }
  embbench::ConnectionPool pool_;
};

struct Server {
  embbench::Config cfg;
  embbench::EngineOptions engine_opts;
  embbench::ModelInfo model;
  std::string cpus;
  // Read first, so process_start is known from the start.
  embbench::Startup startup{embbench::process_start_monotonic()};
  std::shared_ptr<const embbench::Runtime> runtime;  // the Ort::Env, created before the port is bound
  // Set once by the loader thread before `ready` flips; read-only afterwards.
  std::unique_ptr<embbench::Tokenizer> tokenizer;
  std::unique_ptr<embbench::Engine> engine;
  // SERVING=sequential: FIFO admission to inference, MAX_INFLIGHT at once.
  std::unique_ptr<embbench::FifoGate> gate;
  // SERVING=batched: the contract's batcher and its MAX_INFLIGHT workers.
  std::unique_ptr<embbench::Batcher> batcher;
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
    auto eng = std::make_unique<embbench::Engine>(runtime, engine_opts);
    if (const auto dim = eng->output_dim()) check_dim(*dim, "the graph declares");
    startup.mark(embbench::Startup::Stage::model_loaded);
    const double load_ms = ms_since(t0);
    double warm_ms = 0;
    if (cfg.warmup) {
      // One real inference before /health turns 200; not counted in /metrics.
      const auto t1 = Clock::now();
      embbench::PinThisThread pin(engine_opts.inference_thread_cpu);
      const auto out = eng->run(embbench::pad_batch({tok->encode("warm-up", model.max_seq_length)}, tok->pad_id()));
      startup.mark(embbench::Startup::Stage::warmed, out.run_end);
      check_dim(out.dim, "the graph answers");
      warm_ms = ms_since(t1);
    }
    tokenizer = std::move(tok);
    engine = std::move(eng);
    if (cfg.batched) {
      embbench::Batcher::Options bo;
      bo.max_batch_tokens = cfg.max_batch_tokens;
      bo.max_wait = std::chrono::microseconds(cfg.max_wait_us);
      bo.workers = static_cast<std::size_t>(cfg.max_inflight);
      batcher = std::make_unique<embbench::Batcher>(
          bo, tokenizer->pad_id(),
          [this](const embbench::Batch& b) {
            // The batch worker is the intra-op pool's first thread: pinned for its life (MAX_INFLIGHT = 1).
            thread_local embbench::PinThisThread pin(engine_opts.inference_thread_cpu);
            return engine->run(b);
          },
          [this](std::size_t rows) { metrics.record_batch(rows); });
    } else {
      gate = std::make_unique<embbench::FifoGate>(static_cast<std::size_t>(cfg.max_inflight));
    }
    ready.store(true, std::memory_order_release);
    std::cerr << "embbench-onnx-cpp: model " << model.name << " loaded in " << load_ms << " ms"
              << (cfg.warmup ? ", warmed up in " + std::to_string(warm_ms) + " ms" : std::string(", no warm-up (WARMUP=0)"))
              << "; graph " << engine_opts.model_file << ", serving " << (cfg.batched ? "batched" : "sequential")
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
        {"serving",
         {{"mode", cfg.batched ? "batched" : "sequential"},
          {"max_batch_tokens", cfg.max_batch_tokens},
          {"max_wait_us", cfg.max_wait_us}}},
        {"build", build()},
    };
  }

  nlohmann::json build() const {
    nlohmann::json b = embbench::session_facts(engine_opts);  // model_file, ONNX Runtime and session facts
    b.update({{"language", "C++20"},
              {"api", "ONNX Runtime C++ API (onnxruntime_cxx_api.h)"},
              {"cpu_level", EMBBENCH_CPU_LEVEL},
              {"cxx_flags", EMBBENCH_CXX_FLAGS},
              {"compiler", "g++ " __VERSION__},
              {"http", "cpp-httplib " CPPHTTPLIB_VERSION},
              {"http_threads", "one per connection, created on demand, at most " + std::to_string(cfg.http_threads)},
              {"admission", cfg.batched ? "batcher: FIFO queue, MAX_INFLIGHT workers"
                                        : "FIFO ticket queue, MAX_INFLIGHT slots"},
              {"tokenizer", "embbench native tokenizer.json interpreter (Unigram, WordPiece, BPE)"},
              {"server_version", EMBBENCH_VERSION}});
    return b;
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
    auto parsed = embbench::parse_embed_request(req.body, static_cast<std::size_t>(cfg.max_batch), model);
    if (auto* err = std::get_if<ApiError>(&parsed)) return send_error(res, *err);
    auto& request = std::get<embbench::EmbedRequest>(parsed);

    const auto t_tok = Clock::now();  // the end of `parse`, the start of `tokenize`
    std::vector<embbench::Encoding> encodings;
    encodings.reserve(request.inputs.size());
    std::uint64_t tokens = 0;
    try {
      for (std::size_t i = 0; i < request.inputs.size(); ++i) {
        // A prompt is part of the text: prepended before tokenization, it counts toward max_seq_length.
        auto enc = request.prompt.empty() ? tokenizer->encode(request.inputs[i], model.max_seq_length)
                                          : tokenizer->encode(request.prompt + request.inputs[i], model.max_seq_length);
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
    const std::size_t rows = encodings.size();
    std::vector<float> embeddings;
    std::size_t dim = 0;
    Clock::time_point t_queued, t_slot, t_run_end;  // queue from t_queued, inference t_slot .. t_run_end
    try {
      if (batcher) {
        // Queued with its rows; the batch is padded by the worker (that time counts as `queue`).
        t_queued = Clock::now();  // the end of `tokenize`
        auto r = batcher->submit(std::move(encodings), t_queued);
        t_slot = r.run_start;
        t_run_end = r.run_end;
        embeddings = std::move(r.embeddings);
        dim = r.dim;
      } else {
        const auto batch = embbench::pad_batch(encodings, tokenizer->pad_id());
        t_queued = Clock::now();  // the end of `tokenize`, the start of `queue`
        embbench::FifoGate::Hold slot(*gate);
        t_slot = Clock::now();
        // This HTTP thread is the intra-op pool's first thread while it runs the inference.
        embbench::PinThisThread pin(engine_opts.inference_thread_cpu);
        auto out = engine->run(batch);
        t_run_end = out.run_end;
        embeddings = std::move(out.embeddings);
        dim = out.dim;
      }
    } catch (const std::exception& e) {
      return send_error(res, {500, "Backend", e.what()});
    }
    for (float v : embeddings) {
      if (!std::isfinite(v)) return send_error(res, {500, "Backend", "the model produced a non-finite embedding value"});
    }
    // Matryoshka on the answer rows: the inference (and any batch it shared) ran at full size.
    if (request.dimensions != 0 && request.dimensions < dim) {
      embeddings = embbench::truncate_rows(embeddings, rows, dim, request.dimensions);
      dim = request.dimensions;
    }
    std::string body = embbench::embeddings_json(embeddings.data(), rows, dim);
    const auto t_done = Clock::now();  // the answer serialised: the end of `serialize` and `request`

    const embbench::PhaseTimes t{
        .request_ns = ns_between(t_body, t_done),
        .parse_ns = ns_between(t_body, t_tok),
        .tokenize_ns = ns_between(t_tok, t_queued),
        .queue_ns = ns_between(t_queued, t_slot),
        .inference_ns = ns_between(t_slot, t_run_end),
        .serialize_ns = ns_between(t_run_end, t_done),
    };
    res.set_content(std::move(body), "application/json");
    res.set_header("x-tokenization-time", ms_header(t.tokenize_ns));
    res.set_header("x-inference-time", ms_header(t.queue_ns + t.inference_ns));
    res.set_header("x-total-time", ms_header(t.request_ns));
    // The batcher counted its inference in embbench_batch_size; sequential requests are one inference each.
    if (batcher) metrics.record_request(rows, tokens, t);
    else metrics.record(rows, tokens, t);
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

// --bench-run: load the engine as the server does, tokenize the payload once, time Run() in-process and
// print one JSON object on stdout.
int bench_main(const std::vector<std::string>& args) {
  embbench::BenchOptions opts;
  embbench::Config cfg;
  embbench::ModelInfo model;
  try {
    opts = embbench::bench_options_from_args(args);
    cfg = embbench::config_from_env([](const char* n) { return std::getenv(n); });
    model = embbench::load_model_info(cfg.model_dir + "/embbench_model.json");
  } catch (const embbench::ConfigError& e) {
    std::cerr << "embbench-onnx-cpp --bench-run: " << e.what() << "\n";
    return 2;
  }
  try {
    const auto tok = embbench::Tokenizer::from_file(cfg.model_dir + "/pytorch/tokenizer.json");
    const auto batch = embbench::bench_batch(opts.payload, tok, model);
    embbench::Engine engine(std::make_shared<const embbench::Runtime>(), engine_options(cfg, model));
    auto out = embbench::bench_run(engine, batch, opts);
    out["payload"] = opts.payload;
    out["model"] = model.name;
    out["cpus"] = embbench::affinity_cpuset();
    std::cout << out.dump() << std::endl;
  } catch (const embbench::ConfigError& e) {
    std::cerr << "embbench-onnx-cpp --bench-run: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "embbench-onnx-cpp --bench-run: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty()) {
    if (args.front() == "--bench-run") return bench_main(args);
    std::cerr << "embbench-onnx-cpp: unknown argument " << args.front()
              << " (the server takes its settings from the environment; --bench-run --payload FILE [--runs N])\n";
    return 2;
  }
  auto server = std::make_shared<Server>();
  try {
    server->cfg = embbench::config_from_env([](const char* n) { return std::getenv(n); });
    server->model = embbench::load_model_info(server->cfg.model_dir + "/embbench_model.json");
  } catch (const embbench::ConfigError& e) {
    std::cerr << "embbench-onnx-cpp: " << e.what() << "\n";
    return 2;
  }
  server->engine_opts = engine_options(server->cfg, server->model);
  server->cpus = embbench::affinity_cpuset();
  const auto& cfg = server->cfg;
  try {
    server->runtime = std::make_shared<const embbench::Runtime>();
  } catch (const std::exception& e) {
    std::cerr << "embbench-onnx-cpp: " << e.what() << "\n";
    return 1;
  }

  httplib::Server svr;
  // Every connection gets a thread as it arrives (up to HTTP_THREADS): none waits for another to close.
  const auto max_http = static_cast<std::size_t>(cfg.http_threads);
  svr.new_task_queue = [max_http] { return new HttpThreads(max_http); };
  // cpp-httplib 0.18 listens with a backlog of 5, so a burst of connections (a load generator opening
  // hundreds at once) overflows the accept queue and the dropped ones retry a second later. The
  // listening socket is captured here and listen() called again with a large backlog after binding.
  auto listen_fd = std::make_shared<int>(-1);
  svr.set_socket_options([listen_fd](socket_t sock) {
    int one = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    *listen_fd = sock;
  });
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
  if (*listen_fd >= 0 && ::listen(*listen_fd, kListenBacklog) != 0) {
    std::cerr << "embbench-onnx-cpp: cannot raise the listen backlog to " << kListenBacklog << "\n";
  }
  std::cerr << "embbench-onnx-cpp: listening on " << cfg.host << ":" << cfg.port << " (ONNX Runtime "
            << embbench::Engine::ort_version() << ", threads " << cfg.num_threads << ", cpus " << server->cpus
            << ", serving " << (cfg.batched ? "batched" : "sequential") << ", intra-op affinities \""
            << server->engine_opts.intra_op_affinities << "\", spinning " << server->engine_opts.intra_op_spinning
            << ")\n";
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
