#include <doctest/doctest.h>

#include <string>

#include "tokenizer.h"
#include "unicode.h"

using embbench::Tokenizer;
using embbench::TokenizerError;
using Ids = std::vector<int64_t>;

namespace {

const char* kBert = R"({
  "added_tokens": [
    {"id": 0, "content": "[PAD]", "normalized": false, "special": true},
    {"id": 1, "content": "[UNK]", "normalized": false, "special": true},
    {"id": 2, "content": "[CLS]", "normalized": false, "special": true},
    {"id": 3, "content": "[SEP]", "normalized": false, "special": true}],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                 "strip_accents": null, "lowercase": true},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
               {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                       "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 10,
            "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "hello": 4, "world": 5, "##s": 6,
                      ",": 7, "un": 8, "##aff": 9, "##able": 10, "cafe": 11, "中": 12, "文": 13, "!": 14}}
})";

// A Unigram model with an XLM-R-like pipeline: Replace(" {2,}"), Metaspace, <s> ... </s>.
const char* kUnigram = R"({
  "added_tokens": [
    {"id": 0, "content": "<s>", "normalized": false, "special": true},
    {"id": 1, "content": "<pad>", "normalized": false, "special": true},
    {"id": 2, "content": "</s>", "normalized": false, "special": true},
    {"id": 3, "content": "<unk>", "normalized": false, "special": true},
    {"id": 9, "content": "<mask>", "lstrip": true, "normalized": true, "special": true}],
  "normalizer": {"type": "Sequence", "normalizers": [
    {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
  "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true},
  "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]},
  "model": {"type": "Unigram", "unk_id": 3, "byte_fallback": false,
            "vocab": [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0],
                      ["\u2581", -2.0], ["\u2581ab", -2.5], ["a", -3.0], ["b", -3.0], ["\u2581a", -1.0],
                      ["<mask>", 0.0]]}
})";

}  // namespace

TEST_CASE("WordPiece lowercases, splits punctuation and marks continuations") {
  const auto t = Tokenizer::from_json(kBert, "bert");
  CHECK(t.encode("Hello, worlds!").ids == Ids{2, 4, 7, 5, 6, 14, 3});
  CHECK(t.encode("unaffable").ids == Ids{2, 8, 9, 10, 3});
  CHECK(t.pad_id() == 0);
}

TEST_CASE("BertNormalizer strips accents, pads CJK and drops control characters") {
  const auto t = Tokenizer::from_json(kBert, "bert");
  CHECK(t.encode("Caf\xC3\xA9").ids == Ids{2, 11, 3});          // Café (precomposed)
  CHECK(t.encode("Cafe\xCC\x81").ids == Ids{2, 11, 3});         // Cafe + combining acute
  CHECK(t.encode("\xE4\xB8\xAD\xE6\x96\x87").ids == Ids{2, 12, 13, 3});  // 中文 splits per ideograph
  CHECK(t.encode(std::string("hel\x07lo")).ids == Ids{2, 4, 3});  // BEL is removed, not a split
  CHECK(t.encode("hello\xC2\x85world").ids == Ids{2, 1, 3});  // NEL (Cc) is removed: one unknown word
}

TEST_CASE("WordPiece answers [UNK] for a whole word with an unknown part or too many characters") {
  const auto t = Tokenizer::from_json(kBert, "bert");
  CHECK(t.encode("hellox world").ids == Ids{2, 1, 5, 3});
  CHECK(t.encode("unaffableunaffable").ids == Ids{2, 1, 3});  // 18 chars > max_input_chars_per_word 10
}

TEST_CASE("encode() keeps special tokens and truncates the body to max_length") {
  const auto t = Tokenizer::from_json(kBert, "bert");
  CHECK(t.encode("").ids == Ids{2, 3});
  const auto e = t.encode("hello world hello world", 4);
  CHECK(e.ids == Ids{2, 4, 5, 3});
  CHECK(e.full_length == 6);
  CHECK(t.encode("[CLS] hello").ids == Ids{2, 2, 4, 3});  // an added token in the text is extracted
}

TEST_CASE("Unigram picks the best-scoring segmentation and fuses unknown characters") {
  const auto t = Tokenizer::from_json(kUnigram, "unigram");
  CHECK(t.encode("ab").ids == Ids{0, 5, 2});          // "▁ab" (-2.5) beats "▁a"+"b" (-4)
  CHECK(t.encode("a").ids == Ids{0, 8, 2});
  CHECK(t.encode("xyz").ids == Ids{0, 4, 3, 2});      // "▁" then one fused <unk> for "xyz"
  CHECK(t.encode("a  ab").ids == Ids{0, 8, 5, 2});    // runs of spaces collapse
  CHECK(t.encode("a ").ids == Ids{0, 8, 4, 2});       // a trailing space is a "▁" word
  CHECK(t.pad_id() == 1);
}

TEST_CASE("A normalized added token with lstrip takes the whitespace before it") {
  const auto t = Tokenizer::from_json(kUnigram, "unigram");
  CHECK(t.encode("a <mask>").ids == Ids{0, 8, 9, 2});
}

TEST_CASE("Unsupported tokenizer.json parts are refused by name") {
  CHECK_THROWS_WITH_AS(Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}})", "x.json"),
                       doctest::Contains("model type \"BPE\" is not supported"), TokenizerError);
  CHECK_THROWS_WITH_AS(Tokenizer::from_json(R"({"normalizer": {"type": "Replace", "pattern": {"Regex": "a+"},
      "content": ""}, "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0}}})", "y.json"),
                       doctest::Contains("y.json: normalizer Replace regex"), TokenizerError);
  CHECK_THROWS_AS(Tokenizer::from_json("{not json", "z.json"), TokenizerError);
}

TEST_CASE("An empty Precompiled charsmap changes nothing") {
  const auto t = Tokenizer::from_json(R"({"normalizer": {"type": "Precompiled", "precompiled_charsmap": ""},
      "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0, "\uff21": 1}}})", "p.json");
  CHECK(t.encode("\xEF\xBC\xA1").ids == Ids{1});  // fullwidth A stays fullwidth
}

TEST_CASE("graphemes() keeps combining marks and emoji sequences together") {
  const auto g = embbench::unicode::graphemes("e\xCC\x81x\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD");  // é x 👍🏽
  REQUIRE(g.size() == 3);
  CHECK(g[0] == "e\xCC\x81");
  CHECK(g[2] == "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD");
}

TEST_CASE("normalize() composes and decomposes") {
  using embbench::unicode::Form;
  CHECK(embbench::unicode::normalize(U"e\u0301", Form::NFC) == U"\u00e9");
  CHECK(embbench::unicode::normalize(U"\u00e9", Form::NFD) == U"e\u0301");
  CHECK(embbench::unicode::normalize(U"\uFB01", Form::NFKC) == U"fi");
}
