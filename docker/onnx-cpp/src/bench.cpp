#include "bench.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <numeric>
#include <sstream>

#include "embed_request.h"

namespace embbench {

double quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double pos = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo));
}

BenchOptions bench_options_from_args(const std::vector<std::string>& args) {
  BenchOptions o;
  auto number = [](const std::string& flag, const std::string& v, int lo) {
    std::size_t used = 0;
    int n = 0;
    try {
      n = std::stoi(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != v.size() || v.empty() || n < lo) {
      throw ConfigError(flag + " \"" + v + "\" is not an integer >= " + std::to_string(lo));
    }
    return n;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--bench-run") continue;
    if (i + 1 >= args.size()) throw ConfigError(a + " needs a value");
    const std::string& v = args[++i];
    if (a == "--payload") o.payload = v;
    else if (a == "--runs") o.runs = number(a, v, 1);
    else if (a == "--warmup") o.warmup_runs = number(a, v, 0);
    else throw ConfigError("unknown argument " + a + " (usage: --bench-run --payload FILE [--runs N] [--warmup N])");
  }
  if (o.payload.empty()) throw ConfigError("--bench-run needs --payload FILE (a /embed body)");
  return o;
}

Batch bench_batch(const std::string& payload_path, const Tokenizer& tok, const ModelInfo& model) {
  std::ifstream in(payload_path);
  if (!in) throw ConfigError(payload_path + ": cannot open the payload");
  std::ostringstream text;
  text << in.rdbuf();
  std::string body = text.str();
  // A .jsonl file holds one compact body per line: its first line is the payload.
  const std::string first = body.substr(0, body.find('\n'));
  if (first.size() < body.size() && nlohmann::json::accept(first)) body = first;
  auto parsed = parse_embed_request(body, static_cast<std::size_t>(1) << 20, model);
  if (auto* err = std::get_if<ApiError>(&parsed)) throw ConfigError(payload_path + ": " + err->message);
  const auto& request = std::get<EmbedRequest>(parsed);
  std::vector<Encoding> rows;
  // A prompt payload's prompt_name is applied as the server applies it.
  for (const auto& text : request.inputs) rows.push_back(tok.encode(request.prompt + text, model.max_seq_length));
  return pad_batch(rows, tok.pad_id());
}

nlohmann::json bench_run(Engine& engine, const Batch& batch, const BenchOptions& opts) {
  // This thread calls Run as the server's inference thread does, pinned the same way.
  PinThisThread pin(engine.options().inference_thread_cpu);
  for (int i = 0; i < opts.warmup_runs; ++i) engine.run(batch);
  std::vector<double> ms;
  ms.reserve(static_cast<std::size_t>(opts.runs));
  for (int i = 0; i < opts.runs; ++i) {
    const auto out = engine.run(batch);
    ms.push_back(std::chrono::duration<double, std::milli>(out.run_end - out.run_start).count());
  }
  const double sum = std::accumulate(ms.begin(), ms.end(), 0.0);
  const auto tokens = std::count(batch.attention_mask.begin(), batch.attention_mask.end(), int64_t{1});
  return {
      {"median_ms", quantile(ms, 0.5)},
      {"p10_ms", quantile(ms, 0.1)},
      {"p90_ms", quantile(ms, 0.9)},
      {"mean_ms", sum / static_cast<double>(ms.size())},
      {"min_ms", *std::min_element(ms.begin(), ms.end())},
      {"max_ms", *std::max_element(ms.begin(), ms.end())},
      {"runs", opts.runs},
      {"warmup_runs", opts.warmup_runs},
      {"rows", batch.rows},
      {"seq_len", batch.seq},
      {"tokens", tokens},
      {"session", engine.facts()},
  };
}

}  // namespace embbench
