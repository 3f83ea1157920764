// Each stage mirrors the HF `tokenizers` component of the same name, quirks included, because
// parity is judged on token ids, not on what would be tidier.
#include "tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "unicode.h"

namespace embbench {

using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& origin, const std::string& what) {
  throw TokenizerError(origin + ": " + what);
}

const json& require(const json& obj, const char* key, const std::string& origin, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) fail(origin, where + " has no \"" + key + "\"");
  return *it;
}

// Hash map from string to id that answers string_view lookups without allocating.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using IdMap = std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>>;

std::string_view rtrim_ws(std::string_view s) {
  // Strips Unicode whitespace at the end (decoding backwards by lead bytes).
  while (!s.empty()) {
    std::size_t i = s.size() - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    std::u32string cp;
    if (!unicode::decode(s.substr(i), cp) || cp.size() != 1 || !unicode::is_whitespace(cp[0])) break;
    s.remove_suffix(s.size() - i);
  }
  return s;
}

std::string_view ltrim_ws(std::string_view s) {
  while (!s.empty()) {
    const std::size_t n = std::min(unicode::utf8_len(static_cast<unsigned char>(s[0])), s.size());
    std::u32string cp;
    if (!unicode::decode(s.substr(0, n), cp) || cp.size() != 1 || !unicode::is_whitespace(cp[0])) break;
    s.remove_prefix(n);
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Normalizers

struct Normalizer {
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};

namespace {

struct SequenceNormalizer : Normalizer {
  std::vector<std::unique_ptr<Normalizer>> parts;
  void normalize(std::string& s) const override {
    for (const auto& p : parts) p->normalize(s);
  }
};

// sentencepiece's precompiled charsmap: [u32 trie bytes][Darts double-array trie][NUL-separated
// replacement strings]. HF applies it per grapheme cluster: a cluster under 6 bytes whose prefix
// hits the trie is replaced whole by the first (shortest) match; otherwise each code point alone.
struct PrecompiledNormalizer : Normalizer {
  std::vector<uint32_t> trie;
  std::string pool;

  static bool has_leaf(uint32_t u) { return ((u >> 8) & 1) != 0; }
  static uint32_t value(uint32_t u) { return u & ((1u << 31) - 1); }
  static uint32_t label(uint32_t u) { return u & ((1u << 31) | 0xFFu); }
  static uint32_t offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

  // The replacement for the shortest trie key that prefixes `chunk`, if any.
  bool transform(std::string_view chunk, std::string_view& out) const {
    if (trie.empty()) return false;
    std::size_t node = 0;
    node ^= offset(trie[0]);
    for (unsigned char c : chunk) {
      if (c == 0) return false;
      node ^= c;
      if (node >= trie.size()) return false;
      const uint32_t unit = trie[node];
      if (label(unit) != c) return false;
      node ^= offset(unit);
      if (has_leaf(unit)) {
        if (node >= trie.size()) return false;
        const std::size_t start = value(trie[node]);
        if (start >= pool.size()) return false;
        std::size_t end = pool.find('\0', start);
        if (end == std::string::npos) end = pool.size();
        out = std::string_view(pool).substr(start, end - start);
        return true;
      }
    }
    return false;
  }

  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    for (std::string_view g : unicode::graphemes(s)) {
      std::string_view rep;
      if (g.size() < 6 && transform(g, rep)) {
        out.append(rep);
        continue;
      }
      for (std::size_t i = 0; i < g.size();) {
        const std::size_t n = std::min(unicode::utf8_len(static_cast<unsigned char>(g[i])), g.size() - i);
        const std::string_view part = g.substr(i, n);
        if (transform(part, rep)) out.append(rep);
        else out.append(part);
        i += n;
      }
    }
    s.swap(out);
  }
};

struct StripNormalizer : Normalizer {
  bool left = false, right = false;
  void normalize(std::string& s) const override {
    std::string_view v = s;
    if (right) v = rtrim_ws(v);
    if (left) v = ltrim_ws(v);
    s = std::string(v);
  }
};

// Replace with a literal pattern, or with the one regex tokenizer.json files of these families use
// (" {2,}"). Other regexes are refused at load time rather than run through a different engine.
struct ReplaceNormalizer : Normalizer {
  std::string pattern, content;
  bool space_runs = false;
  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    if (space_runs) {
      for (std::size_t i = 0; i < s.size();) {
        if (s[i] == ' ') {
          std::size_t j = i;
          while (j < s.size() && s[j] == ' ') ++j;
          if (j - i >= 2) out.append(content);
          else out.push_back(' ');
          i = j;
        } else {
          out.push_back(s[i++]);
        }
      }
    } else {
      if (pattern.empty()) return;
      std::size_t i = 0;
      for (std::size_t j; (j = s.find(pattern, i)) != std::string::npos; i = j + pattern.size()) {
        out.append(s, i, j - i);
        out.append(content);
      }
      out.append(s, i, std::string::npos);
    }
    s.swap(out);
  }
};

std::u32string decode_or_throw(std::string_view s) {
  std::u32string cps;
  if (!unicode::decode(s, cps)) throw std::invalid_argument("text is not valid UTF-8");
  return cps;
}

struct BertNormalizer : Normalizer {
  bool clean_text = true, handle_chinese_chars = true, strip_accents = true, lowercase = true;
  void normalize(std::string& s) const override {
    std::u32string cps = decode_or_throw(s), out;
    out.reserve(cps.size());
    if (clean_text) {
      // Drop NUL, U+FFFD and category C (tab, LF and CR excepted: U+0085 and VT go), then map
      // the remaining whitespace to a space.
      for (char32_t c : cps) {
        const bool tab_lf_cr = c == U'\t' || c == U'\n' || c == U'\r';
        if (c == 0 || c == 0xFFFD || (!tab_lf_cr && unicode::is_other(c))) continue;
        out.push_back(tab_lf_cr || unicode::is_whitespace(c) ? U' ' : c);
      }
      cps.swap(out);
      out.clear();
    }
    if (handle_chinese_chars) {
      for (char32_t c : cps) {
        if (unicode::is_cjk(c)) {
          out.push_back(U' ');
          out.push_back(c);
          out.push_back(U' ');
        } else {
          out.push_back(c);
        }
      }
      cps.swap(out);
      out.clear();
    }
    if (strip_accents) {
      for (char32_t c : unicode::normalize(cps, unicode::Form::NFD)) {
        if (!unicode::is_nonspacing_mark(c)) out.push_back(c);
      }
      cps.swap(out);
      out.clear();
    }
    if (lowercase) {
      for (char32_t c : cps) unicode::append_lowercase(out, c);
      cps.swap(out);
    }
    s = unicode::encode(cps);
  }
};

struct LowercaseNormalizer : Normalizer {
  void normalize(std::string& s) const override {
    std::u32string out;
    for (char32_t c : decode_or_throw(s)) unicode::append_lowercase(out, c);
    s = unicode::encode(out);
  }
};

struct StripAccentsNormalizer : Normalizer {
  void normalize(std::string& s) const override {
    std::u32string out;
    for (char32_t c : decode_or_throw(s)) if (!unicode::is_nonspacing_mark(c)) out.push_back(c);
    s = unicode::encode(out);
  }
};

// Prepend: `prepend` before a non-empty string (sentencepiece's dummy prefix in Gemma-style files).
struct PrependNormalizer : Normalizer {
  std::string prepend;
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prepend);
  }
};

