"""Writes the token ids HF `tokenizers` produces, for the C++ parity test (tokenizer_parity.cpp).

usage: gen_token_ids.py --out EXPECTED_JSON

Tokenizers compared:
  $EMBBENCH_FIXTURES/{xlmr,bert,qwen3,gpt2,gemma3}/tokenizer.json
                                                  trained by make_fixtures.py (always; required)
  $EMBBENCH_MODELS/<model>/pytorch/tokenizer.json models written by `embbench convert` (optional: every
                                                  text architecture, xlm-roberta, bert, qwen3, gemma3),
                                                  with their reference texts, those texts with each
                                                  prompt prepended, and their payload texts added
Texts: every line of tests/fixtures/sample.txt, hand-picked edge cases, every non-empty line of
$EMBBENCH_CORPUS/*.txt and each corpus file whole, and an over-long text built from all of them.
"""
import argparse
import glob
import json
import os
import sys

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))

EDGE_CASES = [
    "", " ", "  ", "\t", "\n", "a", "a ", " a", "  a  b  ", "a\u3000b", "a\u00a0b", "a\u2009\u2009b",
    "hello  world", "\u2581", "\u2581\u2581a", "a\u2581", "<s>", "</s>", "<mask>", "a <mask> b", "a<mask>b",
    " <mask>", "<unk>", "[CLS] a [SEP]", "[MASK]", "[UNK]x", "\u0000", "\ufffd", "\u0085", "\u00ad",
    "e\u0301", "\uff76\uff9e", "\u1100\u1161\u11a8", "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f1eb\U0001f1f7", "\u0915\u094d\u0937", "\u0130stanbul", "\u03a3\u0399\u03a3\u03a5\u03a6\u039f\u03a3",
    "x" * 99, "x" * 100, "x" * 101, "\u00e9" * 150, "Hello, World! It's 3.14.",
    # Byte-level BPE (Qwen2's regex): contractions in any case (U+017F folds to s), runs of spaces,
    # tabs and line breaks, digits one by one, punctuation runs with trailing newlines.
    "it's", "IT'S", "We'LL they'Re you'VE I'M he'D", "it'\u017f", "'s", "''s", "x's's", "don't\n",
    "a\r\nb", "a \n\n b", " \n ", "\n\n\n", "a\t\tb", "  \t\n  x", "end.   ", "   ", "\r", "\r\n",
    "12345", "3.14159", "\u0661\u0662\u0663", "\u2167 and \u00bd", "...!!!\n\nNext", " ?!", "a  ?! b",
    "\u00a0x", "x\u3000\u3000y", "\u2028a", "\x0bv", "\x85n", "\u200bz", "\U0001f600\U0001f600 ok",
    "\u4e2d\u6587\u5b57\u7b26\u5f88\u957f" * 40, "caf\u00e9 cafe\u0301", "\ufb01 \u212b",
    # Literal special and added tokens of Qwen3 and Gemma3, alone and inside words.
    "<|endoftext|>", "a<|endoftext|>b", "<|im_start|>user\nhi<|im_end|>", "<think>x</think>",
    "<bos>", "<eos>", "<pad>", "<start_of_turn>user", "x<end_of_turn>", "<unk>", "<0x41>",
    "\u2581\u2581x", "tab\there", "  leading", "trailing  ",
]


# Random strings over the characters the regex alternatives turn on, with a fixed seed: a fuzz of the
# pre-tokenizers (Qwen2's and GPT-2's regexes, Split, Metaspace) and of BPE merges.
FUZZ_ALPHABET = ["a", "b", "Z", "s", "t", "l", "d", "e", "r", "v", "m", "S", "L", "'", "\u2019", "\u017f", " ", " ", " ",
                 "\t", "\n", "\r", "\u00a0", "\u3000", "\x0b", "\x85", "1", "2", "\u0663", "\u00bd", ".", ",", "!", "?",
                 "-", "_", "(", "\"", "\u00e9", "e\u0301", "\u4e2d", "\u6587", "\u0915\u094d", "\U0001f600", "\u200d", "\u2581",
                 "<", ">", "|", "<|endoftext|>", "<bos>", "\x00", "\x7f", "\ufffd"]


