#include "metrics.h"

#include <cstdio>

namespace embbench {

std::string ns_to_seconds_text(std::uint64_t ns) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%llu.%09llu", static_cast<unsigned long long>(ns / 1000000000ULL),
                static_cast<unsigned long long>(ns % 1000000000ULL));
  return buf;
}

void Metrics::record_batch(std::size_t rows) {
  std::size_t b = 0;
  while (b < kBatchBuckets.size() && rows > kBatchBuckets[b]) ++b;
  add(batch_buckets_[b], 1);
  add(batch_sum_, rows);
}

void Metrics::record_request(std::size_t inputs, std::uint64_t tokens, const PhaseTimes& t) {
  add(inputs_, inputs);
  add(tokens_, tokens);
  add(request_ns_, t.request_ns);
  add(parse_ns_, t.parse_ns);
  add(tokenize_ns_, t.tokenize_ns);
  add(queue_ns_, t.queue_ns);
  add(inference_ns_, t.inference_ns);
  add(serialize_ns_, t.serialize_ns);
  add(requests_, 1);
}

std::string Metrics::text() const {
  std::string out;
  out.reserve(1500);
  auto counter = [&](const char* name, const std::string& value) {
    out += "# TYPE ";
    out += name;
    out += " counter\n";
    out += name;
    out += ' ';
    out += value;
    out += '\n';
  };
  counter("embbench_requests_total", std::to_string(get(requests_)));
  counter("embbench_inputs_total", std::to_string(get(inputs_)));
  counter("embbench_tokens_total", std::to_string(get(tokens_)));
  counter("embbench_request_seconds_total", ns_to_seconds_text(get(request_ns_)));
  counter("embbench_parse_seconds_total", ns_to_seconds_text(get(parse_ns_)));
  counter("embbench_tokenize_seconds_total", ns_to_seconds_text(get(tokenize_ns_)));
  counter("embbench_queue_seconds_total", ns_to_seconds_text(get(queue_ns_)));
  counter("embbench_inference_seconds_total", ns_to_seconds_text(get(inference_ns_)));
  counter("embbench_serialize_seconds_total", ns_to_seconds_text(get(serialize_ns_)));

  // Buckets are read once each and summed here, so the cumulative series never decreases within
  // one answer; _count is the +Inf bucket of this same reading.
  out += "# TYPE embbench_batch_size histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= kBatchBuckets.size(); ++i) {
    cumulative += get(batch_buckets_[i]);
    out += "embbench_batch_size_bucket{le=\"";
    out += i < kBatchBuckets.size() ? std::to_string(kBatchBuckets[i]) : std::string("+Inf");
    out += "\"} ";
    out += std::to_string(cumulative);
    out += '\n';
  }
  out += "embbench_batch_size_sum " + std::to_string(get(batch_sum_)) + "\n";
  out += "embbench_batch_size_count " + std::to_string(cumulative) + "\n";
  return out;
}

}  // namespace embbench
