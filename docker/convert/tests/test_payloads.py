"""Request bodies: every text has exactly L tokens with the model's own tokenizer."""

import json

import pytest

from conftest import CORPUS_DIR, convert, run_cli
from embbench_convert.corpus import count_tokens
from embbench_convert.payloads import load_plain_tokenizer


def check_payloads(model_dir, expected):
    tok = load_plain_tokenizer(model_dir / "pytorch" / "tokenizer.json")
    index = json.loads((model_dir / "payloads" / "index.json").read_text())
    assert [(p["seq_len"], p["batch_size"]) for p in index["payloads"]] == expected
    for p in index["payloads"]:
        inputs = json.loads((model_dir / "payloads" / p["file"]).read_text(encoding="utf-8"))["inputs"]
        assert len(inputs) == p["batch_size"]
        if p["seq_len"] >= 8:  # a text of one or two real tokens may well repeat
            assert len(set(inputs)) == len(inputs), f"{p['file']}: repeated texts"
        assert [count_tokens(tok, t) for t in inputs] == [p["seq_len"]] * p["batch_size"], p["file"]


@pytest.mark.parametrize(
    "fixture, expected",
    [
        ("tiny_xlmr", [(32, 1), (32, 8), (128, 1), (128, 8), (512, 1), (512, 8)]),
        # minilm's max_seq_length is 256: 512 is capped to it
        ("minilm", [(32, 1), (32, 8), (128, 1), (128, 8), (256, 1), (256, 8)]),
    ],
)
def test_convert_writes_default_payloads_with_exact_token_counts(request, fixture, expected):
    check_payloads(request.getfixturevalue(fixture), expected)


def test_payloads_command_rewrites_bodies_and_keeps_the_folder_up_to_date(tiny_xlmr, tmp_path):
    import shutil

    model = tmp_path / "tiny-xlmr"
    shutil.copytree(tiny_xlmr, model)
    run = run_cli("payloads", "--model-dir", str(model), "--seq-lens", "2,3,17,64,1000", "--batch-sizes", "3,1",
                  "--corpus-dir", str(CORPUS_DIR))
    assert run.returncode == 0, run.stderr
    assert run.summary["status"] == "ok"
    check_payloads(model, [(n, b) for n in (2, 3, 17, 64, 512) for b in (1, 3)])
    again = convert("tiny-xlmr", model, "--fp16")
    assert again.returncode == 0 and again.summary["status"] == "up to date", again.stderr


def test_payloads_command_rejects_bad_lists(tiny_xlmr):
    run = run_cli("payloads", "--model-dir", str(tiny_xlmr), "--seq-lens", "32,abc")
    assert run.returncode == 2 and "--seq-lens" in run.stderr
    run = run_cli("payloads", "--model-dir", str(tiny_xlmr.parent / "missing"))
    assert run.returncode == 2 and "run convert first" in run.stderr
