// Each stage mirrors the HF `tokenizers` component of the same name, quirks included, because
// parity is judged on token ids, not on what would be tidier.
#include "tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
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
  fail(origin, "pre_tokenizer type \"" + type + "\" is not supported");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Models: a word to ids.

struct Model {
  virtual ~Model() = default;
  virtual void tokenize(std::string_view word, std::vector<int64_t>& out) const = 0;
};

namespace {

// Unigram: Viterbi over code-point boundaries with f64 scores, a piece of one unknown code point
// scored min_score - 10, ties kept by the shorter piece, consecutive unknowns fused into one <unk>.
struct UnigramModel : Model {
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
  fail(origin, "model type \"" + type + "\" is not supported (only Unigram and WordPiece)");
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

struct AddedTokens {
  std::vector<AddedToken> raw, normalized;

  static bool is_word_char(char32_t c);

  static void split(std::string_view s, const std::vector<AddedToken>& tokens, std::vector<Segment>& out) {
    if (tokens.empty() || s.empty()) {
      out.push_back({s, -1, 0});
      return;
    }
    std::size_t done = 0;  // end of the last emitted segment
    for (std::size_t i = 0; i < s.size();) {
      const AddedToken* best = nullptr;
      for (const auto& t : tokens) {
        if (!t.content.empty() && s.compare(i, t.content.size(), t.content) == 0 &&
            (!best || t.content.size() > best->content.size())) {
          best = &t;
        }
      }
      if (!best) {
        ++i;
        continue;
      }
      std::size_t start = i, stop = i + best->content.size();
      if (best->single_word) {
        std::u32string before, after;
        unicode::decode(s.substr(0, start), before);
        unicode::decode(s.substr(stop), after);
        const bool ok_left = before.empty() || !is_word_char(before.back());
        const bool ok_right = after.empty() || !is_word_char(after.front());
        if (!ok_left || !ok_right) {
          ++i;
          continue;
        }
      }
      if (best->lstrip) start = std::max(rtrim_ws(s.substr(0, start)).size(), done);
      if (best->rstrip) stop = s.size() - ltrim_ws(s.substr(stop)).size();
      if (done < start) out.push_back({s.substr(done, start - done), -1, done});
      out.push_back({s.substr(start, stop - start), best->id, start});
      done = stop;
      i = i + best->content.size();
      if (i < stop) i = stop;  // do not match inside text an rstrip already took
    }
    if (done < s.size()) out.push_back({s.substr(done), -1, done});
  }
};

bool AddedTokens::is_word_char(char32_t c) { return unicode::is_alphanumeric(c); }

// ---------------------------------------------------------------------------------------------

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TokenizerError(path + ": cannot open the tokenizer file");
  std::ostringstream buf;
  buf << in.rdbuf();
  return from_json(buf.str(), path);
}

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
    IdMap added_ids;
    t.added_ = std::make_unique<AddedTokens>();
    for (const auto& a : j.value("added_tokens", json::array())) {
      AddedToken tok{a.at("content").get<std::string>(), a.at("id").get<int64_t>(), a.value("lstrip", false),
                     a.value("rstrip", false), a.value("single_word", false)};
      added_ids.insert_or_assign(tok.content, tok.id);
      if (a.value("normalized", !a.value("special", false))) {
        if (t.normalizer_) t.normalizer_->normalize(tok.content);
        t.added_->normalized.push_back(std::move(tok));
      } else {
        t.added_->raw.push_back(std::move(tok));
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
    } else if (auto it = added_ids.find("<pad>"); it != added_ids.end()) {
      t.pad_id_ = it->second;
    } else if (auto it2 = added_ids.find("[PAD]"); it2 != added_ids.end()) {
      t.pad_id_ = it2->second;
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
