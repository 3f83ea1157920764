"""Writes the token ids HF `tokenizers` produces, for the C++ parity test (tokenizer_parity.cpp).

usage: gen_token_ids.py --out EXPECTED_JSON

Tokenizers compared:
  $EMBBENCH_FIXTURES/{xlmr,bert}/tokenizer.json   trained by make_fixtures.py (always; required)
  $EMBBENCH_MODELS/<model>/pytorch/tokenizer.json models written by `embbench convert` whose
                                                  architecture is xlm-roberta or bert (optional), with
                                                  their reference texts and payload texts added
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
]


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")


def texts():
    out = [line for line in read_lines(os.path.join(HERE, "fixtures", "sample.txt")) if line]
    out += EDGE_CASES
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
    cases = [case(f"fixture-{n}", os.path.join(fixtures, n, "tokenizer.json"), 128, items) for n in ("xlmr", "bert")]
    models = os.environ.get("EMBBENCH_MODELS")
    for facts_path in sorted(glob.glob(os.path.join(models, "*", "embbench_model.json"))) if models else []:
        with open(facts_path) as f:
            facts = json.load(f)
        tok_path = os.path.join(os.path.dirname(facts_path), "pytorch", "tokenizer.json")
        if facts.get("architecture") not in ("xlm-roberta", "bert") or not os.path.exists(tok_path):
            continue
        model_items = list(items)
        model_dir = os.path.dirname(facts_path)
        ref = os.path.join(model_dir, "reference", "embeddings.json")
        if os.path.exists(ref):
            with open(ref) as f:
                model_items += json.load(f).get("texts", [])
        # The load generator's request bodies: texts convert made exactly L tokens long.
        seen = set(model_items)
        for payload in sorted(glob.glob(os.path.join(model_dir, "payloads", "seq*_b*.json"))):
            with open(payload, encoding="utf-8") as f:
                inputs = json.load(f).get("inputs", [])
            for text in [inputs] if isinstance(inputs, str) else inputs:
                if text not in seen:
                    seen.add(text)
                    model_items.append(text)
        cases.append(case(f"model-{facts['name']}", tok_path, int(facts["max_seq_length"]), model_items))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"cases": cases}, f, ensure_ascii=False)
    print(f"gen_token_ids: {len(cases)} tokenizer cases, {len(items)} texts each "
          f"({n_corpus} corpus files), written to {args.out}")


if __name__ == "__main__":
    main()
