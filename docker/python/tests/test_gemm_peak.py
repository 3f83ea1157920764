"""The GEMM calibration module: arithmetic, timing loop, argument handling, the hand-written ONNX
model, error reporting and the JSON it prints (numpy and ONNX Runtime are in the test venv)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embbench_server import gemm_peak

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def test_gflops_is_two_n_cubed_per_multiply():
    assert gemm_peak.gflops(1000, 3, 2.0) == pytest.approx(3.0)  # 3 x 2e9 FLOP in 2 s
    assert gemm_peak.gflops(2048, 10, 1.0) == pytest.approx(2 * 2048**3 * 10 / 1e9)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_multiplies_warms_up_then_counts_the_timed_calls():
    clock = FakeClock()
    calls = []

    def run():
        calls.append(clock.now)
        clock.now += 0.25

    iterations, elapsed = gemm_peak.time_multiplies(run, 1.0, clock)
    # Warm-up: two calls (0.5 s, past a fifth of 1 s); then calls until 1 s has passed.
    assert (iterations, elapsed) == (4, 1.0)
    assert len(calls) == 6


def test_time_multiplies_warms_up_for_a_fifth_of_the_time_with_fast_calls():
    clock = FakeClock()
    calls = []

    def run():
        calls.append(clock.now)
        clock.now += 0.01

    iterations, elapsed = gemm_peak.time_multiplies(run, 1.0, clock)
    assert iterations == 100 and elapsed == pytest.approx(1.0)
    assert len(calls) - iterations == 20  # 0.2 s of warm-up


def test_a_slow_multiply_is_timed_at_least_once():
    clock = FakeClock()

    def run():
        clock.now += 5.0

    assert gemm_peak.time_multiplies(run, 1.0, clock) == (1, 5.0)


@pytest.mark.parametrize(
    "argv",
    [[], ["--threads", "0"], ["--threads", "two"], ["--threads", "1", "--seconds", "0"],
     ["--threads", "1", "--sizes", "a,b"], ["--threads", "1", "--sizes", "0"],
     ["--threads", "1", "--libraries", "numpy,mxnet"]],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        gemm_peak.parse_args(argv)
    assert e.value.code == 2
    assert capsys.readouterr().out == ""


def test_arguments_and_defaults():
    args = gemm_peak.parse_args(["--threads", "3"])
    assert (args.threads, args.seconds, args.sizes, args.libraries) == (
        3, 2.0, (1024, 2048), ("numpy", "onnxruntime", "torch", "openvino"))
    args = gemm_peak.parse_args(["--threads", "1", "--seconds", "0.5", "--sizes", "64,128", "--libraries", "numpy"])
    assert (args.seconds, args.sizes, args.libraries) == (0.5, (64, 128), ("numpy",))


def test_thread_variables_are_set_even_when_already_present(monkeypatch):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(name, "64")
    gemm_peak.limit_native_threads(3)
    assert [os.environ[n] for n in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")] == ["3"] * 3


def test_varint_encoding():
    assert gemm_peak._varint(0) == b"\x00"
    assert gemm_peak._varint(1) == b"\x01"
    assert gemm_peak._varint(300) == b"\xac\x02"
    assert gemm_peak._varint(2**32) == b"\x80\x80\x80\x80\x10"


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs onnxruntime")
def test_hand_written_onnx_model_multiplies_by_its_constant():
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 5), dtype=np.float32)
    b = rng.standard_normal((5, 5), dtype=np.float32)
    session = ort.InferenceSession(gemm_peak.matmul_model(b), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("a", [5, 5])]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("y", [5, 5])]
    (y,) = session.run(None, {"a": a})
    assert np.allclose(y, a @ b, atol=1e-5)


def test_measure_numpy_reports_version_blas_and_throughput():
    results = gemm_peak.measure_library("numpy", 1, 0.02, (16, 32))
    assert [r["size"] for r in results] == [16, 32]
    for r in results:
        assert r["library"] == "numpy" and r["version"] == np.__version__
        assert r["gflops"] > 0 and r["iterations"] >= 1
        assert "error" not in r
        assert r["blas"] is None or isinstance(r["blas"], str)


def test_a_missing_library_is_skipped(monkeypatch):
    monkeypatch.setattr(gemm_peak.importlib.util, "find_spec", lambda name: None)
    assert gemm_peak.measure_library("torch", 1, 0.01, (16,)) == []


def test_a_library_that_fails_to_load_is_reported(monkeypatch):
    def broken(threads):
        raise OSError("libcudart.so.12: cannot open shared object file")

    monkeypatch.setitem(gemm_peak.SETUPS, "numpy", broken)
    results = gemm_peak.measure_library("numpy", 1, 0.01, (16, 32))
    assert [(r["library"], r["size"], r["gflops"]) for r in results] == [("numpy", 16, None), ("numpy", 32, None)]
    assert all(r["error"] == "OSError: libcudart.so.12: cannot open shared object file" for r in results)
    assert results[0]["version"] == np.__version__  # from the installed package's metadata


def test_a_size_that_fails_is_reported_and_the_others_still_run(monkeypatch):
    def setup(threads):
        def make(n):
            if n == 32:
                raise MemoryError("no room")
            return lambda: None
        return "1.0", {"blas": "fake"}, make

    monkeypatch.setitem(gemm_peak.SETUPS, "numpy", setup)
    ok, failed = gemm_peak.measure_library("numpy", 1, 0.01, (16, 32))
    assert ok["gflops"] > 0 and "error" not in ok and ok["blas"] == "fake"
    assert failed == {"library": "numpy", "version": "1.0", "size": 32, "gflops": None,
                      "error": "MemoryError: no room", "blas": "fake"}


def test_command_prints_one_json_object_and_nothing_else():
    done = subprocess.run(
        [sys.executable, "-m", "embbench_server.gemm_peak", "--threads", "1", "--seconds", "0.05", "--sizes", "32,64"],
        cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=300, check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert set(report) == {"threads", "cpus", "results"}
    assert report["threads"] == 1
    assert report["cpus"] and all(part.replace("-", "").isdigit() for part in report["cpus"].split(","))
    present = [name for name in gemm_peak.LIBRARIES if importlib.util.find_spec(name) is not None]
    assert [(r["library"], r["size"]) for r in report["results"]] == [(n, s) for n in present for s in (32, 64)]
    for r in report["results"]:
        assert r["gflops"] > 0, r
        assert {"library", "version", "size", "gflops"} <= set(r)
    numpy_result = report["results"][0]
    assert numpy_result["library"] == "numpy" and numpy_result["version"] == np.__version__
    assert "gemm_peak: numpy" in done.stderr  # the log goes to stderr


def test_library_output_on_stdout_is_sent_to_stderr(monkeypatch, capfd):
    def chatty(threads):
        os.write(1, b"native banner\n")
        print("python banner")
        return "9.9", {}, lambda n: (lambda: None)

    monkeypatch.setitem(gemm_peak.SETUPS, "numpy", chatty)
    monkeypatch.setattr(gemm_peak, "SETTLE_SECONDS", 0)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(name, "1")  # restored after main() sets them
    assert gemm_peak.main(["--threads", "2", "--seconds", "0.01", "--sizes", "8", "--libraries", "numpy"]) == 0
    out, err = capfd.readouterr()
    report = json.loads(out)
    assert report["threads"] == 2
    assert [(r["library"], r["version"], r["size"]) for r in report["results"]] == [("numpy", "9.9", 8)]
    assert "native banner" in err and "python banner" in err
