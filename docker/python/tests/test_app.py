"""The HTTP contract (docker/CONTRACT.md) as a client sees it, over a fake backend."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import DIM, MAX_SEQ, expected_row


def assert_error(response, status: int, error_type: str, mentions: str = "") -> None:
    assert response.status == status, response.body
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_type"}
    assert body["error_type"] == error_type
    assert mentions in body["error"]


def test_embed_answers_one_row_per_input_in_order(start_server):
    live = start_server()
    r = live.embed({"inputs": ["three two", "hello", "one two three four"]})
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    expected = [expected_row(["three", "two"]), expected_row(["hello"]), expected_row(["one", "two", "three", "four"])]
    assert np.allclose(r.json(), expected, atol=1e-6)
    # One padded batch of 3 rows, as long as the longest (4 words + CLS + SEP).
    assert live.backend.calls[-1] == (3, 6)


def test_single_string_answers_a_list_of_one_row(start_server):
    live = start_server()
    single = live.embed({"inputs": "hello world"}).json()
    listed = live.embed({"inputs": ["hello world"]}).json()
    assert single == listed
    assert len(single) == 1 and len(single[0]) == DIM


def test_timing_headers_are_milliseconds(start_server):
    live = start_server()
    r = live.embed({"inputs": "hello"})
    times = {k: float(r.headers[f"x-{k}-time"]) for k in ("tokenization", "inference", "total")}
    assert all(v >= 0 for v in times.values())
    assert times["tokenization"] + times["inference"] <= times["total"] + 0.002


def test_long_text_is_truncated_to_max_seq_length(start_server):
    live = start_server()
    words = ["one"] * 20
    r = live.embed({"inputs": [" ".join(words)], "truncate": True})
    assert r.status == 200
    assert np.allclose(r.json(), [expected_row(words)], atol=1e-6)
    assert live.backend.calls[-1] == (1, MAX_SEQ)


def test_truncate_false_rejects_an_overlong_text(start_server):
    live = start_server()
    r = live.embed({"inputs": ["hello", " ".join(["one"] * 20)], "truncate": False})
    assert_error(r, 422, "Validation", "inputs[1]")
    # Exactly max_seq_length tokens (6 words + CLS + SEP) is not over-long.
    assert live.embed({"inputs": " ".join(["one"] * (MAX_SEQ - 2)), "truncate": False}).status == 200


def test_empty_string_embeds_the_special_tokens_alone(start_server):
    live = start_server()
    r = live.embed({"inputs": ["", "hello"]})
    assert r.status == 200
    assert r.json()[0] == pytest.approx(expected_row([]), abs=1e-6)


def test_unknown_fields_and_null_flags_take_the_defaults(start_server):
    live = start_server()
    r = live.embed({"inputs": "hello", "truncation_direction": "Right", "truncate": None, "normalize": None})
    assert r.status == 200
    assert live.embed({"inputs": "hello", "normalize": True}).status == 200


def test_content_type_may_carry_a_charset(start_server):
    live = start_server()
    r = live.request("POST", "/embed", b'{"inputs": "hello"}', content_type="application/json; charset=utf-8")
    assert r.status == 200


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        (b'{"inputs": ["a",', "not valid JSON"),
        (b'["hello"]', "JSON object: got array"),
        (b'{"truncate": true}', "'inputs' is missing"),
        (b'{"inputs": null}', "got null"),
        (b'{"inputs": 5}', "got number"),
        (b'{"inputs": {"text": "a"}}', "got object"),
        (b'{"inputs": []}', "empty list"),
        (b'{"inputs": ["a", null]}', "'inputs[1]' must be a string: got null"),
        (b'{"inputs": [["a"]]}', "'inputs[0]' must be a string: got array"),
        (b'{"inputs": ["a", 3]}', "got number"),
        (b'{"inputs": "a", "truncate": "yes"}', "'truncate' must be a boolean"),
        (b'{"inputs": "a", "normalize": 1}', "'normalize' must be a boolean"),
        (b'{"inputs": "a", "normalize": false}', "not supported"),
        (b'{"inputs": "\xff\xfe"}', "not valid UTF-8"),
        (b"", "not valid JSON"),
    ],
)
def test_invalid_requests_get_422(start_server, body, mentions):
    live = start_server()
    assert_error(live.request("POST", "/embed", body), 422, "Validation", mentions)
    assert live.request("GET", "/health").status == 200


def test_more_inputs_than_max_batch_get_413(start_server):
    live = start_server(max_batch=4)
    assert_error(live.embed({"inputs": ["a"] * 5}), 413, "PayloadTooLarge", "MAX_BATCH is 4")
    assert live.embed({"inputs": ["a"] * 4}).status == 200


def test_body_over_max_body_bytes_gets_413(start_server):
    live = start_server(max_body_bytes=4096)
    big = json.dumps({"inputs": "a" * 10_000}).encode()
    assert_error(live.request("POST", "/embed", big), 413, "PayloadTooLarge", "MAX_BODY_BYTES")
    # Chunked, without a Content-Length, too.
    chunked = iter([big[:3000], big[3000:]])
    assert_error(live.request("POST", "/embed", chunked), 413, "PayloadTooLarge")
    assert live.request("GET", "/health").status == 200


def test_a_10mb_body_gets_413_not_a_reset(start_server):
    live = start_server(max_body_bytes=2 * 1024 * 1024)
    r = live.request("POST", "/embed", b'{"inputs": "' + b"a" * (10 * 1024 * 1024) + b'"}')
    assert_error(r, 413, "PayloadTooLarge")


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_wrong_content_type_gets_415(start_server, content_type):
    live = start_server()
    r = live.request("POST", "/embed", b'{"inputs": "hello"}', content_type=content_type)
    assert_error(r, 415, "UnsupportedMediaType", "application/json")


def test_wrong_method_gets_405_with_allow(start_server):
    live = start_server()
    r = live.request("GET", "/embed")
    assert_error(r, 405, "MethodNotAllowed", "use POST")
    assert r.headers["allow"] == "POST"
    assert_error(live.request("POST", "/health", b"{}"), 405, "MethodNotAllowed")


def test_unknown_path_gets_404(start_server):
    live = start_server()
    assert_error(live.request("GET", "/nope"), 404, "NotFound", "/nope")
    assert_error(live.request("POST", "/v1/embeddings", b"{}"), 404, "NotFound")


def test_backend_failure_gets_500_and_the_server_keeps_serving(start_server):
    live = start_server()
    assert_error(live.embed({"inputs": "boom"}), 500, "Backend", "kaboom")
    assert live.embed({"inputs": "hello"}).status == 200
    assert live.request("GET", "/health").status == 200


def test_health_is_503_until_loaded_then_200(start_server):
    gate = threading.Event()
    live = start_server(load_gate=gate, wait=False)
    assert_error(live.request("GET", "/health"), 503, "Unhealthy", "loading")
    assert_error(live.embed({"inputs": "hello"}), 503, "Unhealthy")
    gate.set()
    live.wait_ready()
    assert live.request("GET", "/health").json() == {"status": "ok"}
    # The warm-up inference (one text) ran before /health turned 200.
    assert live.backend.calls[0][0] == 1


def test_load_failure_keeps_503_says_why_and_reports_it(start_server):
    live = start_server(fail_load=True, wait=False)
    for _ in range(500):
        if live.app.state == "failed":
            break
        threading.Event().wait(0.01)
    assert_error(live.request("GET", "/health"), 503, "Unhealthy", "weights are corrupt")
    assert len(live.failures) == 1


def test_info_reports_model_and_settings(start_server):
    live = start_server(max_inflight=2, max_batch=4)
    info = live.request("GET", "/info").json()
    assert info["framework"] == "fake"
    assert info["framework_version"] == "0.0-test"
    assert info["model"] == "fake-model"
    assert info["embedding_dim"] == DIM
    assert info["max_seq_length"] == MAX_SEQ
    assert info["dtype"] == "float32"
    assert info["threads"] == 1
    assert info["max_batch"] == 4
    assert info["max_inflight"] == 2
    assert isinstance(info["cpus"], str) and info["cpus"]
    assert info["build"]["fake"] is True
    assert info["build"]["tokenizers_parallelism"] is False


@pytest.mark.parametrize("max_inflight", [1, 2])
def test_at_most_max_inflight_inferences_run_at_once(start_server, max_inflight):
    live = start_server(max_inflight=max_inflight)
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: live.embed({"inputs": "slow"}).status, range(6)))
    assert statuses == [200] * 6
    # Reaching the cap shows inference runs off the event loop; never passing it shows the queue.
    assert live.backend.max_active == max_inflight


def test_inference_wait_counts_in_inference_time(start_server):
    live = start_server(max_inflight=1)
    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda _: live.embed({"inputs": "slow"}), range(3)))
    slowest = max(float(r.headers["x-inference-time"]) for r in responses)
    assert slowest >= 2 * 200 * 0.9