struct FormNormalizer : Normalizer {
  unicode::Form form = unicode::Form::NFC;
  void normalize(std::string& s) const override { s = unicode::encode(unicode::normalize(decode_or_throw(s), form)); }
};

std::string base64_decode(std::string_view in, const std::string& origin) {
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    if (ch == '=' || ch == '\n' || ch == '\r') continue;
    const auto pos = alphabet.find(ch);
    if (pos == std::string::npos) fail(origin, "precompiled_charsmap is not base64");
    acc = (acc << 6) | static_cast<uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& origin) {
  if (j.is_null()) return nullptr;
  const std::string type = require(j, "type", origin, "normalizer").get<std::string>();
  if (type == "Sequence") {
    auto seq = std::make_unique<SequenceNormalizer>();
    for (const auto& part : require(j, "normalizers", origin, "normalizer Sequence")) {
      if (auto n = make_normalizer(part, origin)) seq->parts.push_back(std::move(n));
    }
    return seq;
  }
  if (type == "Precompiled") {
    auto n = std::make_unique<PrecompiledNormalizer>();
    const json& map = require(j, "precompiled_charsmap", origin, "normalizer Precompiled");
    if (map.is_null()) return n;  // no charsmap changes nothing
    const std::string blob = base64_decode(map.get<std::string>(), origin);
    if (blob.empty()) return n;
    if (blob.size() < 4) fail(origin, "precompiled_charsmap is shorter than its header");
    uint32_t trie_bytes;
    std::memcpy(&trie_bytes, blob.data(), 4);  // little-endian, as x86-64 is
    if (trie_bytes % 4 != 0 || 4 + static_cast<std::size_t>(trie_bytes) > blob.size()) {
      fail(origin, "precompiled_charsmap trie size " + std::to_string(trie_bytes) + " does not fit its " +
                       std::to_string(blob.size()) + " bytes");
    }
    n->trie.resize(trie_bytes / 4);
    std::memcpy(n->trie.data(), blob.data() + 4, trie_bytes);
    n->pool = blob.substr(4 + trie_bytes);
    return n;
  }
  if (type == "Strip") {
    auto n = std::make_unique<StripNormalizer>();
    n->left = j.value("strip_left", false);
    n->right = j.value("strip_right", false);
    return n;
  }
  if (type == "Replace") {
    auto n = std::make_unique<ReplaceNormalizer>();
    const json& pat = require(j, "pattern", origin, "normalizer Replace");
    n->content = require(j, "content", origin, "normalizer Replace").get<std::string>();
    if (pat.contains("String")) {
      n->pattern = pat["String"].get<std::string>();
    } else if (pat.contains("Regex")) {
      const std::string re = pat["Regex"].get<std::string>();
      if (re != " {2,}") fail(origin, "normalizer Replace regex \"" + re + "\" is not supported (only \" {2,}\")");
      n->space_runs = true;
    } else {
      fail(origin, "normalizer Replace pattern is neither String nor Regex");
    }
    return n;
  }
  if (type == "BertNormalizer") {
    auto n = std::make_unique<BertNormalizer>();
    n->clean_text = j.value("clean_text", true);
    n->handle_chinese_chars = j.value("handle_chinese_chars", true);
    n->lowercase = j.value("lowercase", true);
    const auto sa = j.find("strip_accents");
    n->strip_accents = (sa == j.end() || sa->is_null()) ? n->lowercase : sa->get<bool>();
    return n;
  }
  if (type == "Prepend") {
    auto n = std::make_unique<PrependNormalizer>();
    n->prepend = require(j, "prepend", origin, "normalizer Prepend").get<std::string>();
    return n;
  }
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    auto n = std::make_unique<FormNormalizer>();
    n->form = type == "NFC" ? unicode::Form::NFC : type == "NFD" ? unicode::Form::NFD
            : type == "NFKC" ? unicode::Form::NFKC : unicode::Form::NFKD;
    return n;
  }
  fail(origin, "normalizer type \"" + type + "\" is not supported");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers: split a normalized segment into words.

struct Word {
  std::string text;
  bool at_start;  // begins at offset 0 of the original input (Metaspace prepend_scheme "first")
};

struct PreTokenizer {
  virtual ~PreTokenizer() = default;
  virtual void split(std::vector<Word>& words) const = 0;
};

namespace {

// Splits every word at code points for which `is_delim` holds; delimiters are dropped
// (isolate = false) or kept as words of their own (isolate = true). Empty words vanish, as in HF.
template <class Pred>
void split_words(std::vector<Word>& words, Pred is_delim, bool isolate) {
  std::vector<Word> out;
  for (Word& w : words) {
    const std::u32string cps = decode_or_throw(w.text);
    std::string cur;
    bool first = w.at_start;
    auto flush = [&] {
      if (!cur.empty()) out.push_back({std::move(cur), first});
      cur.clear();
      first = false;
    };
    for (char32_t c : cps) {
      if (is_delim(c)) {
        flush();
        if (isolate) {
          std::string d;
          unicode::append_utf8(d, c);
          out.push_back({std::move(d), false});
        }
        first = false;
      } else {
        unicode::append_utf8(cur, c);
      }
    }
    flush();
  }
  words.swap(out);
}

struct SequencePreTokenizer : PreTokenizer {
  std::vector<std::unique_ptr<PreTokenizer>> parts;
  void split(std::vector<Word>& words) const override {
    for (const auto& p : parts) p->split(words);
  }
};

struct WhitespaceSplitPreTokenizer : PreTokenizer {
  void split(std::vector<Word>& words) const override {
    split_words(words, [](char32_t c) { return unicode::is_whitespace(c); }, false);
  }
};

struct BertPreTokenizer : PreTokenizer {
  void split(std::vector<Word>& words) const override {
    split_words(words, [](char32_t c) { return unicode::is_whitespace(c); }, false);
    split_words(words, [](char32_t c) { return unicode::is_bert_punctuation(c); }, true);
  }
};

struct MetaspacePreTokenizer : PreTokenizer {
  enum class Prepend { Always, First, Never };
  std::string replacement;
  Prepend prepend = Prepend::Always;
  bool split_words_ = true;

