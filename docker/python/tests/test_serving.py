"""SERVING=sequential|batched over HTTP (docker/CONTRACT.md, "Serving modes and the batcher"), the
request path (small requests tokenized on the event loop) and the serving configuration."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import expected_row
from embbench_server.config import ConfigError, settings_from_env
from test_observability import metrics

HERE = Path(__file__).resolve().parents[1]


def wait_until(predicate, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def hold_the_worker(live, pool: ThreadPoolExecutor):
    """Sends a request that holds the inference thread until live.backend.gate is set."""
    live.backend.gate.clear()
    held = pool.submit(live.embed, {"inputs": "gate"})
    wait_until(lambda: live.backend.active == 1)
    return held


# ----- batched


def test_batched_concurrent_requests_share_one_inference_and_each_gets_its_own_rows(start_server):
    live = start_server(serving="batched", max_batch=4)
    bodies = [["one two"], ["three", "four five six"], ["hello world", "two", "slow one"], ["six"], ["five four"]]
    before = metrics(live)
    with ThreadPoolExecutor(8) as pool:
        held = hold_the_worker(live, pool)
        futures = [pool.submit(live.embed, {"inputs": texts}) for texts in bodies]
        wait_until(lambda: live.app.batcher.queued() == len(bodies))
        live.backend.gate.set()
        responses = [f.result() for f in futures]
        assert held.result().status == 200
    for texts, r in zip(bodies, responses):
        assert r.status == 200, r.body
        assert np.allclose(r.json(), [expected_row(t.split()) for t in texts], atol=1e-6)
        # "slow" makes the shared inference take 0.2 s: every request of it counts it whole.
        assert float(r.headers["x-inference-time"]) >= 200
    rows = sum(len(texts) for texts in bodies)
    # The gate's inference, then one inference of all 8 rows, padded to the longest (5 tokens).
    assert live.backend.calls[-2:] == [(1, 3), (rows, 5)]
    d = {k: v - before[k] for k, v in metrics(live).items()}
    assert d["embbench_requests_total"] == len(bodies) + 1
    assert d["embbench_inputs_total"] == rows + 1
    assert d["embbench_batch_size_count"] == 2
    assert d["embbench_batch_size_sum"] == rows + 1
    assert d['embbench_batch_size_bucket{le="1"}'] == 1 and d['embbench_batch_size_bucket{le="8"}'] == 2
    assert d["embbench_inference_seconds_total"] >= len(bodies) * 0.2
    # Each queued request waited for the gate's inference: queue, not inference.
    assert d["embbench_queue_seconds_total"] > 0
    phases = ("parse", "tokenize", "queue", "inference", "serialize")
    assert sum(d[f"embbench_{p}_seconds_total"] for p in phases) == pytest.approx(
        d["embbench_request_seconds_total"], rel=1e-9)


def test_batched_rows_do_not_depend_on_the_batch(start_server):
    live = start_server(serving="batched", max_batch=4)
    alone = {t: live.embed({"inputs": [t]}).json()[0] for t in ("one", "two three four five six", "hello")}
    with ThreadPoolExecutor(4) as pool:
        held = hold_the_worker(live, pool)
        futures = {t: pool.submit(live.embed, {"inputs": [t]}) for t in alone}
        wait_until(lambda: live.app.batcher.queued() == 3)
        live.backend.gate.set()
        for t, f in futures.items():
            assert f.result().json()[0] == pytest.approx(alone[t], abs=1e-6)
        held.result()
    assert live.backend.calls[-1] == (3, 7)


def test_batched_respects_max_batch_tokens_and_keeps_arrival_order(start_server):
    # 3 tokens per request ([CLS] word [SEP]): 2 requests fill 6 padded tokens.
    live = start_server(serving="batched", max_batch_tokens=6)
    words = ["one", "two", "three", "four", "five"]
    with ThreadPoolExecutor(6) as pool:
        held = hold_the_worker(live, pool)
        futures = []
        for i, w in enumerate(words):  # one after the other, so the queue order is known
            futures.append(pool.submit(live.embed, {"inputs": w}))
            wait_until(lambda: live.app.batcher.queued() == i + 1)
        live.backend.gate.set()
        for w, f in zip(words, futures):
            assert f.result().json() == [pytest.approx(expected_row([w]), abs=1e-6)]
        held.result()
    from conftest import VOCAB

    order = [[int(r[1]) for r in ids] for ids, _ in live.backend.batches[-3:]]
    assert order == [[VOCAB["one"], VOCAB["two"]], [VOCAB["three"], VOCAB["four"]], [VOCAB["five"]]]


def test_batched_a_failing_request_fails_alone(start_server):
    live = start_server(serving="batched")
    with ThreadPoolExecutor(4) as pool:
        held = hold_the_worker(live, pool)
        futures = [pool.submit(live.embed, {"inputs": t}) for t in ("one", "boom", "two")]
        wait_until(lambda: live.app.batcher.queued() == 3)
        live.backend.gate.set()
        statuses = [f.result().status for f in futures]
        held.result()
    assert statuses == [200, 500, 200]
    assert futures[1].result().json()["error_type"] == "Backend"


def test_batched_request_at_low_load_runs_at_once(start_server):
    live = start_server(serving="batched")
    r = live.embed({"inputs": "hello"})
    assert r.status == 200
    assert float(r.headers["x-inference-time"]) < 50


def test_batched_max_wait_us_lets_a_lone_request_wait_for_company(start_server):
    live = start_server(serving="batched", max_wait_us=300_000)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(live.embed, {"inputs": "one"})
        time.sleep(0.1)
        second = pool.submit(live.embed, {"inputs": "two"})
        r1, r2 = first.result(), second.result()
    assert live.backend.calls[-1] == (2, 3)
    assert float(r1.headers["x-inference-time"]) >= 290  # waited for MAX_WAIT_US in the queue
    assert r2.json() == [pytest.approx(expected_row(["two"]), abs=1e-6)]


# ----- sequential


def test_sequential_runs_requests_one_by_one_in_arrival_order(start_server):
    live = start_server(serving="sequential")
    words = ["one", "two", "three", "four"]
    with ThreadPoolExecutor(6) as pool:
        held = hold_the_worker(live, pool)
        futures = []
        for i, w in enumerate(words):
            futures.append(pool.submit(live.embed, {"inputs": w}))
            wait_until(lambda: live.app.batcher.queued() == i + 1)
        live.backend.gate.set()
        assert [f.result().status for f in futures] == [200] * 4
        held.result()
    from conftest import VOCAB

    assert [ids.tolist() for ids, _ in live.backend.batches[-4:]] == [
        [[VOCAB["[CLS]"], VOCAB[w], VOCAB["[SEP]"]]] for w in words
    ]


# ----- the request path


class ThreadRecordingTokenizer:
    def __init__(self, inner):
        self.inner = inner
        self.pad_id = inner.pad_id
        self.threads: list[str] = []

    def encode(self, texts):
        self.threads.append(threading.current_thread().name)
        return self.inner.encode(texts)


def test_small_requests_are_tokenized_on_the_event_loop_and_large_ones_in_the_pool(start_server):
    live = start_server(max_batch=4, inline_tokenize_chars=40)
    tokenizer = live.app.tokenizer = ThreadRecordingTokenizer(live.app.tokenizer)
    loop_thread = []
    live.app._loop.call_soon_threadsafe(lambda: loop_thread.append(threading.current_thread().name))
    wait_until(lambda: loop_thread)
    small = live.embed({"inputs": ["one two", "three"]})  # 12 characters
    large = live.embed({"inputs": ["one two three four five six", "hello world hello world"]})  # 50
    assert small.status == large.status == 200
    assert large.json()[1] == pytest.approx(expected_row("hello world hello world".split()), abs=1e-6)
    assert tokenizer.threads[0] == loop_thread[0]
    assert tokenizer.threads[1].startswith("tokenize")
    assert live.request("GET", "/info").json()["build"]["tokenize_inline_chars"] == 40


def test_warmup_and_inference_run_in_the_inference_thread_never_on_the_loop(start_server):
    live = start_server(serving="batched")
    assert live.backend.threads == {"infer-0"}  # the warm-up
    live.embed({"inputs": "hello"})
    assert live.backend.threads == {"infer-0"}


def test_info_reports_the_serving_mode(start_server):
    sequential = start_server().request("GET", "/info").json()
    assert sequential["serving"] == {"mode": "sequential", "max_batch_tokens": 16384, "max_wait_us": 0}
    batched = start_server(serving="batched", max_batch_tokens=512, max_wait_us=250).request("GET", "/info").json()
    assert batched["serving"] == {"mode": "batched", "max_batch_tokens": 512, "max_wait_us": 250}
    # Which CPUs each thread may use, once loaded.
    threads = batched["build"]["thread_cpus_after_load"]
    assert threads and all(set(t) == {"tid", "name", "cpus"} for t in threads)


# ----- configuration


def test_serving_settings_default_to_the_contract():
    s = settings_from_env({"MODEL_DIR": "/m", "NUM_THREADS": "1"})
    assert (s.serving, s.max_batch_tokens, s.max_wait_us, s.tokenize_inline_chars) == ("sequential", 16384, 0, 512)
    s = settings_from_env({"MODEL_DIR": "/m", "NUM_THREADS": "1", "SERVING": " batched ", "MAX_BATCH_TOKENS": "4096",
                           "MAX_WAIT_US": "500", "TOKENIZE_INLINE_CHARS": "0"})
    assert (s.serving, s.max_batch_tokens, s.max_wait_us, s.tokenize_inline_chars) == ("batched", 4096, 500, 0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SERVING": "batch"}, "SERVING must be one of sequential, batched: got 'batch'"),
        ({"SERVING": "Batched"}, "SERVING must be one of sequential, batched"),
        ({"MAX_BATCH_TOKENS": "0"}, "MAX_BATCH_TOKENS must be >= 1: got 0"),
        ({"MAX_BATCH_TOKENS": "16k"}, "MAX_BATCH_TOKENS must be an integer: got '16k'"),
        ({"MAX_WAIT_US": "-1"}, "MAX_WAIT_US must be >= 0: got -1"),
        ({"MAX_WAIT_US": "1.5"}, "MAX_WAIT_US must be an integer"),
        ({"TOKENIZE_INLINE_CHARS": "-5"}, "TOKENIZE_INLINE_CHARS must be >= 0"),
    ],
)
def test_malformed_serving_settings_are_config_errors_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        settings_from_env({"MODEL_DIR": "/m", "NUM_THREADS": "1", **env})


@pytest.mark.parametrize(
    ("backend", "env", "message"),
    [
        ("onnxruntime", {"SERVING": "fast"}, "SERVING must be one of sequential, batched: got 'fast'"),
        ("onnxruntime", {"MAX_WAIT_US": "x"}, "MAX_WAIT_US must be an integer: got 'x'"),
        ("onnxruntime", {"ORT_INTRA_OP_SPINNING": "yes"}, "ORT_INTRA_OP_SPINNING must be 0 or 1: got 'yes'"),
        ("openvino", {"OV_HINT": "FAST"}, "OV_HINT must be LATENCY or THROUGHPUT: got 'FAST'"),
        ("openvino", {"OV_CPU_PINNING": "1"}, "OV_CPU_PINNING must be true or false: got '1'"),
    ],
)
def test_malformed_settings_exit_2_before_anything_loads(tmp_path, backend, env, message):
    from conftest import write_model_dir

    model = write_model_dir(tmp_path / "m")
    full = {**os.environ, "MODEL_DIR": str(model), "NUM_THREADS": "1", "EMBBENCH_BACKEND": backend, "PORT": "0", **env}
    done = subprocess.run([sys.executable, "-m", "embbench_server"], cwd=HERE, env=full, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_inference_threads_start_on_the_whole_cpuset_whatever_the_loading_thread_was_pinned_to(start_server):
    """GNU OpenMP pins the thread that loads it (torch's import, in the loading thread); the inference
    threads started from there must not inherit that one CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    seen: list[set[int]] = []

    def pin_the_loader(backend) -> None:
        os.sched_setaffinity(0, {cpus[0]})  # what libgomp's initial binding does to the loading thread
        backend.prepare_inference_thread = lambda index: seen.append(os.sched_getaffinity(0))

    start_server(on_make=pin_the_loader)
    assert seen == [set(cpus)]
