"""Settings, model spec, tokenizer set-up and cpuset formatting."""

from __future__ import annotations

import json

import pytest

from conftest import MAX_SEQ, VOCAB, write_model_dir
from embbench_server.config import ConfigError, load_model_spec, settings_from_env
from embbench_server.cpus import format_cpuset
from embbench_server.text_tokenizer import TextTokenizer


def test_settings_defaults_follow_the_contract():
    s = settings_from_env({"MODEL_DIR": "/m", "NUM_THREADS": "2"})
    assert (s.host, s.port, s.num_threads, s.max_batch, s.max_inflight, s.max_body_bytes, s.load_delay_ms) == (
        "127.0.0.1", 8080, 2, 64, 1, 2097152, 0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NUM_THREADS": "2"}, "MODEL_DIR is required"),
        ({"MODEL_DIR": "/m"}, "NUM_THREADS is required"),
        ({"MODEL_DIR": "/m", "NUM_THREADS": "two"}, "NUM_THREADS must be an integer: got 'two'"),
        ({"MODEL_DIR": "/m", "NUM_THREADS": "0"}, "NUM_THREADS must be >= 1: got 0"),
        ({"MODEL_DIR": "/m", "NUM_THREADS": "1", "MAX_INFLIGHT": "0"}, "MAX_INFLIGHT must be >= 1"),
    ],
)
def test_settings_errors_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        settings_from_env(env)


def test_model_spec_errors_name_the_file_and_field(tmp_path):
    with pytest.raises(ConfigError, match="embbench_model.json is missing"):
        load_model_spec(tmp_path)
    write_model_dir(tmp_path)
    spec_path = tmp_path / "embbench_model.json"
    spec = json.loads(spec_path.read_text())
    assert load_model_spec(tmp_path).pooling == "cls"
    spec["pooling"] = "max"
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match="field 'pooling' must be one of cls, mean, last_token: got 'max'"):
        load_model_spec(tmp_path)
    spec["pooling"], spec["embedding_dim"] = "cls", True
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match="field 'embedding_dim' must be int: got True"):
        load_model_spec(tmp_path)


@pytest.mark.parametrize("pad_source", ["tokenizer_config", "config"])
def test_tokenizer_pads_right_with_the_pad_id_and_truncates(tmp_path, pad_source):
    write_model_dir(tmp_path, pad_source=pad_source)
    tok = TextTokenizer(tmp_path / "pytorch", MAX_SEQ)
    batch = tok.encode(["hello", "one two three", "", " ".join(["six"] * 30)])
    cls, sep, pad = VOCAB["[CLS]"], VOCAB["[SEP]"], VOCAB["[PAD]"]
    assert batch.input_ids.dtype.name == "int64" and batch.attention_mask.dtype.name == "int64"
    assert batch.input_ids.shape == (4, MAX_SEQ)
    assert batch.input_ids[0].tolist() == [cls, VOCAB["hello"], sep] + [pad] * 5
    assert batch.attention_mask[0].tolist() == [1, 1, 1] + [0] * 5
    assert batch.input_ids[2].tolist()[:2] == [cls, sep]
    assert batch.input_ids[3].tolist() == [cls] + [VOCAB["six"]] * 6 + [sep]
    assert batch.truncated == (False, False, False, True)


def test_tokenizer_ignores_a_fixed_padding_length_saved_in_the_file(tmp_path):
    write_model_dir(tmp_path, padding_in_tokenizer=True)
    batch = TextTokenizer(tmp_path / "pytorch", MAX_SEQ).encode(["hello", "one two"])
    assert batch.input_ids.shape == (2, 4)


def test_tokenizer_without_a_pad_token_is_a_config_error(tmp_path):
    write_model_dir(tmp_path, pad_source="none")
    with pytest.raises(ConfigError, match="no pad token found"):
        TextTokenizer(tmp_path / "pytorch", MAX_SEQ)


@pytest.mark.parametrize(
    ("cpus", "expected"),
    [({0}, "0"), ({0, 1}, "0-1"), ({0, 1, 2, 5, 7, 8}, "0-2,5,7-8"), ({3, 1}, "1,3")],
)
def test_format_cpuset(cpus, expected):
    assert format_cpuset(cpus) == expected


@pytest.mark.parametrize(("raw", "expected"), [(None, True), ("", True), ("1", True), ("0", False), (" 0 ", False)])
def test_warmup_is_a_0_or_1_switch_defaulting_to_1(raw, expected):
    env = {"MODEL_DIR": "/m", "NUM_THREADS": "1"}
    if raw is not None:
        env["WARMUP"] = raw
    assert settings_from_env(env).warmup is expected


@pytest.mark.parametrize("raw", ["x", "true", "2", "-1", "yes"])
def test_malformed_warmup_is_a_config_error_naming_it(raw):
    with pytest.raises(ConfigError, match=f"WARMUP must be 0 or 1: got '{raw}'"):
        settings_from_env({"MODEL_DIR": "/m", "NUM_THREADS": "1", "WARMUP": raw})


def test_malformed_warmup_exits_2_before_anything_loads():
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "MODEL_DIR": "/nonexistent", "NUM_THREADS": "1", "WARMUP": "x", "EMBBENCH_BACKEND": "onnxruntime"}
    done = subprocess.run([sys.executable, "-m", "embbench_server"], cwd=Path(__file__).resolve().parents[1],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "WARMUP must be 0 or 1: got 'x'" in done.stderr


@pytest.mark.parametrize(
    ("module", "framework"),
    [("torch_backend", "torch"), ("onnxruntime_backend", "onnxruntime"), ("openvino_backend", "openvino")],
)
def test_backend_modules_import_their_framework_and_nothing_of_the_model_at_the_top(module, framework):
    """runtime_ready is stamped once make_backend has imported the backend's module: the framework
    must be imported there, and a model library (transformers) only in load()."""
    import ast
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "embbench_server" / "backends" / f"{module}.py"
    top: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            top |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            top.add(node.module.split(".")[0])
    assert framework in top
    assert "transformers" not in top


def test_backend_class_imports_the_framework():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from embbench_server.backends import backend_class; "
            "assert 'onnxruntime' not in sys.modules; backend_class('onnxruntime'); "
            "assert 'onnxruntime' in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