def fuzz_texts(count=400, seed=1234):
    import random
    rng = random.Random(seed)
    return ["".join(rng.choice(FUZZ_ALPHABET) for _ in range(rng.randint(1, 40))) for _ in range(count)]


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")


def texts():
    out = [line for line in read_lines(os.path.join(HERE, "fixtures", "sample.txt")) if line]
    out += EDGE_CASES
    out += fuzz_texts()
    corpus = os.environ.get("EMBBENCH_CORPUS")
    corpus_files = sorted(glob.glob(os.path.join(corpus, "*.txt"))) if corpus else []
    for path in corpus_files:
        with open(path, encoding="utf-8") as f:
            whole = f.read()
        out += [line for line in whole.split("\n") if line.strip()]
        out.append(whole)
    out.append(" ".join(out))  # the over-long text
    return out, len(corpus_files)


def case(name, path, max_length, items):
    tok = Tokenizer.from_file(path)
    tok.no_padding()
    tok.no_truncation()
    full = [len(e.ids) for e in tok.encode_batch(items)]
    tok.enable_truncation(max_length)
    ids = [e.ids for e in tok.encode_batch(items)]
    return {"name": name, "tokenizer": path, "max_length": max_length, "texts": items, "ids": ids,
            "full_lengths": full}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    fixtures = os.environ.get("EMBBENCH_FIXTURES")
    if not fixtures:
        sys.exit("gen_token_ids: EMBBENCH_FIXTURES is not set: the folder make_fixtures.py wrote")
    items, n_corpus = texts()
    cases = [case(f"fixture-{n}", os.path.join(fixtures, n, "tokenizer.json"), 128, items)
             for n in ("xlmr", "bert", "qwen3", "gpt2", "gemma3")]
    models = os.environ.get("EMBBENCH_MODELS")
    for facts_path in sorted(glob.glob(os.path.join(models, "*", "embbench_model.json"))) if models else []:
        with open(facts_path) as f:
            facts = json.load(f)
        tok_path = os.path.join(os.path.dirname(facts_path), "pytorch", "tokenizer.json")
        if facts.get("architecture") not in ("xlm-roberta", "bert", "qwen3", "gemma3") or not os.path.exists(tok_path):
            continue
        model_items = list(items)
        model_dir = os.path.dirname(facts_path)
        prompts = facts.get("prompts") or {}
        ref = os.path.join(model_dir, "reference", "embeddings.json")
        if os.path.exists(ref):
            with open(ref, encoding="utf-8") as f:
                reference = json.load(f)
            model_items += reference.get("texts", [])
            # A prompt is prepended as a plain string before tokenization (docker/CONTRACT.md).
            for c in reference.get("cases", []):
                prompt = prompts.get(c.get("prompt_name") or "", "")
                model_items += [prompt + t for t in c.get("texts", [])]
        model_items += [p + t for p in prompts.values() for t in ["", "hello"] + EDGE_CASES[:20]]
        # The load generator's request bodies: texts convert made exactly L tokens long (with the
        # body's prompt applied).
        seen = set(model_items)
        for payload in sorted(glob.glob(os.path.join(model_dir, "payloads", "seq*_b*.json"))):
            with open(payload, encoding="utf-8") as f:
                body = json.load(f)
            inputs = body.get("inputs", [])
            prompt = prompts.get(body.get("prompt_name") or "", "")
            for text in [inputs] if isinstance(inputs, str) else inputs:
                if prompt + text not in seen:
                    seen.add(prompt + text)
                    model_items.append(prompt + text)
        cases.append(case(f"model-{facts['name']}", tok_path, int(facts["max_seq_length"]), model_items))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"cases": cases}, f, ensure_ascii=False)
    print(f"gen_token_ids: {len(cases)} tokenizer cases, {len(items)} texts each "
          f"({n_corpus} corpus files), written to {args.out}")


if __name__ == "__main__":
    main()
