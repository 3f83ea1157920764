// --bench-run: the engine loaded exactly as the server loads it, one payload tokenized once, and
// Session::Run timed in-process, with no HTTP, queue or tokenizer in the figure.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config.h"
#include "engine.h"
#include "tokenizer.h"

namespace embbench {

/// The q-quantile (0..1) of `values` by linear interpolation between closest ranks (numpy's default).
double quantile(std::vector<double> values, double q);

struct BenchOptions {
  std::string payload;  // a /embed body ({"inputs": [...]}); for a .jsonl file, its first line
  int runs = 200;
  int warmup_runs = 3;
};

/// Parses --payload FILE, --runs N, --warmup N (after --bench-run); throws ConfigError.
BenchOptions bench_options_from_args(const std::vector<std::string>& args);

/// The request's rows, tokenized and padded as the server does (truncated to max_seq_length).
Batch bench_batch(const std::string& payload_path, const Tokenizer& tok, const ModelInfo& model);

/// Times `opts.runs` Run() calls on `batch` after `opts.warmup_runs` untimed ones:
/// {median_ms, p10_ms, p90_ms, mean_ms, min_ms, max_ms, runs, warmup_runs, rows, seq_len, tokens, session}.
nlohmann::json bench_run(Engine& engine, const Batch& batch, const BenchOptions& opts);

}  // namespace embbench
