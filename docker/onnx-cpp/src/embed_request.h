// POST /embed request validation and response bodies, apart from the HTTP layer so they test alone.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config.h"

namespace embbench {

/// An error answer: HTTP status, error_type and a message naming what was wrong.
struct ApiError {
  int status;
  std::string type;
  std::string message;
};

struct EmbedRequest {
  std::vector<std::string> inputs;
  bool truncate = true;
  /// prompt_name's text, prepended to every input before tokenization ("" for none).
  std::string prompt;
  /// dimensions: each row cut to this many numbers and normalised again (0: embedding_dim, unchanged).
  std::size_t dimensions = 0;
};

/// Validates a /embed body against the contract (422 Validation, 413 PayloadTooLarge); `prompt_name`
/// and `dimensions` against the model's prompts and sizes.
std::variant<EmbedRequest, ApiError> parse_embed_request(std::string_view body, std::size_t max_batch,
                                                         const ModelInfo& model);

/// Matryoshka: each of `rows` rows of `dim` numbers cut to its first `n`, then L2-normalised again
/// (a zero row stays zero).
std::vector<float> truncate_rows(const std::vector<float>& embeddings, std::size_t rows, std::size_t dim, std::size_t n);

/// True for `application/json`, parameters (`; charset=utf-8`) allowed, case-insensitive.
bool is_json_content_type(std::string_view content_type);

/// {"error": ..., "error_type": ...}
std::string error_json(const ApiError& e);

/// [[f, ...], ...] for `rows` rows of `dim` finite floats, shortest round-trip decimal form.
std::string embeddings_json(const float* data, std::size_t rows, std::size_t dim);

}  // namespace embbench
