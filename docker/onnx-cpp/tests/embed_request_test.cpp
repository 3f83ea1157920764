#include <doctest/doctest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "embed_request.h"

using embbench::ApiError;
using embbench::EmbedRequest;

namespace {

ApiError error_of(std::string_view body, std::size_t max_batch = 4) {
  auto r = embbench::parse_embed_request(body, max_batch);
  REQUIRE(std::holds_alternative<ApiError>(r));
  return std::get<ApiError>(r);
}

EmbedRequest ok(std::string_view body, std::size_t max_batch = 4) {
  auto r = embbench::parse_embed_request(body, max_batch);
  if (auto* e = std::get_if<ApiError>(&r)) FAIL("unexpected error: " << e->message);
  return std::get<EmbedRequest>(r);
}

}  // namespace

TEST_CASE("parse_embed_request() accepts a string, a list, nulls for defaults and unknown fields") {
  CHECK(ok(R"({"inputs": "one"})").inputs == std::vector<std::string>{"one"});
  const auto r = ok(R"({"inputs": ["a", ""], "truncate": false, "normalize": true, "prompt_name": "x"})");
  CHECK(r.inputs == std::vector<std::string>{"a", ""});
  CHECK_FALSE(r.truncate);
  CHECK(ok(R"({"inputs": ["a"], "truncate": null, "normalize": null})").truncate);
}

TEST_CASE("parse_embed_request() answers 422 Validation naming the offending field") {
  CHECK(error_of("{").status == 422);
  CHECK(error_of("{").message.find("not valid JSON") != std::string::npos);
  CHECK(error_of("[1]").message.find("JSON object") != std::string::npos);
  CHECK(error_of("{}").message.find("\"inputs\" is missing") != std::string::npos);
  CHECK(error_of(R"({"inputs": null})").message.find("\"inputs\" must be") != std::string::npos);
  CHECK(error_of(R"({"inputs": []})").message.find("empty list") != std::string::npos);
  CHECK(error_of(R"({"inputs": ["a", ["b"]]})").message.find("inputs[1] must be a string, found array") != std::string::npos);
  CHECK(error_of(R"({"inputs": ["a", null]})").message.find("inputs[1]") != std::string::npos);
  CHECK(error_of(R"({"inputs": 3})").type == "Validation");
  CHECK(error_of(R"({"inputs": "a", "truncate": "yes"})").message.find("\"truncate\" must be a boolean") != std::string::npos);
  CHECK(error_of(R"({"inputs": "a", "normalize": false})").message.find("\"normalize\" is false") != std::string::npos);
  CHECK(error_of(R"({"inputs": "a", "normalize": 1})").status == 422);
}

TEST_CASE("parse_embed_request() rejects invalid UTF-8 as 422") {
  const std::string body = std::string(R"({"inputs": "a)") + "\xC3\x28" + "\"}";
  const auto e = error_of(body);
  CHECK(e.status == 422);
  CHECK(e.message.find("UTF-8") != std::string::npos);
}

TEST_CASE("parse_embed_request() answers 413 above MAX_BATCH") {
  const auto e = error_of(R"({"inputs": ["a", "b", "c"]})", 2);
  CHECK(e.status == 413);
  CHECK(e.type == "PayloadTooLarge");
  CHECK(e.message.find("MAX_BATCH=2") != std::string::npos);
  CHECK(ok(R"({"inputs": ["a", "b"]})", 2).inputs.size() == 2);
}

TEST_CASE("is_json_content_type() allows parameters and case") {
  CHECK(embbench::is_json_content_type("application/json"));
  CHECK(embbench::is_json_content_type("Application/JSON; charset=utf-8"));
  CHECK_FALSE(embbench::is_json_content_type("text/plain"));
  CHECK_FALSE(embbench::is_json_content_type(""));
  CHECK_FALSE(embbench::is_json_content_type("application/jsonl"));
}

TEST_CASE("embeddings_json() round-trips floats exactly and error_json() has both fields") {
  const float v[] = {0.1f, -1.5e-7f, 1.0f, 0.333333343f};
  const auto j = nlohmann::json::parse(embbench::embeddings_json(v, 2, 2));
  REQUIRE(j.size() == 2);
  CHECK(j[0][0].get<float>() == v[0]);
  CHECK(j[0][1].get<float>() == v[1]);
  CHECK(j[1][1].get<float>() == v[3]);
  const auto e = nlohmann::json::parse(embbench::error_json({404, "NotFound", "no such path: /x"}));
  CHECK(e["error"] == "no such path: /x");
  CHECK(e["error_type"] == "NotFound");
}
