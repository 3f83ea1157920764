"""Threads on the right cores, the ONNX Runtime graph and session options, the framework variables,
and bench_run. The ONNX Runtime backend runs for real where the host venv has it; the real-model
tests use models/minilm when `embbench convert` has written it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import write_model_dir
from embbench_server.config import ConfigError, Settings, load_model_spec
from embbench_server.cpus import cpus_by_core, pin_this_thread, thread_cpus
from embbench_server.options import ort_options, ov_options, set_native_thread_env

HERE = Path(__file__).resolve().parents[1]
MINILM = HERE.parents[1] / "models" / "minilm"
needs_minilm = pytest.mark.skipif(not (MINILM / "onnx" / "model.onnx").is_file(), reason="models/minilm not converted")


def fake_sysfs(root: Path, cores: dict[int, tuple[int, int]]) -> Path:
    for cpu, (package, core) in cores.items():
        topology = root / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    return root


# ----- CPUs


def test_cpus_by_core_puts_one_cpu_of_each_core_before_any_sibling(tmp_path):
    # 4 cores with hyperthreads: cpu n and n + 4 are siblings.
    sysfs = fake_sysfs(tmp_path, {c: (0, c % 4) for c in range(8)})
    assert cpus_by_core(range(8), sysfs) == [0, 1, 2, 3, 4, 5, 6, 7]
    # A cpuset of two cores and their siblings.
    assert cpus_by_core([1, 2, 5, 6], sysfs) == [1, 2, 5, 6]
    assert cpus_by_core([5, 1, 6], sysfs) == [1, 6, 5]
    # Two packages with the same core ids are different cores.
    sysfs2 = fake_sysfs(tmp_path / "two", {0: (0, 0), 1: (1, 0), 2: (0, 0), 3: (1, 0)})
    assert cpus_by_core(range(4), sysfs2) == [0, 1, 2, 3]


def test_thread_cpus_wraps_around_when_there_are_more_threads_than_cpus(tmp_path):
    sysfs = fake_sysfs(tmp_path, {0: (0, 0), 1: (0, 1), 2: (0, 0), 3: (0, 1)})
    assert thread_cpus(2, [0, 1, 2, 3], sysfs) == [0, 1]
    assert thread_cpus(3, [2, 3], sysfs) == [2, 3, 2]
    # Without readable topology each CPU is its own core.
    assert thread_cpus(2, [4, 7], tmp_path / "none") == [4, 7]


def test_pin_this_thread_pins_the_calling_thread_only():
    cpus = sorted(os.sched_getaffinity(0))
    seen: list[set[int]] = []

    def pinned() -> None:
        assert pin_this_thread(cpus[-1])
        seen.append(os.sched_getaffinity(0))

    t = threading.Thread(target=pinned)
    t.start()
    t.join()
    assert seen == [{cpus[-1]}]
    assert sorted(os.sched_getaffinity(0)) == cpus


# ----- native thread variables


def test_torch_gets_openmp_bound_to_cores_unless_the_user_chose():
    env: dict[str, str] = {}
    set_here = set_native_thread_env("torch", 3, env)
    assert env["OMP_PLACES"] == "cores" and env["OMP_PROC_BIND"] == "close"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3"
    assert env["TOKENIZERS_PARALLELISM"] == "false"
    assert set(set_here) == {"OMP_PLACES", "OMP_PROC_BIND", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"}
    # A user's binding (either variable) is kept, and the other one is not added.
    env = {"OMP_PROC_BIND": "spread", "OMP_NUM_THREADS": "2"}
    set_here = set_native_thread_env("torch", 3, env)
    assert env["OMP_PROC_BIND"] == "spread" and "OMP_PLACES" not in env and env["OMP_NUM_THREADS"] == "2"
    assert "OMP_PROC_BIND" not in set_here and "OMP_NUM_THREADS" not in set_here


@pytest.mark.parametrize("framework", ["onnxruntime", "openvino"])
def test_other_frameworks_get_no_openmp_binding(framework):
    env: dict[str, str] = {}
    set_native_thread_env(framework, 2, env)
    assert "OMP_PLACES" not in env and "OMP_PROC_BIND" not in env and env["OMP_NUM_THREADS"] == "2"


def test_framework_options_defaults_and_values():
    assert ort_options({}).spinning is False
    assert ort_options({"ORT_INTRA_OP_SPINNING": "1"}).spinning is True
    ov = ov_options({})
    assert (ov.hint, ov.ir_dir, ov.cpu_pinning, ov.cpu_pinning_from_env) == ("LATENCY", "openvino", True, False)
    ov = ov_options({"OV_HINT": "throughput", "OV_CPU_PINNING": "False", "OV_IR_DIR": "openvino_fp16"})
    assert (ov.hint, ov.ir_dir, ov.cpu_pinning, ov.cpu_pinning_from_env) == ("THROUGHPUT", "openvino_fp16", False, True)
    with pytest.raises(ConfigError, match="OV_IR_DIR must be a folder inside MODEL_DIR"):
        ov_options({"OV_IR_DIR": "../elsewhere"})


# ----- embbench_model.json's ort_graph


def test_ort_graph_is_optional_and_must_be_a_path_inside_the_model_dir(tmp_path):
    model = write_model_dir(tmp_path / "m")
    assert load_model_spec(model).ort_graph is None
    spec_path = model / "embbench_model.json"
    spec = json.loads(spec_path.read_text())
    for bad, message in ((5, "non-empty string"), ("", "non-empty string"), ("/abs/model.onnx", "inside MODEL_DIR"),
                         ("../x.onnx", "inside MODEL_DIR")):
        spec_path.write_text(json.dumps({**spec, "ort_graph": bad}))
        with pytest.raises(ConfigError, match=f"ort_graph' must be a {message}" if "string" in message else message):
            load_model_spec(model)
    spec_path.write_text(json.dumps({**spec, "ort_graph": "onnx/model_fused.onnx"}))
    assert load_model_spec(model).ort_graph == "onnx/model_fused.onnx"


# ----- the ONNX Runtime backend's session

ort = pytest.importorskip("onnxruntime")


class RecordingSession:
    """Stands for ort.InferenceSession: records the path and options it was created with."""

    created: list[tuple[str, object]] = []

    def __init__(self, path, options, providers=None):
        RecordingSession.created.append((path, options))

    def get_inputs(self):
        return [type("I", (), {"name": n})() for n in ("input_ids", "attention_mask")]

    def get_outputs(self):
        return [type("O", (), {"name": "sentence_embedding"})()]

    def get_providers(self):
        return ["CPUExecutionProvider"]


def ort_backend(model_dir: Path, num_threads: int, max_inflight: int = 1):
    from embbench_server.backends.onnxruntime_backend import OnnxRuntimeBackend

    settings = Settings(model_dir=model_dir, host="127.0.0.1", port=0, num_threads=num_threads, max_batch=4,
                        max_inflight=max_inflight, max_body_bytes=4096, load_delay_ms=0)
    return OnnxRuntimeBackend(load_model_spec(model_dir), settings)


def model_with_graphs(tmp_path: Path, *files: str, ort_graph: str | None = None) -> Path:
    model = write_model_dir(tmp_path / "m")
    for name in files:
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(b"graph")
    if ort_graph is not None:
        spec_path = model / "embbench_model.json"
        spec_path.write_text(json.dumps({**json.loads(spec_path.read_text()), "ort_graph": ort_graph}))
    return model


@pytest.fixture
def recording_session(monkeypatch):
    import embbench_server.backends.onnxruntime_backend as module

    RecordingSession.created = []
    monkeypatch.setattr(module.ort, "InferenceSession", RecordingSession)
    monkeypatch.delenv("ORT_INTRA_OP_SPINNING", raising=False)
    return RecordingSession.created


def test_ort_loads_the_graph_embbench_model_json_names(tmp_path, recording_session):
    model = model_with_graphs(tmp_path, "onnx/model.onnx", "onnx/model_fused.onnx", ort_graph="onnx/model_fused.onnx")
    backend = ort_backend(model, 1)
    backend.load()
    assert recording_session[0][0] == str(model / "onnx" / "model_fused.onnx")
    assert backend.build_info()["model_file"] == "onnx/model_fused.onnx"


def test_ort_loads_model_onnx_when_no_graph_is_named(tmp_path, recording_session):
    model = model_with_graphs(tmp_path, "onnx/model.onnx", "onnx/model_fused.onnx")
    backend = ort_backend(model, 1)
    backend.load()
    assert recording_session[0][0] == str(model / "onnx" / "model.onnx")
    assert backend.build_info()["model_file"] == "onnx/model.onnx"


def test_ort_named_graph_missing_is_an_error_not_a_fallback(tmp_path, recording_session):
    model = model_with_graphs(tmp_path, "onnx/model.onnx", ort_graph="onnx/model_fused.onnx")
    with pytest.raises(ConfigError, match="model_fused.onnx is missing .*ort_graph names it"):
        ort_backend(model, 1).load()
    assert recording_session == []


def test_ort_session_options_follow_the_contract(tmp_path, recording_session, monkeypatch):
    import embbench_server.backends.onnxruntime_backend as module

    monkeypatch.setattr(module, "thread_cpus", lambda n: [4, 6, 5][:n])
    model = model_with_graphs(tmp_path, "onnx/model.onnx")
    backend = ort_backend(model, 3)
    backend.load()
    options = recording_session[0][1]
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (3, 1)
    assert options.enable_cpu_mem_arena is True
    # The two pool threads on CPUs 6 and 5, in ONNX Runtime's numbering from 1; the caller takes 4.
    assert options.get_session_config_entry("session.intra_op_thread_affinities") == "7;6"
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    info = backend.build_info()
    assert info["intra_op_spinning"] is False
    assert info["intra_op_thread_affinities"] == "7;6"
    assert info["thread_cpus"] == [4, 6, 5]
    monkeypatch.setenv("ORT_INTRA_OP_SPINNING", "1")
    ort_backend(model, 3).load()
    assert recording_session[1][1].get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_ort_one_thread_sets_no_affinity_string(tmp_path, recording_session):
    backend = ort_backend(model_with_graphs(tmp_path, "onnx/model.onnx"), 1)
    backend.load()
    with pytest.raises(Exception):
        recording_session[0][1].get_session_config_entry("session.intra_op_thread_affinities")
    assert backend.build_info()["intra_op_thread_affinities"] is None


def test_ort_pins_the_single_inference_thread_to_the_first_cpu(tmp_path, recording_session):
    cpus = sorted(os.sched_getaffinity(0))
    backend = ort_backend(model_with_graphs(tmp_path, "onnx/model.onnx"), 1)
    backend.load()
    backend.cpus = [cpus[-1]]
    seen = []

    def worker(index):
        backend.prepare_inference_thread(index)
        seen.append(os.sched_getaffinity(0))

    t = threading.Thread(target=worker, args=(0,))
    t.start()
    t.join()
    assert seen == [{cpus[-1]}]
    assert backend.build_info()["inference_thread_cpus"] == str(cpus[-1])
    # With several inference threads sharing the session's pool, none is pinned.
    backend2 = ort_backend(model_with_graphs(tmp_path / "b", "onnx/model.onnx"), 1, max_inflight=2)
    backend2.load()
    t = threading.Thread(target=lambda: (backend2.prepare_inference_thread(0), seen.append(os.sched_getaffinity(0))))
    t.start()
    t.join()
    assert seen[1] == set(cpus)


@needs_minilm
def test_ort_real_session_both_graph_paths_embed_alike(tmp_path):
    from embbench_server.text_tokenizer import TextTokenizer

    copy = tmp_path / "minilm"
    shutil.copytree(MINILM, copy, ignore=shutil.ignore_patterns("openvino", "payloads", "reference"))
    spec = load_model_spec(copy)
    tokenizer = TextTokenizer(copy / "pytorch", spec.max_seq_length)
    batch = tokenizer.encode(["a short one", "and a somewhat longer sentence to pad the other"])
    default = ort_backend(copy, 1)
    default.load()
    a = default.embed(batch)
    # Name another file as ort_graph (the fused graph where convert wrote one; a copy here).
    (copy / "onnx" / "named.onnx").write_bytes((copy / "onnx" / "model.onnx").read_bytes())
    spec_path = copy / "embbench_model.json"
    spec_path.write_text(json.dumps({**json.loads(spec_path.read_text()), "ort_graph": "onnx/named.onnx"}))
    named = ort_backend(copy, 2)
    named.load()
    b = named.embed(batch)
    assert named.build_info()["model_file"] == "onnx/named.onnx"
    assert a.shape == (2, spec.embedding_dim)
    assert np.abs(a - b).max() < 1e-5


# ----- bench_run


def test_bench_run_percentiles_and_payloads(tmp_path):
    from embbench_server.bench_run import percentile, read_payload, summarize

    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.9) == 5.0
    s = summarize([0.001 * i for i in range(1, 11)])
    assert (s["median_ms"], s["p10_ms"], s["p90_ms"], s["min_ms"], s["max_ms"]) == (5.5, 1.9, 9.1, 1.0, 10.0)
    one = tmp_path / "b.json"
    one.write_text(json.dumps({"inputs": "hello"}))
    assert read_payload(one) == ["hello"]
    lines = tmp_path / "b.jsonl"
    lines.write_text(json.dumps({"inputs": ["a", "b"]}) + "\n" + json.dumps({"inputs": ["c"]}) + "\n")
    assert read_payload(lines) == ["a", "b"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"inputs": []}))
    with pytest.raises(ValueError, match="non-empty list"):
        read_payload(bad)


def test_bench_run_config_errors_exit_2(tmp_path):
    env = {**os.environ, "MODEL_DIR": str(write_model_dir(tmp_path / "m")), "NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "embbench_server.bench_run", "--backend", "onnxruntime",
                           "--payload", str(tmp_path / "none.json")], cwd=HERE, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "none.json cannot be read" in done.stderr
    done = subprocess.run([sys.executable, "-m", "embbench_server.bench_run", "--backend", "tensorflow",
                           "--payload", "x.json"], cwd=HERE, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown backend 'tensorflow'" in done.stderr


@needs_minilm
def test_bench_run_times_the_real_backend_and_prints_one_json_object():
    env = {**os.environ, "MODEL_DIR": str(MINILM), "NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "embbench_server.bench_run", "--backend", "onnxruntime",
                           "--payload", str(MINILM / "payloads" / "seq32_b1.json"), "--runs", "5", "--warmup", "1"],
                          cwd=HERE, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["backend"] == "onnxruntime" and result["runs"] == 5
    assert (result["rows"], result["seq_len"]) == (1, 32)
    assert 0 < result["p10_ms"] <= result["median_ms"] <= result["p90_ms"]
    assert result["session"]["model_file"] in ("onnx/model.onnx", "onnx/model_fused.onnx")
    assert result["session"]["intra_op_num_threads"] == 1
