#include "unicode.h"

#include <utf8proc.h>

#include <stdexcept>

namespace embbench::unicode {

bool decode(std::string_view s, std::u32string& out) {
  out.clear();
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(s.size());
  while (left > 0) {
    utf8proc_int32_t c;
    const utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
    if (n <= 0 || c < 0) return false;
    out.push_back(static_cast<char32_t>(c));
    p += n;
    left -= n;
  }
  return true;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

bool is_whitespace(char32_t c) {
  // The White_Space property list (PropList.txt); stable since Unicode 6.
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

static utf8proc_category_t category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

bool is_bert_punctuation(char32_t c) {
  if ((c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
      (c >= 0x7B && c <= 0x7E)) {
    return true;
  }
  switch (category(c)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool is_other(char32_t c) {
  switch (category(c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN:
      return true;
    default:
      return false;
  }
}

bool is_alphanumeric(char32_t c) {
  const auto cat = category(c);
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
         (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

bool is_letter(char32_t c) {
  const auto cat = category(c);
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}

bool is_number(char32_t c) {
  const auto cat = category(c);
  return cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO;
}

bool is_nonspacing_mark(char32_t c) { return category(c) == UTF8PROC_CATEGORY_MN; }

bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

void append_lowercase(std::u32string& out, char32_t c) {
  // U+0130 is the one code point whose full lowercase mapping (SpecialCasing.txt, unconditional)
  // differs from the simple mapping utf8proc applies.
  if (c == 0x130) {
    out.push_back(U'i');
    out.push_back(0x307);
    return;
  }
  out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
}

std::u32string normalize(std::u32string_view s, Form form) {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case Form::NFC: options |= UTF8PROC_COMPOSE; break;
    case Form::NFD: options |= UTF8PROC_DECOMPOSE; break;
    case Form::NFKC: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case Form::NFKD: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  if (s.empty()) return {};
  // utf8proc_decompose decomposes and puts combining marks in canonical order; an explicit
  // length (no UTF8PROC_NULLTERM) keeps embedded NULs. Composition then runs in place.
  const std::string utf8 = encode(s);
  const auto* src = reinterpret_cast<const utf8proc_uint8_t*>(utf8.data());
  const auto src_len = static_cast<utf8proc_ssize_t>(utf8.size());
  const auto opts = static_cast<utf8proc_option_t>(options);
  utf8proc_ssize_t need = utf8proc_decompose(src, src_len, nullptr, 0, opts);
  if (need < 0) throw std::runtime_error(std::string("unicode normalization failed: ") + utf8proc_errmsg(need));
  std::vector<utf8proc_int32_t> buf(static_cast<std::size_t>(need) + 1);
  need = utf8proc_decompose(src, src_len, buf.data(), static_cast<utf8proc_ssize_t>(buf.size()), opts);
  if (need < 0) throw std::runtime_error(std::string("unicode normalization failed: ") + utf8proc_errmsg(need));
  const utf8proc_ssize_t m = utf8proc_normalize_utf32(buf.data(), need, opts);
  if (m < 0) throw std::runtime_error(std::string("unicode normalization failed: ") + utf8proc_errmsg(m));
  std::u32string out;
  out.reserve(static_cast<std::size_t>(m));
  for (utf8proc_ssize_t i = 0; i < m; ++i) out.push_back(static_cast<char32_t>(buf[static_cast<std::size_t>(i)]));
  return out;
}

std::vector<std::string_view> graphemes(std::string_view s) {
  std::vector<std::string_view> out;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  const utf8proc_ssize_t len = static_cast<utf8proc_ssize_t>(s.size());
  utf8proc_ssize_t pos = 0, start = 0;
  utf8proc_int32_t prev = -1;
  utf8proc_int32_t state = 0;
  while (pos < len) {
    utf8proc_int32_t c;
    const utf8proc_ssize_t n = utf8proc_iterate(p + pos, len - pos, &c);
    if (n <= 0) {  // callers pass validated UTF-8; treat a stray byte as its own cluster
      if (pos > start) out.emplace_back(s.data() + start, static_cast<std::size_t>(pos - start));
      out.emplace_back(s.data() + pos, 1);
      pos += 1;
      start = pos;
      prev = -1;
      state = 0;
      continue;
    }
    if (prev >= 0 && utf8proc_grapheme_break_stateful(prev, c, &state)) {
      out.emplace_back(s.data() + start, static_cast<std::size_t>(pos - start));
      start = pos;
    }
    prev = c;
    pos += n;
  }
  if (pos > start) out.emplace_back(s.data() + start, static_cast<std::size_t>(pos - start));
  return out;
}

}  // namespace embbench::unicode
