#include <doctest/doctest.h>

#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "metrics.h"

namespace {

// The sample lines of an exposition text, name{labels} -> value, checking the format on the way:
// every line is a "# TYPE name counter|histogram" comment or "name[{labels}] value", and every
// sample belongs to the family its last TYPE line declared.
std::map<std::string, std::string> samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line, family;
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string type;
      t >> family >> type;
      CHECK((type == "counter" || type == "histogram"));
      continue;
    }
    const auto sp = line.rfind(' ');
    REQUIRE(sp != std::string::npos);
    const std::string key = line.substr(0, sp);
    CHECK_MESSAGE(key.rfind(family, 0) == 0, key << " follows TYPE " << family);
    CHECK_MESSAGE(out.count(key) == 0, key << " appears once");
    out[key] = line.substr(sp + 1);
  }
  return out;
}

}  // namespace

TEST_CASE("ns_to_seconds_text() writes exact decimal seconds") {
  CHECK(embbench::ns_to_seconds_text(0) == "0.000000000");
  CHECK(embbench::ns_to_seconds_text(1) == "0.000000001");
  CHECK(embbench::ns_to_seconds_text(1500000000) == "1.500000000");
  CHECK(embbench::ns_to_seconds_text(123456789012345ULL) == "123456.789012345");
}

TEST_CASE("a fresh Metrics exposes every contract metric at zero, in the 0.0.4 text format") {
  embbench::Metrics m;
  const std::string text = m.text();
  CHECK(std::string(embbench::kMetricsContentType) == "text/plain; version=0.0.4");
  CHECK(text.rfind("# TYPE embbench_requests_total counter\nembbench_requests_total 0\n", 0) == 0);
  const auto s = samples(text);
  const std::vector<std::string> names = {
      "embbench_requests_total",          "embbench_inputs_total",           "embbench_tokens_total",
      "embbench_request_seconds_total",   "embbench_parse_seconds_total",    "embbench_tokenize_seconds_total",
      "embbench_queue_seconds_total",     "embbench_inference_seconds_total", "embbench_serialize_seconds_total",
      "embbench_batch_size_sum",          "embbench_batch_size_count"};
  for (const auto& n : names) {
    CAPTURE(n);
    REQUIRE(s.count(n) == 1);
    CHECK(std::stod(s.at(n)) == 0.0);
  }
  for (const char* le : {"1", "2", "4", "8", "16", "32", "64", "128", "256", "+Inf"}) {
    const std::string key = std::string("embbench_batch_size_bucket{le=\"") + le + "\"}";
    CAPTURE(key);
    REQUIRE(s.count(key) == 1);
    CHECK(s.at(key) == "0");
  }
  CHECK(s.size() == names.size() + 10);  // nothing else
  for (const char* t : {"embbench_inputs_total counter", "embbench_batch_size histogram",
                        "embbench_serialize_seconds_total counter"}) {
    CHECK(text.find(std::string("# TYPE ") + t + "\n") != std::string::npos);
  }
}

TEST_CASE("record() adds up counters, phase seconds and the batch-size histogram") {
  embbench::Metrics m;
  const embbench::PhaseTimes a{.request_ns = 1'000'000'000, .parse_ns = 10, .tokenize_ns = 200, .queue_ns = 3'000,
                               .inference_ns = 900'000'000, .serialize_ns = 5};
  const embbench::PhaseTimes b{.request_ns = 2'500'000'001, .parse_ns = 1, .tokenize_ns = 2, .queue_ns = 3,
                               .inference_ns = 4, .serialize_ns = 999'999'999};
  m.record(1, 7, a);    // bucket le=1
  m.record(3, 30, b);   // le=4
  m.record(64, 640, a);  // le=64
  m.record(300, 9, b);  // beyond 256: +Inf only
  const auto s = samples(m.text());
  CHECK(s.at("embbench_requests_total") == "4");
  CHECK(s.at("embbench_inputs_total") == "368");
  CHECK(s.at("embbench_tokens_total") == "686");
  CHECK(s.at("embbench_request_seconds_total") == "7.000000002");
  CHECK(s.at("embbench_parse_seconds_total") == "0.000000022");
  CHECK(s.at("embbench_tokenize_seconds_total") == "0.000000404");
  CHECK(s.at("embbench_queue_seconds_total") == "0.000006006");
  CHECK(s.at("embbench_inference_seconds_total") == "1.800000008");
  CHECK(s.at("embbench_serialize_seconds_total") == "2.000000008");
  const std::map<std::string, std::string> cumulative = {
      {"1", "1"}, {"2", "1"}, {"4", "2"}, {"8", "2"}, {"16", "2"}, {"32", "2"},
      {"64", "3"}, {"128", "3"}, {"256", "3"}, {"+Inf", "4"}};
  for (const auto& [le, want] : cumulative) {
    CAPTURE(le);
    CHECK(s.at("embbench_batch_size_bucket{le=\"" + le + "\"}") == want);
  }
  CHECK(s.at("embbench_batch_size_sum") == "368");
  CHECK(s.at("embbench_batch_size_count") == "4");
}

TEST_CASE("record() from many threads at once loses nothing") {
  embbench::Metrics m;
  const embbench::PhaseTimes t{.request_ns = 7, .parse_ns = 1, .tokenize_ns = 1, .queue_ns = 1, .inference_ns = 3,
                               .serialize_ns = 1};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&m, &t, i] {
      for (int k = 0; k < 20000; ++k) m.record(static_cast<std::size_t>(i % 2 + 1), 5, t);
    });
  }
  for (auto& th : threads) th.join();
  const auto s = samples(m.text());
  CHECK(s.at("embbench_requests_total") == "160000");
  CHECK(s.at("embbench_inputs_total") == "240000");  // half the threads record batches of 1, half of 2
  CHECK(s.at("embbench_tokens_total") == "800000");
  CHECK(s.at("embbench_request_seconds_total") == "0.001120000");
  CHECK(s.at("embbench_inference_seconds_total") == "0.000480000");
  CHECK(s.at("embbench_batch_size_bucket{le=\"1\"}") == "80000");
  CHECK(s.at("embbench_batch_size_bucket{le=\"2\"}") == "160000");
  CHECK(s.at("embbench_batch_size_count") == "160000");
}