  void split(std::vector<Word>& words) const override {
    std::vector<Word> out;
    for (Word& w : words) {
      std::string s;
      s.reserve(w.text.size() + 8);
      for (char ch : w.text) {
        if (ch == ' ') s.append(replacement);
        else s.push_back(ch);
      }
      const bool starts = s.compare(0, replacement.size(), replacement) == 0;
      // HF's prepend is a no-op on an empty string.
      if (!s.empty() && !starts && (prepend == Prepend::Always || (prepend == Prepend::First && w.at_start))) {
        s.insert(0, replacement);
      }
      if (!split_words_) {
        if (!s.empty()) out.push_back({std::move(s), w.at_start});
        continue;
      }
      // MergedWithNext: every replacement character begins a new word.
      std::size_t begin = 0;
      bool first = w.at_start;
      for (std::size_t pos = s.find(replacement, 1); pos != std::string::npos;
           pos = s.find(replacement, pos + replacement.size())) {
        out.push_back({s.substr(begin, pos - begin), first});
        first = false;
        begin = pos;
      }
      if (begin < s.size()) out.push_back({s.substr(begin), first});
    }
    words.swap(out);
  }
};

// ---- Split and ByteLevel: the pre-tokenizers of byte-level BPE (Qwen3) and Gemma3 files.

// A word as code points with their classes and byte offsets, for the hand-written regex matchers.
struct CodePoints {
  enum : uint8_t { kLetter = 1, kNumber = 2, kSpace = 4 };
  std::u32string cp;
  std::vector<std::size_t> offset;  // byte offset of each code point, then the word's length
  std::vector<uint8_t> cls;

  explicit CodePoints(std::string_view s) {
    cp = decode_or_throw(s);
    offset.reserve(cp.size() + 1);
    cls.reserve(cp.size());
    std::size_t at = 0;
    for (char32_t c : cp) {
      offset.push_back(at);
      at += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
      cls.push_back(static_cast<uint8_t>((unicode::is_letter(c) ? kLetter : 0) | (unicode::is_number(c) ? kNumber : 0) |
                                         (unicode::is_whitespace(c) ? kSpace : 0)));
    }
    offset.push_back(at);
  }
  std::size_t size() const { return cp.size(); }
  bool is(std::size_t i, uint8_t c) const { return i < cls.size() && (cls[i] & c) != 0; }
  // [^\s\p{L}\p{N}]
  bool other(std::size_t i) const { return i < cls.size() && cls[i] == 0; }
  bool cr_lf(std::size_t i) const { return i < cp.size() && (cp[i] == U'\r' || cp[i] == U'\n'); }
  std::size_t run(std::size_t i, uint8_t c) const {
    while (is(i, c)) ++i;
    return i;
  }
  std::size_t other_run(std::size_t i) const {
    while (other(i)) ++i;
    return i;
  }
};

// The contraction ('s 't 're 've 'm 'll 'd) after the apostrophe at i: its length in code points, 0 if
// none. `fold`: Oniguruma's (?i:...), where ASCII letters match either case and U+017F (long s) folds to s.
std::size_t contraction(const CodePoints& t, std::size_t i, bool fold) {
  auto is = [&](std::size_t k, char lower) {
    if (i + k >= t.size()) return false;
    const char32_t c = t.cp[i + k];
    if (c == static_cast<char32_t>(lower)) return true;
    if (!fold) return false;
    return c == static_cast<char32_t>(lower - 'a' + 'A') || (lower == 's' && c == 0x17F);
  };
  if (is(1, 's') || is(1, 't') || is(1, 'm') || is(1, 'd')) return 2;
  if ((is(1, 'r') || is(1, 'v')) && is(2, 'e')) return 3;
  if (is(1, 'l') && is(2, 'l')) return 3;
  return 0;
}

// `\s+(?!\S)|\s+` at i (a whitespace code point): the run, less its last space when a non-space follows.
std::size_t match_spaces(const CodePoints& t, std::size_t i) {
  const std::size_t w = t.run(i, CodePoints::kSpace);
  return (w < t.size() && w - i >= 2) ? w - 1 : w;
}

// GPT-2's pattern (ByteLevel's use_regex): 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
std::size_t match_gpt2(const CodePoints& t, std::size_t i) {
  if (t.cp[i] == U'\'') {
    if (const std::size_t k = contraction(t, i, false)) return i + k;
  }
  const std::size_t s = (t.cp[i] == U' ' && i + 1 < t.size()) ? i + 1 : i;  // the optional space
  if (t.is(s, CodePoints::kLetter)) return t.run(s, CodePoints::kLetter);
  if (t.is(s, CodePoints::kNumber)) return t.run(s, CodePoints::kNumber);
  if (t.other(s)) return t.other_run(s);
  return match_spaces(t, i);
}

// Qwen2's pattern (Qwen3 uses it too):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
std::size_t match_qwen2(const CodePoints& t, std::size_t i) {
  const char32_t c = t.cp[i];
  if (c == U'\'') {
    if (const std::size_t k = contraction(t, i, true)) return i + k;
  }
  const bool letter = t.is(i, CodePoints::kLetter), number = t.is(i, CodePoints::kNumber);
  // [^\r\n\p{L}\p{N}]?\p{L}+ : one leading code point that is none of those, if letters follow it
  if (!letter && !number && !t.cr_lf(i) && t.is(i + 1, CodePoints::kLetter)) return t.run(i + 1, CodePoints::kLetter);
  if (letter) return t.run(i, CodePoints::kLetter);
  if (number) return i + 1;
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  const std::size_t s = (c == U' ' && t.other(i + 1)) ? i + 1 : i;
  if (t.other(s)) {
    std::size_t e = t.other_run(s);
    while (t.cr_lf(e)) ++e;
    return e;
  }
  // \s*[\r\n]+ : the whitespace run up to its last CR or LF
  const std::size_t w = t.run(i, CodePoints::kSpace);
  for (std::size_t k = w; k > i; --k) {
    if (t.cr_lf(k - 1)) return k;
  }
  return match_spaces(t, i);
}

// The regexes a Split pre-tokenizer may name: the exact pattern strings of GPT-2's and Qwen2's files.
// Others are refused at load time rather than run through a different regex engine.
using RegexMatcher = std::size_t (*)(const CodePoints&, std::size_t);
constexpr std::string_view kGpt2Regex = R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kQwen2Regex =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// A piece of a word: [start, end) bytes, and whether it is a match of the split pattern.
struct Piece {
  std::size_t start, end;
  bool match;
};

// The matches of a known regex and the text between them, covering the word (HF's find_matches).
std::vector<Piece> regex_pieces(std::string_view s, RegexMatcher matcher) {
  std::vector<Piece> out;
  const CodePoints t(s);
  for (std::size_t i = 0; i < t.size();) {
    const std::size_t e = matcher(t, i);  // every code point starts a non-empty match in these patterns
    out.push_back({t.offset[i], t.offset[e], true});
    i = e;
  }
  return out;
}

std::vector<Piece> literal_pieces(std::string_view s, const std::string& pattern) {
  std::vector<Piece> out;
  if (pattern.empty()) return {{0, s.size(), false}};
  std::size_t prev = 0;
  for (std::size_t at; (at = s.find(pattern, prev)) != std::string_view::npos; prev = at + pattern.size()) {
    if (at != prev) out.push_back({prev, at, false});
    out.push_back({at, at + pattern.size(), true});
  }
  if (prev != s.size()) out.push_back({prev, s.size(), false});
  return out;
}

// HF's SplitDelimiterBehavior, applied to pieces: what becomes a word, and what is removed.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

std::vector<Piece> apply_behavior(std::vector<Piece> pieces, SplitBehavior b) {
  // In the result, `match` means "removed".
  std::vector<Piece> out;
  bool previous = false;
  switch (b) {
    case SplitBehavior::Isolated:
      for (auto& p : pieces) out.push_back({p.start, p.end, false});
      return out;
    case SplitBehavior::Removed:
      return pieces;
    case SplitBehavior::Contiguous:
      for (auto& p : pieces) {
        if (p.match == previous && !out.empty()) out.back().end = p.end;
        else out.push_back({p.start, p.end, false});
        previous = p.match;
      }
      return out;
    case SplitBehavior::MergedWithPrevious:
      for (auto& p : pieces) {
        if (p.match && !previous && !out.empty()) out.back().end = p.end;
        else out.push_back({p.start, p.end, false});
        previous = p.match;
      }
      return out;
    case SplitBehavior::MergedWithNext:
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        if (it->match && !previous && !out.empty()) out.back().start = it->start;
        else out.push_back({it->start, it->end, false});
        previous = it->match;
      }
      std::reverse(out.begin(), out.end());
      return out;
  }
  return out;
}

