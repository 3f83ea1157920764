#include <doctest/doctest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "embed_request.h"

using embbench::ApiError;
using embbench::EmbedRequest;

namespace {

// An encoder without prompts or Matryoshka sizes, as a folder from before issue 14 loads.
embbench::ModelInfo plain_model() {
  embbench::ModelInfo m;
  m.embedding_dim = 64;
  m.dimensions = {64, 64, {64}};
  return m;
}

// tiny-gemma3's: two prompts (in the file's order) and four sizes.
embbench::ModelInfo gemma_model() {
  embbench::ModelInfo m = plain_model();
  m.prompts = {{"query", "task: search result | query: "}, {"document", "title: none | text: "}};
  m.dimensions = {16, 64, {16, 32, 48, 64}};
  return m;
}

// tiny-qwen3's: every size from 8 to 64.
embbench::ModelInfo qwen_model() {
  embbench::ModelInfo m = plain_model();
  m.prompts = {{"query", "Instruct: x\nQuery:"}, {"document", ""}};
  m.dimensions = {8, 64, {}};
  return m;
}

ApiError error_of(std::string_view body, std::size_t max_batch = 4, const embbench::ModelInfo& model = plain_model()) {
  auto r = embbench::parse_embed_request(body, max_batch, model);
  REQUIRE(std::holds_alternative<ApiError>(r));
  return std::get<ApiError>(r);
}

EmbedRequest ok(std::string_view body, std::size_t max_batch = 4, const embbench::ModelInfo& model = plain_model()) {
  auto r = embbench::parse_embed_request(body, max_batch, model);
  if (auto* e = std::get_if<ApiError>(&r)) FAIL("unexpected error: " << e->message);
  return std::get<EmbedRequest>(r);
}

}  // namespace

TEST_CASE("parse_embed_request() accepts a string, a list, nulls for defaults and unknown fields") {
  CHECK(ok(R"({"inputs": "one"})").inputs == std::vector<std::string>{"one"});
  const auto r = ok(R"({"inputs": ["a", ""], "truncate": false, "normalize": true, "pooling": "x"})");
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

TEST_CASE("parse_embed_request() maps prompt_name to the model's prompt text, null to none") {
  CHECK(ok(R"({"inputs": "a", "prompt_name": "query"})", 4, gemma_model()).prompt == "task: search result | query: ");
  CHECK(ok(R"({"inputs": "a", "prompt_name": "document"})", 4, gemma_model()).prompt == "title: none | text: ");
  CHECK(ok(R"({"inputs": "a", "prompt_name": null})", 4, gemma_model()).prompt.empty());
  CHECK(ok(R"({"inputs": "a", "prompt_name": "document"})", 4, qwen_model()).prompt.empty());
}

TEST_CASE("parse_embed_request() answers the contract's 422 for an unknown prompt_name") {
  auto e = error_of(R"({"inputs": "a", "prompt_name": "summary"})", 4, gemma_model());
  CHECK(e.status == 422);
  CHECK(e.type == "Validation");
  CHECK(e.message == R"('prompt_name' is "summary": the model's prompts are query, document)");
  CHECK(error_of(R"({"inputs": "a", "prompt_name": "query"})").message ==
        R"('prompt_name' is "query": the model has no prompts)");
  CHECK(error_of(R"({"inputs": "a", "prompt_name": 3})", 4, gemma_model()).message ==
        R"(field "prompt_name" must be a string, found number)");
}

TEST_CASE("parse_embed_request() accepts the model's dimensions; embedding_dim and null change nothing") {
  CHECK(ok(R"({"inputs": "a", "dimensions": 16})", 4, gemma_model()).dimensions == 16);
  CHECK(ok(R"({"inputs": "a", "dimensions": 64})", 4, gemma_model()).dimensions == 0);
  CHECK(ok(R"({"inputs": "a", "dimensions": null})", 4, gemma_model()).dimensions == 0);
  CHECK(ok(R"({"inputs": "a", "dimensions": 9})", 4, qwen_model()).dimensions == 9);
  CHECK(ok(R"({"inputs": "a", "dimensions": 64})").dimensions == 0);
}

TEST_CASE("parse_embed_request() answers the contract's 422 for an unsupported dimensions") {
  CHECK(error_of(R"({"inputs": "a", "dimensions": 100})", 4, gemma_model()).message ==
        "'dimensions' is 100: expected one of 16, 32, 48, 64");
  CHECK(error_of(R"({"inputs": "a", "dimensions": 20})", 4, gemma_model()).message ==
        "'dimensions' is 20: expected one of 16, 32, 48, 64");
  CHECK(error_of(R"({"inputs": "a", "dimensions": 7})", 4, qwen_model()).message ==
        "'dimensions' is 7: expected an integer from 8 to 64");
  CHECK(error_of(R"({"inputs": "a", "dimensions": -8})", 4, qwen_model()).message ==
        "'dimensions' is -8: expected an integer from 8 to 64");
  CHECK(error_of(R"({"inputs": "a", "dimensions": 18446744073709551615})", 4, qwen_model()).status == 422);
  CHECK(error_of(R"({"inputs": "a", "dimensions": 32})").message == "'dimensions' is 32: expected one of 64");
  CHECK(error_of(R"({"inputs": "a", "dimensions": 16.0})", 4, gemma_model()).message ==
        R"(field "dimensions" must be an integer, found number)");
  CHECK(error_of(R"({"inputs": "a", "dimensions": "16"})", 4, gemma_model()).status == 422);
  CHECK(error_of(R"({"inputs": "a", "dimensions": true})", 4, gemma_model()).status == 422);
}

TEST_CASE("truncate_rows() keeps each row's first n numbers and normalises them again") {
  const std::vector<float> v = {3, 4, 12, 0, /* row 2 */ 0, 0, 1, 0};
  const auto out = embbench::truncate_rows(v, 2, 4, 2);
  REQUIRE(out.size() == 4);
  CHECK(out[0] == doctest::Approx(0.6));
  CHECK(out[1] == doctest::Approx(0.8));
  CHECK(out[2] == 0.0f);  // a zero row stays zero, not NaN
  CHECK(out[3] == 0.0f);
}
