// Token-id parity with HF `tokenizers`: reads the cases gen_token_ids.py wrote (texts, the ids HF
// produced with truncation at max_length, the untruncated lengths) and compares every text.
// usage: tokenizer_parity EXPECTED_JSON
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "tokenizer.h"

namespace {

std::string ids_str(const std::vector<int64_t>& ids) {
  std::string s = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: tokenizer_parity EXPECTED_JSON\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << argv[1] << ": cannot open the expected ids (run gen_token_ids.py first)\n";
    return 2;
  }
  const auto doc = nlohmann::json::parse(in);
  std::size_t total = 0, failed = 0, cases = 0, tokens = 0, truncated = 0;
  for (const auto& c : doc.at("cases")) {
    const std::string name = c.at("name");
    const auto tok = embbench::Tokenizer::from_file(c.at("tokenizer"));
    const std::size_t max_length = c.at("max_length");
    const auto& texts = c.at("texts");
    const auto& ids = c.at("ids");
    const auto& full = c.at("full_lengths");
    std::size_t case_failed = 0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const std::string text = texts[i];
      const auto want = ids[i].get<std::vector<int64_t>>();
      const auto got = tok.encode(text, max_length);
      const bool same = got.ids == want && got.full_length == full[i].get<std::size_t>();
      tokens += want.size();
      truncated += full[i].get<std::size_t>() > max_length;
      if (!same) {
        if (case_failed < 5) {
          std::cerr << "MISMATCH " << name << " text " << i << ": " << nlohmann::json(text).dump().substr(0, 300)
                    << "\n  hf:  " << ids_str(want).substr(0, 400) << " (full " << full[i] << ")"
                    << "\n  cpp: " << ids_str(got.ids).substr(0, 400) << " (full " << got.full_length << ")\n";
        }
        ++case_failed;
      }
    }
    std::cout << name << ": " << (texts.size() - case_failed) << "/" << texts.size()
              << " texts with identical ids (max_length " << max_length << ")\n";
    total += texts.size();
    failed += case_failed;
    ++cases;
  }
  std::cout << "token-id parity: " << (total - failed) << "/" << total << " texts identical over " << cases
            << " tokenizer cases, " << tokens << " tokens compared, " << truncated << " texts truncated\n";
  if (cases == 0 || total == 0) {
    std::cerr << "no cases: nothing was compared\n";
    return 1;
  }
  return failed == 0 ? 0 : 1;
}