struct SplitPreTokenizer : PreTokenizer {
  RegexMatcher regex = nullptr;  // else the literal `pattern`
  std::string pattern;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;

  void split(std::vector<Word>& words) const override {
    std::vector<Word> out;
    for (Word& w : words) {
      std::vector<Piece> pieces = regex ? regex_pieces(w.text, regex) : literal_pieces(w.text, pattern);
      if (invert) for (auto& p : pieces) p.match = !p.match;
      for (const Piece& p : apply_behavior(std::move(pieces), behavior)) {
        if (!p.match && p.end > p.start) out.push_back({w.text.substr(p.start, p.end - p.start), w.at_start && p.start == 0});
      }
    }
    words.swap(out);
  }
};

// GPT-2's byte-to-unicode table: printable bytes stand for themselves, the others for U+0100 onwards.
const std::array<std::string, 256>& byte_level_chars() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      unicode::append_utf8(t[static_cast<std::size_t>(b)], printable ? static_cast<char32_t>(b) : next++);
    }
    return t;
  }();
  return table;
}

// ByteLevel: an optional leading space per word, GPT-2's regex split (use_regex), then every byte
// mapped to its stand-in character.
struct ByteLevelPreTokenizer : PreTokenizer {
  bool add_prefix_space = true, use_regex = true;

  void split(std::vector<Word>& words) const override {
    if (add_prefix_space) {
      for (Word& w : words) {  // HF's prepend is a no-op on an empty string
        if (!w.text.empty() && w.text.front() != ' ') w.text.insert(0, 1, ' ');
      }
    }
    if (use_regex) {
      SplitPreTokenizer gpt2;
      gpt2.regex = match_gpt2;
      gpt2.split(words);
    }
    const auto& chars = byte_level_chars();
    for (Word& w : words) {
      std::string mapped;
      mapped.reserve(w.text.size() * 2);
      for (unsigned char b : w.text) mapped.append(chars[b]);
      w.text.swap(mapped);
    }
  }
};

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& origin) {
  if (j.is_null()) return nullptr;
  const std::string type = require(j, "type", origin, "pre_tokenizer").get<std::string>();
  if (type == "Sequence") {
    auto seq = std::make_unique<SequencePreTokenizer>();
    for (const auto& part : require(j, "pretokenizers", origin, "pre_tokenizer Sequence")) {
      if (auto p = make_pre_tokenizer(part, origin)) seq->parts.push_back(std::move(p));
    }
    return seq;
  }
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPreTokenizer>();
  if (type == "BertPreTokenizer") return std::make_unique<BertPreTokenizer>();
  if (type == "Metaspace") {
    auto p = std::make_unique<MetaspacePreTokenizer>();
    p->replacement = j.value("replacement", std::string("\xE2\x96\x81"));
    if (p->replacement.empty()) fail(origin, "pre_tokenizer Metaspace has an empty replacement");
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
      const std::string scheme = j["prepend_scheme"].get<std::string>();
      if (scheme == "always") p->prepend = MetaspacePreTokenizer::Prepend::Always;
      else if (scheme == "first") p->prepend = MetaspacePreTokenizer::Prepend::First;
      else if (scheme == "never") p->prepend = MetaspacePreTokenizer::Prepend::Never;
      else fail(origin, "pre_tokenizer Metaspace prepend_scheme \"" + scheme + "\" is unknown");
    } else {
      p->prepend = j.value("add_prefix_space", true) ? MetaspacePreTokenizer::Prepend::Always
                                                     : MetaspacePreTokenizer::Prepend::Never;
    }
    p->split_words_ = j.value("split", true);
    return p;
  }
  if (type == "Split") {
    auto p = std::make_unique<SplitPreTokenizer>();
    const json& pat = require(j, "pattern", origin, "pre_tokenizer Split");
    if (pat.contains("String")) {
      p->pattern = pat["String"].get<std::string>();
    } else if (pat.contains("Regex")) {
      const std::string re = pat["Regex"].get<std::string>();
      if (re == kQwen2Regex) p->regex = match_qwen2;
      else if (re == kGpt2Regex) p->regex = match_gpt2;
      else fail(origin, "pre_tokenizer Split regex \"" + re + "\" is not supported (only Qwen2's and GPT-2's)");
    } else {
      fail(origin, "pre_tokenizer Split pattern is neither String nor Regex");
    }
    const std::string behavior = require(j, "behavior", origin, "pre_tokenizer Split").get<std::string>();
    if (behavior == "Removed") p->behavior = SplitBehavior::Removed;
    else if (behavior == "Isolated") p->behavior = SplitBehavior::Isolated;
    else if (behavior == "MergedWithPrevious") p->behavior = SplitBehavior::MergedWithPrevious;
    else if (behavior == "MergedWithNext") p->behavior = SplitBehavior::MergedWithNext;
    else if (behavior == "Contiguous") p->behavior = SplitBehavior::Contiguous;
    else fail(origin, "pre_tokenizer Split behavior \"" + behavior + "\" is unknown");
    p->invert = j.value("invert", false);
    return p;
  }
  if (type == "ByteLevel") {
    auto p = std::make_unique<ByteLevelPreTokenizer>();
    p->add_prefix_space = j.value("add_prefix_space", true);
    p->use_regex = j.value("use_regex", true);
    return p;
  }
  fail(origin, "pre_tokenizer type \"" + type + "\" is not supported");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Models: a word to ids.

