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
  CHECK_THROWS_WITH_AS(Tokenizer::from_json(R"({"model": {"type": "WordLevel", "vocab": {}}})", "x.json"),
                       doctest::Contains("model type \"WordLevel\" is not supported"), TokenizerError);
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

namespace {

// A BPE over the letters a, b, c with the merges given (rank = position).
std::string bpe_json(const std::string& merges, const std::string& extra = "") {
  return R"({"model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false,
      "byte_fallback": false, "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "aa": 5, "abc": 6}, "merges": )" +
         merges + "}" + extra + "}";
}

// Qwen3's pipeline in miniature: NFC, Qwen2's Split regex, ByteLevel without its regex, a BPE over
// byte-level characters, <|endoftext|> appended by the post-processor.
const char* kQwen = R"json({
  "added_tokens": [{"id": 50, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false,
                    "normalized": false, "special": true}],
  "normalizer": {"type": "NFC"},
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
    "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [50], "tokens": ["<|endoftext|>"]}}},
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "", "end_of_word_suffix": "",
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": {"i": 0, "t": 1, "'": 2, "s": 3, "\u0120": 4, "h": 5, "\u00c3": 6, "\u00a9": 7, "t'": 8, "'s": 9,
                      "\u0120h": 10, "\u00c3\u00a9": 11, "\u010a": 12, "S": 13, "'S": 14, "1": 15, "it": 16},
            "merges": [["t", "'"], ["'", "s"], ["\u0120", "h"], ["\u00c3", "\u00a9"], ["'", "S"], ["i", "t"]]}
})json";

// Gemma3's pipeline in miniature: spaces become U+2581, a BPE with byte fallback and a fused <unk>,
// <bos> ... <eos> from the post-processor.
const char* kGemma = R"json({
  "added_tokens": [
    {"id": 0, "content": "<pad>", "normalized": false, "special": true},
    {"id": 1, "content": "<eos>", "normalized": false, "special": true},
    {"id": 2, "content": "<bos>", "normalized": false, "special": true},
    {"id": 3, "content": "<unk>", "normalized": false, "special": true}],
  "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
  "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": false},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
               {"SpecialToken": {"id": "<eos>", "type_id": 0}}],
    "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]},
                       "<eos>": {"id": "<eos>", "ids": [1], "tokens": ["<eos>"]}}},
  "decoder": {"type": "Sequence", "decoders": []},
  "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<0xC3>": 4, "<0xA9>": 5, "a": 6, "b": 7,
                      "\u2581": 8, "\u2581a": 9, "ab": 10, "\u2581ab": 11},
            "merges": [["\u2581", "a"], ["a", "b"], ["\u2581a", "b"]]}
})json";

}  // namespace

TEST_CASE("BPE merges the lowest-ranked pair first, the leftmost among equals") {
  CHECK(Tokenizer::from_json(bpe_json(R"([["b", "c"], ["a", "b"]])"), "bpe").encode("abc").ids == Ids{0, 4});
  CHECK(Tokenizer::from_json(bpe_json(R"([["a", "b"], ["b", "c"]])"), "bpe").encode("abc").ids == Ids{3, 2});
  CHECK(Tokenizer::from_json(bpe_json(R"(["a b", "ab c"])"), "bpe").encode("abc").ids == Ids{6});  // "a b" strings
  CHECK(Tokenizer::from_json(bpe_json(R"([["a", "a"]])"), "bpe").encode("aaa").ids == Ids{5, 0});
  CHECK(Tokenizer::from_json(bpe_json(R"([["a", "a"]])"), "bpe").encode("aaaa").ids == Ids{5, 5});
}

TEST_CASE("BPE drops unknown characters without an unk token; ignore_merges takes a whole-word token") {
  CHECK(Tokenizer::from_json(bpe_json("[]"), "bpe").encode("axb").ids == Ids{0, 1});
  const std::string ignore = R"({"model": {"type": "BPE", "ignore_merges": true, "vocab": {"a": 0, "b": 1, "c": 2, "abc": 3},
      "merges": []}})";
  CHECK(Tokenizer::from_json(ignore, "bpe").encode("abc").ids == Ids{3});
}

