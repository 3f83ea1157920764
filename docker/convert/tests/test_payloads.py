"""Request bodies: every text has exactly L tokens with the model's own tokenizer, and no text repeats."""

import json
import shutil

import pytest

from conftest import CORPUS_DIR, convert, run_cli
from embbench_convert.corpus import count_tokens
from embbench_convert.payloads import load_plain_tokenizer


def check_payloads(model_dir, expected, bodies=64):
    """index.json lists `expected` (seq_len, batch_size) pairs; each .jsonl file holds `bodies` lines of
    distinct bodies with no text twice, each text exactly seq_len tokens; the .json file is the first line."""
    tok = load_plain_tokenizer(model_dir / "pytorch" / "tokenizer.json")
    index = json.loads((model_dir / "payloads" / "index.json").read_text())
    assert [(p["seq_len"], p["batch_size"]) for p in index["payloads"]] == expected
    assert index["bodies"] == bodies
    for p in index["payloads"]:
        L, B = p["seq_len"], p["batch_size"]
        first = json.loads((model_dir / "payloads" / p["file"]).read_text(encoding="utf-8"))
        assert len(first["inputs"]) == B
        assert p["lines"] == p["file"].removesuffix(".json") + ".jsonl"
        raw = (model_dir / "payloads" / p["lines"]).read_text(encoding="utf-8")
        assert raw.endswith("\n")
        lines = raw[:-1].split("\n")  # oha splits on \n only, so no body may hold a raw newline
        assert len(lines) == bodies, p["lines"]
        assert len(set(lines)) == bodies, f"{p['lines']}: repeated bodies"
        parsed = [json.loads(line) for line in lines]
        assert all(set(b) == {"inputs"} and len(b["inputs"]) == B for b in parsed), p["lines"]
        assert all(line.startswith('{"inputs":[') for line in lines), "bodies are not compact JSON"
        assert parsed[0] == first, f"{p['file']} is not the first line of {p['lines']}"
        texts = [t for b in parsed for t in b["inputs"]]
        assert len(set(texts)) == len(texts), f"{p['lines']}: a text appears twice"
        assert {count_tokens(tok, t) for t in texts} == {L}, p["lines"]


@pytest.mark.parametrize(
    "fixture, expected",
    [
        ("tiny_xlmr", [(32, 1), (32, 8), (128, 1), (128, 8), (512, 1), (512, 8)]),
        # minilm's max_seq_length is 256: 512 is capped to it
        ("minilm", [(32, 1), (32, 8), (128, 1), (128, 8), (256, 1), (256, 8)]),
    ],
)
def test_convert_writes_default_payloads_with_distinct_bodies_of_exact_token_counts(request, fixture, expected):
    check_payloads(request.getfixturevalue(fixture), expected)


def test_payloads_command_rewrites_bodies_and_keeps_the_folder_up_to_date(tiny_xlmr, tmp_path):
    model = tmp_path / "tiny-xlmr"
    shutil.copytree(tiny_xlmr, model)
    # 3 tokens is one real token between <s> and </s>: 5 x 3 single-token texts, all different.
    run = run_cli("payloads", "--model-dir", str(model), "--seq-lens", "3,17,64,1000", "--batch-sizes", "3,1",
                  "--bodies", "5", "--corpus-dir", str(CORPUS_DIR))
    assert run.returncode == 0, run.stderr
    assert run.summary["status"] == "ok" and run.summary["bodies"] == 5
    check_payloads(model, [(n, b) for n in (3, 17, 64, 512) for b in (1, 3)], bodies=5)
    again = convert("tiny-xlmr", model, "--fp16")
    assert again.returncode == 0 and again.summary["status"] == "up to date", again.stderr


def test_more_texts_than_corpus_sentences_are_still_distinct(tiny_xlmr, tmp_path):
    model = tmp_path / "tiny-xlmr"
    shutil.copytree(tiny_xlmr, model)
    # 100 x 8 = 800 texts from about 340 sentences: later rounds start inside the sentences.
    run = run_cli("payloads", "--model-dir", str(model), "--seq-lens", "32", "--batch-sizes", "8",
                  "--bodies", "100", "--corpus-dir", str(CORPUS_DIR))
    assert run.returncode == 0, run.stderr
    check_payloads(model, [(32, 8)], bodies=100)