struct Model {
  virtual ~Model() = default;
  virtual void tokenize(std::string_view word, std::vector<int64_t>& out) const = 0;
  /// The id of a whole token of the vocabulary, if it has one.
  virtual std::optional<int64_t> id_of(std::string_view token) const = 0;
  virtual const char* type() const = 0;
};

namespace {

std::optional<int64_t> find_id(const IdMap& map, std::string_view token) {
  const auto it = map.find(token);
  if (it == map.end()) return std::nullopt;
  return it->second;
}

}  // namespace

namespace {

// Unigram: Viterbi over code-point boundaries with f64 scores, a piece of one unknown code point
// scored min_score - 10, ties kept by the shorter piece, consecutive unknowns fused into one <unk>.
struct UnigramModel : Model {
  std::optional<int64_t> id_of(std::string_view t) const override { return find_id(ids, t); }
  const char* type() const override { return "Unigram"; }
  IdMap ids;                   // piece -> id (a duplicated piece maps to its last id, as in HF)
  std::vector<double> scores;  // by id
  int64_t unk_id = 0;
  double unk_score = 0;
  std::size_t max_piece_bytes = 0;

  void tokenize(std::string_view s, std::vector<int64_t>& out) const override {
    if (s.empty()) return;
    struct Node {
      double score = 0;
      std::size_t start = 0;
      int64_t id = -1;
      bool set = false;
    };
    std::vector<Node> best(s.size() + 1);
    best[0].set = true;
    for (std::size_t start = 0; start < s.size();) {
      const std::size_t mblen = std::min(unicode::utf8_len(static_cast<unsigned char>(s[start])), s.size() - start);
      const double base = best[start].score;
      bool single = false;
      const std::size_t limit = std::min(s.size() - start, max_piece_bytes);
      for (std::size_t len = mblen; len <= limit;) {
        auto it = ids.find(s.substr(start, len));
        if (it != ids.end()) {
          Node& node = best[start + len];
          const double cand = base + scores[static_cast<std::size_t>(it->second)];
          if (!node.set || cand > node.score) node = {cand, start, it->second, true};
          if (len == mblen) single = true;
        }
        if (start + len >= s.size()) break;
        len += std::min(unicode::utf8_len(static_cast<unsigned char>(s[start + len])), s.size() - start - len);
      }
      if (!single) {
        Node& node = best[start + mblen];
        const double cand = base + unk_score;
        if (!node.set || cand > node.score) node = {cand, start, unk_id, true};
      }
      start += mblen;
    }
    // Backtrack (pieces come out last first), fusing runs of unknowns; every piece is then
    // looked up by its text, as HF does.
    std::vector<std::pair<std::size_t, std::size_t>> spans;
    bool open_unk = false;
    for (std::size_t end = s.size(); end > 0;) {
      const Node& node = best[end];
      const bool unk = node.id == unk_id;
      if (unk && open_unk) spans.back().first = node.start;
      else spans.emplace_back(node.start, end);
      open_unk = unk;
      end = node.start;
    }
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
      auto found = ids.find(s.substr(it->first, it->second - it->first));
      out.push_back(found != ids.end() ? found->second : unk_id);
    }
  }
};

// WordPiece: greedy longest match first with "##" continuations; a word with any unmatched part,
// or over max_input_chars_per_word code points, is one [UNK].
struct WordPieceModel : Model {
  std::optional<int64_t> id_of(std::string_view t) const override { return find_id(vocab, t); }
  const char* type() const override { return "WordPiece"; }
  IdMap vocab;
  int64_t unk_id = 0;
  std::string prefix = "##";
  std::size_t max_chars = 100;

  void tokenize(std::string_view word, std::vector<int64_t>& out) const override {
    std::size_t chars = 0;
    for (unsigned char c : word) chars += (c & 0xC0) != 0x80;
    if (chars > max_chars) {
      out.push_back(unk_id);
      return;
    }
    const std::size_t mark = out.size();
    std::string key;
    for (std::size_t start = 0; start < word.size();) {
      std::size_t end = word.size();
      bool found = false;
      while (start < end) {
        key.clear();
        if (start > 0) key.append(prefix);
        key.append(word.substr(start, end - start));
        auto it = vocab.find(key);
        if (it != vocab.end()) {
          out.push_back(it->second);
          found = true;
          break;
        }
        do --end; while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
      }
      if (!found) {
        out.resize(mark);
        out.push_back(unk_id);
        return;
      }
      start = end;
    }
  }
};

// BPE as HF runs it: a word starts as one symbol per character (unknown characters become their
// <0xNN> byte tokens with byte_fallback, else the unk token, fused when fuse_unk), then the pair
// with the lowest merge rank is merged, leftmost first among equal ranks, until no pair merges.
// A min-heap of candidate merges keeps a long word (a whole Gemma3 text is one word) at n log n.
struct BpeModel : Model {
  std::optional<int64_t> id_of(std::string_view t) const override { return find_id(vocab, t); }
  const char* type() const override { return "BPE"; }
  IdMap vocab;
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<uint32_t, int64_t>> merges;
  std::optional<int64_t> unk_id;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
  std::optional<std::string> prefix, suffix;  // continuing_subword_prefix, end_of_word_suffix
  std::array<int64_t, 256> byte_ids{};        // <0xNN> tokens, -1 when absent

