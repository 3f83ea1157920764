// A tokenizer.json interpreter with token-id parity to HF `tokenizers` for the pipelines of the
// XLM-RoBERTa family (Precompiled charsmap, Metaspace, Unigram), the BERT family (BertNormalizer,
// BertPreTokenizer, WordPiece), Qwen3 (NFC, Split with Qwen2's regex, ByteLevel, byte-level BPE) and
// Gemma3 (Replace " " -> "▁", BPE with byte fallback). Anything else in a tokenizer.json is refused
// at load time by name, never approximated.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace embbench {

/// A tokenizer.json that cannot be loaded: the message names the file, the field and what was found.
class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Normalizer;
struct PreTokenizer;
struct Model;
struct AddedTokens;

/// Token ids of one text, special tokens included.
struct Encoding {
  std::vector<int64_t> ids;
  /// Tokens the text would have had without truncation (special tokens included).
  std::size_t full_length = 0;
};

class Tokenizer {
 public:
  /// Loads `path` (a HF tokenizer.json); throws TokenizerError. Without a padding section the pad comes
  /// from tokenizer_config.json's pad_token or config.json's pad_token_id beside it, as in the Python server.
  static Tokenizer from_file(const std::string& path);
  /// Parses tokenizer.json text; `origin` names it in errors.
  static Tokenizer from_json(std::string_view json_text, const std::string& origin);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  /// Encodes `text` with the post-processor's special tokens, keeping at most `max_length` ids
  /// (special tokens included; 0 = no limit). Thread-safe.
  Encoding encode(std::string_view text, std::size_t max_length = 0) const;

  /// The id padding uses: the padding section's, else the <pad> / [PAD] token's.
  int64_t pad_id() const { return pad_id_; }
  /// Special tokens the post-processor adds to one sequence.
  std::size_t num_special_tokens() const { return prefix_.size() + suffix_.size(); }
  /// The id of a token: an added token's, else the model vocabulary's.
  std::optional<int64_t> token_to_id(std::string_view token) const;
  /// The model type ("Unigram", "WordPiece", "BPE"), for /info.
  std::string model_type() const;

 private:
  Tokenizer();
  void tokenize_segment(std::string_view text, bool at_start, std::vector<int64_t>& out) const;

  std::unique_ptr<AddedTokens> added_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Model> model_;
  std::vector<int64_t> prefix_, suffix_;
  int64_t pad_id_ = 0;
  bool pad_from_padding_ = false;  // tokenizer.json's padding section named it
};

}  // namespace embbench