def test_payloads_command_refuses_what_the_corpus_cannot_make_distinct(tiny_xlmr, tmp_path):
    model = tmp_path / "tiny-xlmr"
    shutil.copytree(tiny_xlmr, model)
    # 2 tokens is <s></s> alone: the empty string is the only such text.
    run = run_cli("payloads", "--model-dir", str(model), "--seq-lens", "2", "--batch-sizes", "1",
                  "--bodies", "4", "--corpus-dir", str(CORPUS_DIR))
    assert run.returncode == 2
    assert "seq2_b1.jsonl" in run.stderr and "only 1 different texts of exactly 2 tokens, 4 are needed" in run.stderr
    assert (model / "payloads" / "seq32_b1.jsonl").is_file(), "a refused rewrite must leave the old folder"
    one = run_cli("payloads", "--model-dir", str(model), "--seq-lens", "2", "--batch-sizes", "1",
                  "--bodies", "1", "--corpus-dir", str(CORPUS_DIR))
    assert one.returncode == 0, one.stderr


def test_payloads_command_rejects_bad_lists(tiny_xlmr):
    run = run_cli("payloads", "--model-dir", str(tiny_xlmr), "--seq-lens", "32,abc")
    assert run.returncode == 2 and "--seq-lens" in run.stderr
    for bad in ("0", "abc"):
        run = run_cli("payloads", "--model-dir", str(tiny_xlmr), "--bodies", bad)
        assert run.returncode == 2 and "--bodies must be a positive integer" in run.stderr, run.stderr
    run = run_cli("payloads", "--model-dir", str(tiny_xlmr.parent / "missing"))
    assert run.returncode == 2 and "run convert first" in run.stderr


@pytest.mark.parametrize("fixture", ["tiny_gemma3", "tiny_qwen3"])
def test_prompt_payloads_have_exact_token_counts_with_the_prompt_prepended(request, fixture):
    model_dir = request.getfixturevalue(fixture)
    facts = json.loads((model_dir / "embbench_model.json").read_text())
    prompts = facts["prompts"]
    tok = load_plain_tokenizer(model_dir / "pytorch" / "tokenizer.json")
    index = json.loads((model_dir / "payloads" / "index.json").read_text())
    plain = [(p["seq_len"], p["batch_size"]) for p in index["payloads"] if p["prompt_name"] is None]
    assert plain == [(32, 1), (32, 8), (128, 1), (128, 8), (512, 1), (512, 8)]
    for name, prompt in prompts.items():
        entries = [p for p in index["payloads"] if p["prompt_name"] == name]
        # lengths the prompt alone fills are skipped, and listed as such
        overhead = count_tokens(tok, prompt)
        skipped = [(p["seq_len"], p["batch_size"]) for p in index["skipped"] if p["prompt_name"] == name]
        assert skipped == [(L, B) for L, B in plain if L <= overhead], name
        assert [(p["seq_len"], p["batch_size"]) for p in entries] == [(L, B) for L, B in plain if L > overhead]
        assert all(not (model_dir / "payloads" / f"seq{L}_b{B}_{name}.jsonl").exists() for L, B in skipped)
        for p in entries:
            L, B = p["seq_len"], p["batch_size"]
            assert p["lines"] == f"seq{L}_b{B}_{name}.jsonl" and p["file"] == f"seq{L}_b{B}_{name}.json"
            lines = (model_dir / "payloads" / p["lines"]).read_text(encoding="utf-8")[:-1].split("\n")
            bodies = [json.loads(line) for line in lines]
            assert len(bodies) == 64 and len(set(lines)) == 64
            assert all(set(b) == {"inputs", "prompt_name"} and b["prompt_name"] == name for b in bodies)
            texts = [t for b in bodies for t in b["inputs"]]
            assert len(set(texts)) == len(texts) and all(len(b["inputs"]) == B for b in bodies)
            assert {count_tokens(tok, prompt + t) for t in texts} == {L}, p["lines"]
            first = json.loads((model_dir / "payloads" / p["file"]).read_text(encoding="utf-8"))
            assert first == bodies[0]
    # the default payloads stay bodies of documents without a prompt
    for p in index["payloads"]:
        if p["prompt_name"] is None:
            line = (model_dir / "payloads" / p["lines"]).read_text(encoding="utf-8").split("\n")[0]
            assert set(json.loads(line)) == {"inputs"}