  static uint64_t key(int64_t a, int64_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  struct Symbol {
    int64_t id;
    std::ptrdiff_t prev, next;
    std::size_t len;  // bytes; 0 once merged into its left neighbour
  };

  static void add(std::vector<Symbol>& w, int64_t id, std::size_t len) {
    const auto n = static_cast<std::ptrdiff_t>(w.size());
    if (!w.empty()) w.back().next = n;
    w.push_back({id, n - 1, -1, len});
  }

  std::vector<Symbol> symbols(std::string_view word) const {
    std::vector<Symbol> w;
    w.reserve(word.size());
    std::size_t unk_len = 0;  // bytes of a pending unknown (0: none); its id is *unk_id
    std::string s;
    for (std::size_t i = 0; i < word.size();) {
      const std::size_t n = std::min(unicode::utf8_len(static_cast<unsigned char>(word[i])), word.size() - i);
      s.assign(word.substr(i, n));
      if (i > 0 && prefix) s.insert(0, *prefix);
      if (i + n == word.size() && suffix) s.append(*suffix);
      i += n;
      if (auto it = vocab.find(s); it != vocab.end()) {
        if (unk_len) add(w, *unk_id, unk_len);
        unk_len = 0;
        add(w, it->second, n);
        continue;
      }
      if (byte_fallback && std::all_of(s.begin(), s.end(), [&](char b) { return byte_ids[static_cast<unsigned char>(b)] >= 0; })) {
        // As HF: the bytes go in at once; a pending unknown waits for the next known character.
        for (char b : s) add(w, byte_ids[static_cast<unsigned char>(b)], 1);
        continue;
      }
      if (!unk_id) continue;  // no unk token: the character is dropped
      if (unk_len && !fuse_unk) {
        add(w, *unk_id, unk_len);
        unk_len = 0;
      }
      unk_len += n;
    }
    if (unk_len) add(w, *unk_id, unk_len);
    return w;
  }

  void merge_all(std::vector<Symbol>& w) const {
    struct Merge {
      uint32_t rank;
      std::size_t pos;
      int64_t id;
      bool operator>(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Merge, std::vector<Merge>, std::greater<Merge>> queue;
    auto candidate = [&](std::size_t pos, int64_t a, int64_t b) {
      if (auto it = merges.find(key(a, b)); it != merges.end()) queue.push({it->second.first, pos, it->second.second});
    };
    for (std::size_t i = 0; i + 1 < w.size(); ++i) candidate(i, w[i].id, w[i + 1].id);
    while (!queue.empty()) {
      const Merge top = queue.top();
      queue.pop();
      Symbol& cur = w[top.pos];
      if (cur.len == 0 || cur.next < 0) continue;
      const auto next_pos = static_cast<std::size_t>(cur.next);
      const Symbol right = w[next_pos];
      // A stale entry: the pair at pos is no longer the one this merge was queued for.
      const auto it = merges.find(key(cur.id, right.id));
      if (it == merges.end() || it->second.second != top.id) continue;
      cur.id = top.id;
      cur.len += right.len;
      cur.next = right.next;
      w[next_pos].len = 0;
      if (right.next >= 0 && static_cast<std::size_t>(right.next) < w.size()) w[static_cast<std::size_t>(right.next)].prev = static_cast<std::ptrdiff_t>(top.pos);
      if (cur.prev >= 0) candidate(static_cast<std::size_t>(cur.prev), w[static_cast<std::size_t>(cur.prev)].id, cur.id);
      if (cur.next >= 0) candidate(top.pos, cur.id, w[static_cast<std::size_t>(cur.next)].id);
    }
  }

  void tokenize(std::string_view word, std::vector<int64_t>& out) const override {
    if (ignore_merges) {
      if (auto it = vocab.find(word); it != vocab.end()) {
        out.push_back(it->second);
        return;
      }
    }
    std::vector<Symbol> w = symbols(word);
    merge_all(w);
    for (const Symbol& s : w) {
      if (s.len != 0) out.push_back(s.id);
    }
  }
};

std::unique_ptr<Model> make_bpe(const json& j, const std::string& origin) {
  auto m = std::make_unique<BpeModel>();
  if (const auto d = j.find("dropout"); d != j.end() && !d->is_null() && d->get<double>() != 0.0) {
    fail(origin, "model BPE dropout " + d->dump() + " is not supported (it makes tokenization random)");
  }
  const json& vocab = require(j, "vocab", origin, "model BPE");
  if (!vocab.is_object()) fail(origin, "model BPE vocab is not an object of token -> id");
  m->vocab.reserve(vocab.size());
  for (const auto& [piece, id] : vocab.items()) m->vocab.insert_or_assign(piece, id.get<int64_t>());
  auto optional_string = [&](const char* key) -> std::optional<std::string> {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return std::nullopt;
    return it->get<std::string>();
  };
  m->prefix = optional_string("continuing_subword_prefix");
  m->suffix = optional_string("end_of_word_suffix");
  if (const auto unk = optional_string("unk_token")) {
    const auto it = m->vocab.find(*unk);
    if (it == m->vocab.end()) fail(origin, "model BPE unk_token \"" + *unk + "\" is not in its vocab");
    m->unk_id = it->second;
  }
  m->fuse_unk = j.value("fuse_unk", false);
  m->byte_fallback = j.value("byte_fallback", false);
  m->ignore_merges = j.value("ignore_merges", false);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    const auto it = m->vocab.find(std::string_view(name));
    m->byte_ids[static_cast<std::size_t>(b)] = it == m->vocab.end() ? -1 : it->second;
  }
  const json& merges = require(j, "merges", origin, "model BPE");
  const std::size_t prefix_len = m->prefix ? m->prefix->size() : 0;
  m->merges.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const json& e = merges[rank];
    std::string a, b;
    if (e.is_string()) {  // "a b" (older files)
      const std::string line = e.get<std::string>();
      const auto sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos) {
        fail(origin, "model BPE merges[" + std::to_string(rank) + "] \"" + line + "\" is not two tokens");
      }
      a = line.substr(0, sp);
      b = line.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      fail(origin, "model BPE merges[" + std::to_string(rank) + "] is neither \"a b\" nor [a, b]");
    }
    auto id_of = [&](const std::string& t) {
      const auto it = m->vocab.find(t);
      if (it == m->vocab.end()) fail(origin, "model BPE merges[" + std::to_string(rank) + "]: \"" + t + "\" is not in its vocab");
      return it->second;
    };
    if (b.size() < prefix_len) fail(origin, "model BPE merges[" + std::to_string(rank) + "]: \"" + b + "\" lacks the subword prefix");
    const int64_t ia = id_of(a), ib = id_of(b), merged = id_of(a + b.substr(prefix_len));
    m->merges.insert_or_assign(BpeModel::key(ia, ib), std::make_pair(static_cast<uint32_t>(rank), merged));
  }
  return m;
}

