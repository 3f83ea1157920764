#include "embed_request.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

namespace embbench {

using nlohmann::json;

namespace {

ApiError validation(std::string message) { return {422, "Validation", std::move(message)}; }

const char* type_name(const json& v) { return v.type_name(); }

}  // namespace

namespace {

// prompt_name: a key of the model's prompts; null means none.
std::optional<ApiError> read_prompt(const json& j, const ModelInfo& model, EmbedRequest& req) {
  const auto p = j.find("prompt_name");
  if (p == j.end() || p->is_null()) return std::nullopt;
  if (!p->is_string()) return validation(std::string("field \"prompt_name\" must be a string, found ") + type_name(*p));
  const std::string& name = p->get_ref<const std::string&>();
  for (const auto& [known, text] : model.prompts) {
    if (known == name) {
      req.prompt = text;
      return std::nullopt;
    }
  }
  std::string known;
  for (const auto& prompt : model.prompts) known += (known.empty() ? "" : ", ") + prompt.first;
  return validation("'prompt_name' is " + p->dump(-1, ' ', false, json::error_handler_t::replace) + ": " +
                    (known.empty() ? "the model has no prompts" : "the model's prompts are " + known));
}

// dimensions: a size the model supports; null means embedding_dim.
std::optional<ApiError> read_dimensions(const json& j, const ModelInfo& model, EmbedRequest& req) {
  const auto d = j.find("dimensions");
  if (d == j.end() || d->is_null()) return std::nullopt;
  if (!d->is_number_integer()) return validation(std::string("field \"dimensions\" must be an integer, found ") + type_name(*d));
  const bool fits = d->is_number_unsigned() || d->get<long long>() >= 0;
  const auto n = fits ? d->get<unsigned long long>() : 0;
  if (!fits || n > model.dimensions.max || !model.dimensions.allows(static_cast<std::size_t>(n))) {
    return validation("'dimensions' is " + d->dump() + ": expected " + model.dimensions.describe());
  }
  if (n != model.embedding_dim) req.dimensions = static_cast<std::size_t>(n);
  return std::nullopt;
}

}  // namespace

std::variant<EmbedRequest, ApiError> parse_embed_request(std::string_view body, std::size_t max_batch,
                                                         const ModelInfo& model) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    const std::string what = e.what();
    if (what.find("UTF-8") != std::string::npos) return validation("request body is not valid UTF-8: " + what);
    return validation("request body is not valid JSON: " + what);
  }
  if (!j.is_object()) return validation(std::string("request body must be a JSON object, found ") + type_name(j));

  EmbedRequest req;
  const auto in = j.find("inputs");
  if (in == j.end()) return validation("field \"inputs\" is missing");
  if (in->is_string()) {
    req.inputs.push_back(std::move(in->get_ref<std::string&>()));  // moved out of the parsed JSON, not copied
  } else if (in->is_array()) {
    if (in->empty()) return validation("field \"inputs\" is an empty list: expected 1 to " + std::to_string(max_batch) + " strings");
    if (in->size() > max_batch) {
      return ApiError{413, "PayloadTooLarge", "field \"inputs\" has " + std::to_string(in->size()) +
                                                  " texts, more than MAX_BATCH=" + std::to_string(max_batch)};
    }
    req.inputs.reserve(in->size());
    for (std::size_t i = 0; i < in->size(); ++i) {
      json& item = (*in)[i];
      if (!item.is_string()) {
        return validation("inputs[" + std::to_string(i) + "] must be a string, found " + type_name(item));
      }
      req.inputs.push_back(std::move(item.get_ref<std::string&>()));
    }
  } else {
    return validation(std::string("field \"inputs\" must be a string or a list of strings, found ") + type_name(*in));
  }

  if (const auto t = j.find("truncate"); t != j.end() && !t->is_null()) {
    if (!t->is_boolean()) return validation(std::string("field \"truncate\" must be a boolean, found ") + type_name(*t));
    req.truncate = t->get<bool>();
  }
  if (const auto n = j.find("normalize"); n != j.end() && !n->is_null()) {
    if (!n->is_boolean()) return validation(std::string("field \"normalize\" must be a boolean, found ") + type_name(*n));
    if (!n->get<bool>()) return validation("field \"normalize\" is false: this server's graphs end in L2 normalisation");
  }
  if (auto e = read_prompt(j, model, req)) return *e;
  if (auto e = read_dimensions(j, model, req)) return *e;
  return req;
}

std::vector<float> truncate_rows(const std::vector<float>& embeddings, std::size_t rows, std::size_t dim, std::size_t n) {
  std::vector<float> out(rows * n);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* src = embeddings.data() + r * dim;
    float* dst = out.data() + r * n;
    double sum = 0;
    for (std::size_t k = 0; k < n; ++k) sum += static_cast<double>(src[k]) * src[k];
    const double norm = std::sqrt(sum);
    for (std::size_t k = 0; k < n; ++k) dst[k] = norm > 0 ? static_cast<float>(src[k] / norm) : 0.0f;
  }
  return out;
}

bool is_json_content_type(std::string_view ct) {
  const auto semi = ct.find(';');
  std::string_view mime = ct.substr(0, semi);
  while (!mime.empty() && (mime.back() == ' ' || mime.back() == '\t')) mime.remove_suffix(1);
  while (!mime.empty() && (mime.front() == ' ' || mime.front() == '\t')) mime.remove_prefix(1);
  static constexpr std::string_view want = "application/json";
  if (mime.size() != want.size()) return false;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(mime[i])) != want[i]) return false;
  }
  return true;
}

std::string error_json(const ApiError& e) {
  return json{{"error", e.message}, {"error_type", e.type}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string embeddings_json(const float* data, std::size_t rows, std::size_t dim) {
  std::string out;
  out.reserve(rows * dim * 12 + 2);
  out.push_back('[');
  char buf[32];
  for (std::size_t r = 0; r < rows; ++r) {
    if (r) out.push_back(',');
    out.push_back('[');
    for (std::size_t d = 0; d < dim; ++d) {
      if (d) out.push_back(',');
      const float v = data[r * dim + d];  // finite: the handler refuses non-finite outputs before this
      const auto res = std::to_chars(buf, buf + sizeof(buf), v);
      out.append(buf, res.ptr);
    }
    out.push_back(']');
  }
  out.push_back(']');
  return out;
}

}  // namespace embbench
