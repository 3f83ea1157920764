"""GET /metrics, /info's startup stamps, os_threads and warmup, WARMUP, and the phase timings
(docker/CONTRACT.md), over the fake backend."""

from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import embbench_server.app as app_module
from conftest import MAX_SEQ

COUNTERS = (
    "embbench_requests_total", "embbench_inputs_total", "embbench_tokens_total",
    "embbench_request_seconds_total", "embbench_parse_seconds_total", "embbench_tokenize_seconds_total",
    "embbench_queue_seconds_total", "embbench_inference_seconds_total", "embbench_serialize_seconds_total",
)
BUCKETS = ("1", "2", "4", "8", "16", "32", "64", "128", "256", "+Inf")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{le="([^"]+)"\})? (\S+)$')


def parse_metrics(text: str) -> dict[str, float]:
    """A strict reader of the text format 0.0.4 as the contract writes it: every sample's family
    declared by a preceding # TYPE line, of the right type, each sample once, values numbers."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"{name} declared twice"
            types[name] = kind
            continue
        assert not line.startswith("#") or line.startswith("# HELP "), line
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, _, le, value = m.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if le is not None or name.endswith(("_sum", "_count")) else name
        assert family in types, f"{name} has no # TYPE before it"
        key = f'{name}{{le="{le}"}}' if le is not None else name
        assert key not in samples, f"{key} twice"
        samples[key] = float(value)
    assert {k: v for k, v in types.items()} == {**dict.fromkeys(COUNTERS, "counter"), "embbench_batch_size": "histogram"}
    return samples


def metrics(live) -> dict[str, float]:
    r = live.request("GET", "/metrics")
    assert r.status == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4"
    return parse_metrics(r.body.decode())


def bucket(le: str) -> str:
    return f'embbench_batch_size_bucket{{le="{le}"}}'


def test_metrics_start_at_zero_and_the_warmup_is_not_counted(start_server):
    live = start_server()
    assert live.backend.calls == [(1, 5)]  # the warm-up ran: [CLS] warm - up [SEP]
    m = metrics(live)
    assert set(m) == {*COUNTERS, *(bucket(le) for le in BUCKETS), "embbench_batch_size_sum", "embbench_batch_size_count"}
    assert all(value == 0 for value in m.values())


def test_metrics_is_served_while_loading_and_only_to_get(start_server):
    gate = threading.Event()
    live = start_server(load_gate=gate, wait=False)
    assert metrics(live)["embbench_requests_total"] == 0
    gate.set()
    live.wait_ready()
    r = live.request("POST", "/metrics", b"{}")
    assert r.status == 405
    assert r.json()["error_type"] == "MethodNotAllowed"
    assert r.headers["allow"] == "GET"


def test_counters_move_by_what_each_answered_request_carried(start_server):
    live = start_server(max_batch=4)
    before = metrics(live)
    bodies = [
        {"inputs": ["hello", "one two three"]},  # 2 inputs, 3 + 5 tokens (padding excluded)
        {"inputs": "hello world"},  # 1 input, 4 tokens
        {"inputs": ["one"] * 4},  # 4 inputs, 3 tokens each
        {"inputs": [" ".join(["two"] * 20)]},  # 1 input, truncated to MAX_SEQ tokens
    ]
    responses = [live.embed(body) for body in bodies]
    assert [r.status for r in responses] == [200] * 4
    after = metrics(live)
    delta = {k: after[k] - before[k] for k in after}
    assert delta["embbench_requests_total"] == 4
    assert delta["embbench_inputs_total"] == 8
    assert delta["embbench_tokens_total"] == 8 + 4 + 12 + MAX_SEQ
    # Batch sizes 2, 1, 4, 1: cumulative buckets.
    assert [delta[bucket(le)] for le in BUCKETS] == [2, 3, 4, 4, 4, 4, 4, 4, 4, 4]
    assert delta["embbench_batch_size_sum"] == 8
    assert delta["embbench_batch_size_count"] == 4
    phases = ("parse", "tokenize", "queue", "inference", "serialize")
    assert all(delta[f"embbench_{p}_seconds_total"] > 0 for p in ("request", *phases))
    # The phases tile the request: their sum is the request time.
    request = delta["embbench_request_seconds_total"]
    assert sum(delta[f"embbench_{p}_seconds_total"] for p in phases) == pytest.approx(request, rel=1e-9)
    # x-total-time is each request's `request` phase (headers carry 3 decimals of a millisecond).
    total_header = sum(float(r.headers["x-total-time"]) for r in responses) / 1000
    assert total_header == pytest.approx(request, abs=4 * 1e-6)


def test_answers_other_than_200_are_not_counted(start_server):
    live = start_server(max_batch=4, max_body_bytes=4096)
    before = metrics(live)
    assert live.embed({"inputs": "boom"}).status == 500  # inference ran, and failed
    assert live.embed({"inputs": ["a"] * 5}).status == 413
    assert live.request("POST", "/embed", b"x" * 5000).status == 413
    assert live.request("POST", "/embed", b'{"inputs": "a"}', content_type="text/plain").status == 415
    assert live.embed({"inputs": [" ".join(["one"] * 20)], "truncate": False}).status == 422
    assert live.request("POST", "/embed", b"{").status == 422
    assert live.request("GET", "/embed").status == 405
    assert live.request("GET", "/nope").status == 404
    assert live.request("GET", "/info").status == 200
    assert metrics(live) == before
    assert live.embed({"inputs": "hello"}).status == 200
    assert metrics(live)["embbench_requests_total"] == before["embbench_requests_total"] + 1


def test_requests_while_loading_are_not_counted(start_server):
    gate = threading.Event()
    live = start_server(load_gate=gate, wait=False)
    assert live.embed({"inputs": "hello"}).status == 503
    gate.set()
    live.wait_ready()
    assert metrics(live)["embbench_requests_total"] == 0


class SlowTokenizer:
    def __init__(self, inner, seconds: float):
        self.inner, self.seconds = inner, seconds

    def encode(self, texts):
        time.sleep(self.seconds)
        return self.inner.encode(texts)


def test_each_phase_and_header_measures_its_own_part(start_server, monkeypatch):
    """Parsing takes 0.3 s, tokenizing 0.05 s, inference 0.2 s ("slow"): each lands in its phase,
    and x-tokenization-time no longer includes the parsing."""
    live = start_server()
    parse = app_module.parse_embed_request

    def slow_parse(body, max_batch):
        time.sleep(0.3)
        return parse(body, max_batch)

    monkeypatch.setattr(app_module, "parse_embed_request", slow_parse)
    live.app.tokenizer = SlowTokenizer(live.app.tokenizer, 0.05)
    before = metrics(live)
    r = live.embed({"inputs": "slow"})
    assert r.status == 200
    d = {k: v - before[k] for k, v in metrics(live).items()}
    assert d["embbench_parse_seconds_total"] >= 0.3
    assert 0.05 <= d["embbench_tokenize_seconds_total"] < 0.3
    assert d["embbench_queue_seconds_total"] < 0.15
    assert d["embbench_inference_seconds_total"] >= 0.2
    tokenization, inference, total = (float(r.headers[f"x-{k}-time"]) for k in ("tokenization", "inference", "total"))
    assert 50 <= tokenization < 300  # the 300 ms of parsing are not in it
    assert tokenization == pytest.approx(d["embbench_tokenize_seconds_total"] * 1000, abs=0.001)
    assert inference >= 200
    assert inference == pytest.approx(
        (d["embbench_queue_seconds_total"] + d["embbench_inference_seconds_total"]) * 1000, abs=0.001
    )
    assert total >= 550


def test_the_wait_for_an_inference_slot_is_queue_not_inference(start_server):
    live = start_server(max_inflight=1)
    before = metrics(live)
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda _: live.embed({"inputs": "slow"}), range(2)))
    assert [r.status for r in responses] == [200, 200]
    d = {k: v - before[k] for k, v in metrics(live).items()}
    # Two 0.2 s inferences one after the other: one of them waited about 0.2 s for the slot.
    # (Were the wait counted as inference, the sum would be 0.6 s.)
    assert 0.4 <= d["embbench_inference_seconds_total"] < 0.55
    assert d["embbench_queue_seconds_total"] >= 0.15
    slowest = max(float(r.headers["x-inference-time"]) for r in responses)
    assert slowest >= 350


# ----- WARMUP and /info's startup block


def test_warmup_0_skips_the_warmup_inference(start_server):
    live = start_server(warmup=False)
    assert live.request("GET", "/health").status == 200
    assert live.backend.calls == []
    info = live.request("GET", "/info").json()
    assert info["warmup"] is False
    assert info["startup"]["model_loaded"] is not None
    assert info["startup"]["warmed"] is None
    assert live.embed({"inputs": "hello"}).status == 200
    assert metrics(live)["embbench_requests_total"] == 1


def test_warmup_1_runs_one_warmup_inference_before_health(start_server):
    live = start_server(warmup=True)
    assert live.backend.calls == [(1, 5)]  # "warm-up": [CLS] warm - up [SEP]
    info = live.request("GET", "/info").json()
    assert info["warmup"] is True
    assert info["startup"]["warmed"] is not None


def test_startup_stamps_are_ordered_and_null_until_reached(start_server):
    gate = threading.Event()
    live = start_server(load_gate=gate, wait=False, import_seconds=0.1)
    # While the model loads (load() waits on the gate): the runtime is ready, nothing after it.
    deadline = time.monotonic() + 10
    while live.request("GET", "/info").json()["startup"]["runtime_ready"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    startup = live.request("GET", "/info").json()["startup"]
    assert startup["clock"] == "monotonic"
    assert startup["model_loaded"] is None and startup["warmed"] is None
    # runtime_ready comes after the framework import (make_backend) and init_runtime.
    assert startup["runtime_ready"] >= live.made_at[0] >= startup["process_start"]
    assert startup["runtime_ready"] >= live.backend.runtime_initialised_at
    gate.set()
    live.wait_ready()
    asked = time.monotonic()
    info = live.request("GET", "/info").json()
    answered = time.monotonic()
    s = info["startup"]
    assert list(s) == ["clock", "process_start", "runtime_ready", "model_loaded", "warmed", "now"]
    assert s["process_start"] <= s["runtime_ready"] <= s["model_loaded"] <= s["warmed"] <= s["now"]
    # Same process, same clock: `now` is when the answer was made.
    assert asked <= s["now"] <= answered
    # This process (pytest) started before the server was created, and not in the future.
    assert s["process_start"] <= live.made_at[0] - 0.1


def test_load_delay_counts_as_model_load_not_runtime(start_server):
    live = start_server(load_delay_ms=300)
    s = live.request("GET", "/info").json()["startup"]
    assert s["model_loaded"] - s["runtime_ready"] >= 0.3
    assert s["runtime_ready"] - live.made_at[0] < 0.1


def test_os_threads_lists_this_process_threads_with_their_cpu_time(start_server):
    live = start_server()
    assert live.embed({"inputs": "hello"}).status == 200
    # Over INLINE_TOKENIZE_CHARS: tokenized in the tokenize pool, which so starts its thread.
    assert live.embed({"inputs": " ".join(["hello"] * 100)}).status == 200
    stop = threading.Event()
    busy: list[int] = []

    def spin() -> None:
        busy.append(threading.get_native_id())
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        stop.wait(10)

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        threads = {}
        while time.monotonic() < deadline:
            threads = {t["tid"]: t for t in live.request("GET", "/info").json()["os_threads"]}
            if busy and threads.get(busy[0], {}).get("cpu_seconds", 0) >= 0.25:
                break
            time.sleep(0.05)
        assert threads[busy[0]]["cpu_seconds"] >= 0.25  # 0.3 s of CPU, counted in 10 ms ticks
        assert os.getpid() in threads  # the main thread's tid is the pid
        assert all(set(t) == {"tid", "name", "cpu_seconds"} for t in threads.values())
        # The server names its pools' threads so they can be told apart.
        names = {t["name"] for t in threads.values()}
        assert {"tokenize", "infer"} <= names
    finally:
        stop.set()
        worker.join()


def test_batch_histogram_buckets_are_cumulative_and_large_batches_land_in_inf_only():
    from embbench_server.metrics import Metrics, Phases

    m = Metrics()
    zero = Phases(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for size in (1, 3, 256, 300):
        m.observe(size, 10 * size, zero)
        m.observe_inference(size)
    samples = parse_metrics(m.render().decode())
    assert [samples[bucket(le)] for le in BUCKETS] == [1, 1, 2, 2, 2, 2, 2, 2, 3, 4]
    assert samples["embbench_batch_size_sum"] == 560
    assert samples["embbench_batch_size_count"] == 4
    assert samples["embbench_tokens_total"] == 5600
    assert "embbench_requests_total 4\n" in m.render().decode()