std::unique_ptr<Model> make_model(const json& j, const std::string& origin) {
  const std::string type = require(j, "type", origin, "model").get<std::string>();
  if (type == "Unigram") {
    auto m = std::make_unique<UnigramModel>();
    if (j.value("byte_fallback", false)) fail(origin, "Unigram byte_fallback is not supported");
    const json& unk = require(j, "unk_id", origin, "model Unigram");
    if (unk.is_null()) fail(origin, "model Unigram has no unk_id");
    m->unk_id = unk.get<int64_t>();
    const json& vocab = require(j, "vocab", origin, "model Unigram");
    double min_score = std::numeric_limits<double>::infinity();
    m->scores.reserve(vocab.size());
    m->ids.reserve(vocab.size());
    for (std::size_t id = 0; id < vocab.size(); ++id) {
      const json& e = vocab[id];
      if (!e.is_array() || e.size() != 2) fail(origin, "model Unigram vocab entry " + std::to_string(id) + " is not [piece, score]");
      std::string piece = e[0].get<std::string>();
      const double score = e[1].get<double>();
      m->scores.push_back(score);
      min_score = std::min(min_score, score);
      m->max_piece_bytes = std::max(m->max_piece_bytes, piece.size());
      m->ids.insert_or_assign(std::move(piece), static_cast<int64_t>(id));
    }
    if (m->unk_id < 0 || static_cast<std::size_t>(m->unk_id) >= vocab.size()) {
      fail(origin, "model Unigram unk_id " + std::to_string(m->unk_id) + " is outside its vocab");
    }
    m->unk_score = min_score - 10.0;
    return m;
  }
  if (type == "WordPiece") {
    auto m = std::make_unique<WordPieceModel>();
    const json& vocab = require(j, "vocab", origin, "model WordPiece");
    for (const auto& [piece, id] : vocab.items()) m->vocab.insert_or_assign(piece, id.get<int64_t>());
    const std::string unk = require(j, "unk_token", origin, "model WordPiece").get<std::string>();
    auto it = m->vocab.find(unk);
    if (it == m->vocab.end()) fail(origin, "model WordPiece unk_token \"" + unk + "\" is not in its vocab");
    m->unk_id = it->second;
    if (j.contains("continuing_subword_prefix") && !j["continuing_subword_prefix"].is_null()) {
      m->prefix = j["continuing_subword_prefix"].get<std::string>();
    }
    m->max_chars = j.value("max_input_chars_per_word", std::size_t{100});
    return m;
  }
  if (type == "BPE") return make_bpe(j, origin);
  fail(origin, "model type \"" + type + "\" is not supported (only Unigram, WordPiece and BPE)");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Added tokens: extracted before the model sees the text (leftmost-longest), in two passes as HF
// does: tokens with normalized = false on the raw text, the others on the normalized text.

struct AddedToken {
  std::string content;  // for a normalized token: its content after the normalizer
  int64_t id;
  bool lstrip, rstrip, single_word;
};

struct Segment {
  std::string_view text;
  int64_t id;  // -1 for text
  std::size_t offset;
};

// Added-token contents in a byte trie, for HF's leftmost-longest (Aho-Corasick) matching without a
// scan over every token at every position (Gemma3 has thousands of added tokens).
class TokenTrie {
 public:
  bool empty() const { return tokens_.empty(); }

  void add(AddedToken t) {
    if (t.content.empty()) return;
    uint32_t node = 0;
    for (unsigned char b : t.content) {
      auto [it, inserted] = edges_.try_emplace(edge(node, b), static_cast<uint32_t>(token_at_.size()));
      if (inserted) token_at_.push_back(-1);
      node = it->second;
    }
    if (token_at_[node] >= 0) tokens_[static_cast<std::size_t>(token_at_[node])] = std::move(t);
    else {
      token_at_[node] = static_cast<int32_t>(tokens_.size());
      tokens_.push_back(std::move(t));
    }
  }

  /// The longest token that starts at s[i], or nullptr.
  const AddedToken* longest(std::string_view s, std::size_t i) const {
    const AddedToken* best = nullptr;
    uint32_t node = 0;
    for (std::size_t k = i; k < s.size(); ++k) {
      const auto it = edges_.find(edge(node, static_cast<unsigned char>(s[k])));
      if (it == edges_.end()) break;
      node = it->second;
      if (token_at_[node] >= 0) best = &tokens_[static_cast<std::size_t>(token_at_[node])];
    }
    return best;
  }

 private:
  static uint64_t edge(uint32_t node, unsigned char b) { return (static_cast<uint64_t>(node) << 8) | b; }
  std::vector<AddedToken> tokens_;
  std::unordered_map<uint64_t, uint32_t> edges_;  // (node, byte) -> child node
  std::vector<int32_t> token_at_{-1};             // node -> index in tokens_, -1 for none; node 0 is the root
};

struct AddedTokens {
  TokenTrie raw, normalized;
  IdMap ids;  // content -> id, every added token

  // Rust's char::is_alphanumeric: what single_word tokens must not touch.
  static bool is_word_char(char32_t c) { return unicode::is_alphanumeric(c); }

  static bool word_char_before(std::string_view s, std::size_t at) {
    if (at == 0) return false;
    std::size_t i = at - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    std::u32string c;
    return unicode::decode(s.substr(i, at - i), c) && c.size() == 1 && is_word_char(c[0]);
  }

  static bool word_char_after(std::string_view s, std::size_t at) {
    if (at >= s.size()) return false;
    const std::size_t n = std::min(unicode::utf8_len(static_cast<unsigned char>(s[at])), s.size() - at);
    std::u32string c;
    return unicode::decode(s.substr(at, n), c) && c.size() == 1 && is_word_char(c[0]);
  }

  static void split(std::string_view s, const TokenTrie& tokens, std::vector<Segment>& out) {
    if (tokens.empty() || s.empty()) {
      out.push_back({s, -1, 0});
      return;
    }
    std::size_t done = 0;  // end of the last emitted segment
    for (std::size_t i = 0; i < s.size();) {
      const AddedToken* best = tokens.longest(s, i);
      if (!best) {
        ++i;
        continue;
      }
      const std::size_t match_end = i + best->content.size();
      std::size_t start = i, stop = match_end;
      // A single_word token inside a word is not a match; as in HF, the search resumes after it.
      if (best->single_word && (word_char_before(s, start) || word_char_after(s, stop))) {
        i = match_end;
        continue;
      }
      if (best->lstrip) start = std::max(rtrim_ws(s.substr(0, start)).size(), done);
      if (best->rstrip) stop = s.size() - ltrim_ws(s.substr(stop)).size();
      if (done < start) out.push_back({s.substr(done, start - done), -1, done});
      out.push_back({s.substr(start, stop - start), best->id, start});
      done = stop;
      i = std::max(match_end, stop);  // do not match inside text an rstrip already took
    }
    if (done < s.size()) out.push_back({s.substr(done), -1, done});
  }
};

// ---------------------------------------------------------------------------------------------

Tokenizer::Tokenizer() : added_(std::make_unique<AddedTokens>()) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

namespace {

// A JSON object file beside the tokenizer, or null when it is absent or not an object.
json sibling_json(const std::string& tokenizer_path, const char* name) {
  const auto slash = tokenizer_path.rfind('/');
  const std::string path = (slash == std::string::npos ? std::string() : tokenizer_path.substr(0, slash + 1)) + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  try {
    json j = json::parse(in);
    return j.is_object() ? j : json(nullptr);
  } catch (const json::exception& e) {
    throw TokenizerError(path + ": not valid JSON: " + e.what());
  }
}

}  // namespace

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TokenizerError(path + ": cannot open the tokenizer file");
  std::ostringstream buf;
  buf << in.rdbuf();
  Tokenizer t = from_json(buf.str(), path);
  // The pad as the Python servers resolve it: tokenizer.json's padding, else tokenizer_config.json's
  // pad_token, else config.json's pad_token_id (Qwen3 pads with <|endoftext|>, named only there).
  if (!t.pad_from_padding_) {
    const json tok_config = sibling_json(path, "tokenizer_config.json");
    json pad = tok_config.is_object() ? tok_config.value("pad_token", json()) : json();
    if (pad.is_object()) pad = pad.value("content", json());
    const json model_config = sibling_json(path, "config.json");
    const json pad_id = model_config.is_object() ? model_config.value("pad_token_id", json()) : json();
    if (pad.is_string() && t.token_to_id(pad.get<std::string>())) {
      t.pad_id_ = *t.token_to_id(pad.get<std::string>());
    } else if (pad_id.is_number_integer()) {
      t.pad_id_ = pad_id.get<int64_t>();
    }
  }
  return t;
}

