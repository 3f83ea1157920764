// Unicode helpers the tokenizers need, with the exact character classes HF `tokenizers` (Rust) uses.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace embbench::unicode {

/// Decodes UTF-8; returns false on ill-formed input (the caller names the offending text).
bool decode(std::string_view s, std::u32string& out);

/// Appends the UTF-8 encoding of one code point.
void append_utf8(std::string& out, char32_t c);

/// Encodes code points as UTF-8.
std::string encode(std::u32string_view s);

/// Byte length of the UTF-8 sequence that starts with lead byte `b` (1 for stray bytes).
inline std::size_t utf8_len(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b >> 5) == 0x6) return 2;
  if ((b >> 4) == 0xE) return 3;
  if ((b >> 3) == 0x1E) return 4;
  return 1;
}

/// Rust's `char::is_whitespace` (the Unicode White_Space property), which is what
/// `tokenizers` splits and strips on; not C's isspace nor Python's str.isspace.
bool is_whitespace(char32_t c);

/// Rust's `char::is_ascii_punctuation` or Unicode general category P*.
bool is_bert_punctuation(char32_t c);

/// Unicode general category C (Cc, Cf, Cs, Co, Cn).
bool is_other(char32_t c);

/// Rust's `char::is_alphanumeric` (general categories L* and N*).
bool is_alphanumeric(char32_t c);

/// Unicode general category L* (Lu, Ll, Lt, Lm, Lo): a regex's \p{L}.
bool is_letter(char32_t c);

/// Unicode general category N* (Nd, Nl, No): a regex's \p{N}.
bool is_number(char32_t c);

/// Unicode general category Mn.
bool is_nonspacing_mark(char32_t c);

/// The CJK ideograph blocks BERT surrounds with spaces.
bool is_cjk(char32_t c);

/// Rust's `char::to_lowercase` (full mapping: U+0130 becomes two code points).
void append_lowercase(std::u32string& out, char32_t c);

/// Unicode normalization forms.
enum class Form { NFC, NFD, NFKC, NFKD };
std::u32string normalize(std::u32string_view s, Form form);

/// Splits UTF-8 text into extended grapheme clusters (UAX #29), as byte ranges.
std::vector<std::string_view> graphemes(std::string_view s);

}  // namespace embbench::unicode