TEST_CASE("A Qwen3-style tokenizer splits with Qwen2's regex, maps bytes and appends <|endoftext|>") {
  const auto t = Tokenizer::from_json(kQwen, "qwen");
  CHECK(t.encode("it's").ids == Ids{16, 9, 50});   // "it" + "'s": the contraction is its own word, "t'" never merges
  CHECK(t.encode("IT'S").ids == Ids{14, 50});      // I and T are not in this vocab (dropped); 'S matches case-insensitively
  CHECK(t.encode(" h").ids == Ids{10, 50});        // the space joins the letters: "\u0120h"
  CHECK(t.encode("e\xCC\x81").ids == Ids{11, 50});  // NFC composes e + U+0301 into é first
  CHECK(t.encode("\xC3\xA9").ids == Ids{11, 50});  // é = C3 A9 -> "\u00c3\u00a9"
  CHECK(t.encode("1\n").ids == Ids{15, 12, 50});   // a digit, then "\n" -> "\u010a"
  CHECK(t.encode("it<|endoftext|>").ids == Ids{16, 50, 50});
  const auto e = t.encode("it's it's", 3);
  CHECK(e.ids == Ids{16, 9, 50});                  // truncation keeps room for the appended token
  CHECK(e.full_length == 6);
  CHECK(t.model_type() == "BPE");
  CHECK(t.token_to_id("<|endoftext|>") == 50);
}

TEST_CASE("A Gemma3-style tokenizer replaces spaces, falls back to bytes and wraps in <bos> ... <eos>") {
  const auto t = Tokenizer::from_json(kGemma, "gemma");
  CHECK(t.encode("ab").ids == Ids{2, 10, 1});
  CHECK(t.encode(" ab").ids == Ids{2, 11, 1});
  CHECK(t.encode("a ab").ids == Ids{2, 6, 11, 1});
  CHECK(t.encode("\xC3\xA9").ids == Ids{2, 4, 5, 1});  // é: its two byte tokens
  CHECK(t.encode("xyz a").ids == Ids{2, 3, 9, 1});       // unknown x, y, z: one fused <unk>
  CHECK(t.encode("").ids == Ids{2, 1});
  CHECK(t.pad_id() == 0);
}

TEST_CASE("BPE and Split parts a file does not use as Qwen3 or Gemma3 do are refused by name") {
  CHECK_THROWS_WITH_AS(Tokenizer::from_json(R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\w+"},
      "behavior": "Isolated", "invert": false}, "model": {"type": "BPE", "vocab": {}, "merges": []}})", "s.json"),
                       doctest::Contains("s.json: pre_tokenizer Split regex \"\\w+\" is not supported"), TokenizerError);
  CHECK_THROWS_WITH_AS(Tokenizer::from_json(R"({"model": {"type": "BPE", "dropout": 0.1, "vocab": {}, "merges": []}})", "d.json"),
                       doctest::Contains("model BPE dropout 0.1 is not supported"), TokenizerError);
  CHECK_THROWS_WITH_AS(Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "b"]]}})", "m.json"),
                       doctest::Contains("model BPE merges[0]: \"b\" is not in its vocab"), TokenizerError);
  CHECK_THROWS_WITH_AS(Tokenizer::from_json(R"({"pre_tokenizer": {"type": "Split", "pattern": {"String": " "},
      "behavior": "Sideways"}, "model": {"type": "BPE", "vocab": {}, "merges": []}})", "b.json"),
                       doctest::Contains("pre_tokenizer Split behavior \"Sideways\" is unknown"), TokenizerError);
}

TEST_CASE("Split behaviours keep, drop or merge the matches as HF does") {
  // Words become visible through a BPE that can only merge "a" + "b" inside one word.
  auto ids = [](const char* behavior, bool invert, const char* text) {
    const std::string j = std::string(R"({"pre_tokenizer": {"type": "Split", "pattern": {"String": "b"}, "behavior": ")") +
                          behavior + R"(", "invert": )" + (invert ? "true" : "false") +
                          R"(}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "ba": 3},
                              "merges": [["a", "b"], ["b", "a"]]}})";
    return Tokenizer::from_json(j, "split").encode(text).ids;
  };
  CHECK(ids("Isolated", false, "aba") == Ids{0, 1, 0});
  CHECK(ids("Removed", false, "aba") == Ids{0, 0});
  CHECK(ids("MergedWithPrevious", false, "aba") == Ids{2, 0});
  CHECK(ids("MergedWithNext", false, "aba") == Ids{0, 3});
  CHECK(ids("Contiguous", false, "abba") == Ids{0, 1, 1, 0});
  CHECK(ids("Removed", true, "aba") == Ids{1});
}

TEST_CASE("Prepend adds its text before a non-empty string only (older Gemma and Llama files)") {
  const auto t = Tokenizer::from_json(R"json({"normalizer": {"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "model": {"type": "BPE", "vocab": {"\u2581": 0, "a": 1, "\u2581a": 2}, "merges": [["\u2581", "a"]]}})json", "prepend");
  CHECK(t.encode("a a").ids == Ids{2, 2});
  CHECK(t.encode("").ids.empty());
}