std::optional<int64_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = find_id(added_->ids, token)) return id;
  return model_ ? model_->id_of(token) : std::nullopt;
}

std::string Tokenizer::model_type() const { return model_ ? model_->type() : ""; }

Tokenizer Tokenizer::from_json(std::string_view text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(origin, std::string("not valid JSON: ") + e.what());
  }
  Tokenizer t;
  try {
    t.normalizer_ = make_normalizer(j.value("normalizer", json()), origin);
    t.pre_tokenizer_ = make_pre_tokenizer(j.value("pre_tokenizer", json()), origin);
    t.model_ = make_model(require(j, "model", origin, "tokenizer"), origin);

    // Added tokens and the ids special-token names resolve to.
    IdMap& added_ids = t.added_->ids;
    for (const auto& a : j.value("added_tokens", json::array())) {
      AddedToken tok{a.at("content").get<std::string>(), a.at("id").get<int64_t>(), a.value("lstrip", false),
                     a.value("rstrip", false), a.value("single_word", false)};
      added_ids.insert_or_assign(tok.content, tok.id);
      if (a.value("normalized", !a.value("special", false))) {
        if (t.normalizer_) t.normalizer_->normalize(tok.content);
        t.added_->normalized.add(std::move(tok));
      } else {
        t.added_->raw.add(std::move(tok));
      }
    }

    const json post = j.value("post_processor", json());
    std::function<void(const json&)> load_post = [&](const json& p) {
      if (p.is_null()) return;
      const std::string type = require(p, "type", origin, "post_processor").get<std::string>();
      if (type == "TemplateProcessing") {
        const json& specials = require(p, "special_tokens", origin, "post_processor TemplateProcessing");
        bool seen_a = false;
        for (const auto& item : require(p, "single", origin, "post_processor TemplateProcessing")) {
          if (item.contains("Sequence")) {
            seen_a = true;
            continue;
          }
          const std::string name = item.at("SpecialToken").at("id").get<std::string>();
          if (!specials.contains(name)) fail(origin, "post_processor special token \"" + name + "\" has no ids");
          for (const auto& id : specials[name].at("ids")) (seen_a ? t.suffix_ : t.prefix_).push_back(id.get<int64_t>());
        }
      } else if (type == "RobertaProcessing" || type == "BertProcessing") {
        t.prefix_ = {p.at("cls").at(1).get<int64_t>()};
        t.suffix_ = {p.at("sep").at(1).get<int64_t>()};
      } else if (type == "Sequence") {
        for (const auto& q : require(p, "processors", origin, "post_processor Sequence")) load_post(q);
      } else if (type == "ByteLevel") {
        // only changes offsets
      } else {
        fail(origin, "post_processor type \"" + type + "\" is not supported");
      }
    };
    load_post(post);

    const json pad = j.value("padding", json());
    if (pad.is_object() && pad.contains("pad_id")) {
      t.pad_id_ = pad["pad_id"].get<int64_t>();
      t.pad_from_padding_ = true;
    } else if (auto id = t.token_to_id("<pad>")) {
      t.pad_id_ = *id;
    } else if (auto id2 = t.token_to_id("[PAD]")) {
      t.pad_id_ = *id2;
    }
  } catch (const json::exception& e) {
    fail(origin, std::string("unexpected structure: ") + e.what());
  }
  return t;
}

void Tokenizer::tokenize_segment(std::string_view text, bool at_start, std::vector<int64_t>& out) const {
  std::vector<Word> words{{std::string(text), at_start}};
  if (pre_tokenizer_) pre_tokenizer_->split(words);
  for (const Word& w : words) {
    if (!w.text.empty()) model_->tokenize(w.text, out);
  }
}

Encoding Tokenizer::encode(std::string_view text, std::size_t max_length) const {
  std::vector<int64_t> body;
  std::vector<Segment> raw;
  AddedTokens::split(text, added_->raw, raw);
  for (const Segment& seg : raw) {
    if (seg.id >= 0) {
      body.push_back(seg.id);
      continue;
    }
    std::string norm(seg.text);
    if (normalizer_) normalizer_->normalize(norm);
    std::vector<Segment> parts;
    AddedTokens::split(norm, added_->normalized, parts);
    for (const Segment& part : parts) {
      if (part.id >= 0) body.push_back(part.id);
      else tokenize_segment(part.text, seg.offset == 0 && part.offset == 0, body);
    }
  }
  Encoding enc;
  const std::size_t specials = num_special_tokens();
  enc.full_length = body.size() + specials;
  if (max_length > 0) {
    if (max_length < specials) {
      throw std::invalid_argument("max_length " + std::to_string(max_length) + " leaves no room for the " +
                                  std::to_string(specials) + " special tokens");
    }
    if (body.size() > max_length - specials) body.resize(max_length - specials);
  }
  enc.ids.reserve(body.size() + specials);
  enc.ids.insert(enc.ids.end(), prefix_.begin(), prefix_.end());
  enc.ids.insert(enc.ids.end(), body.begin(), body.end());
  enc.ids.insert(enc.ids.end(), suffix_.begin(), suffix_.end());
  return enc;
}

}  // namespace embbench
