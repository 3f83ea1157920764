"""prompt_name and dimensions (docker/CONTRACT.md, "POST /embed") and embbench_model.json's pipeline
fields (attention, dense, prompts, dimensions), over the fake backend in both serving modes."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import DIM, MAX_SEQ, expected_row, write_model_dir
from embbench_server.app import EmbedRequest, check_against_model, cut_dimensions
from embbench_server.bench_run import read_payload_body, with_prompt
from embbench_server.config import ConfigError, Dimensions, load_model_spec
from test_app import assert_error
from test_serving import hold_the_worker, wait_until

PROMPTS = {"query": "hello world ", "document": ""}
PIPELINE = {"attention": "bidirectional", "dense": [], "prompts": PROMPTS,
            "dimensions": {"min": 2, "max": DIM, "sizes": [DIM, 2]}}
RANGE = {**PIPELINE, "dimensions": {"min": 2, "max": DIM}}


def cut(row: list[float], d: int) -> list[float]:
    r = np.array(row[:d], dtype=np.float64)
    return (r / np.linalg.norm(r)).tolist()


# ----- embbench_model.json


def spec_with(tmp_path, **fields):
    write_model_dir(tmp_path, fields=fields)
    return load_model_spec(tmp_path)


def test_pipeline_fields_are_read(tmp_path):
    dense = [{"in": DIM, "out": 8, "bias": False, "activation": "identity", "path": "pytorch/2_Dense"},
             {"in": 8, "out": DIM, "bias": True, "activation": "identity", "path": "pytorch/3_Dense"}]
    spec = spec_with(tmp_path, architecture="gemma3", **{**PIPELINE, "dense": dense})
    assert spec.attention == "bidirectional"
    assert [(d.in_features, d.out_features, d.bias, d.path) for d in spec.dense] == [
        (DIM, 8, False, "pytorch/2_Dense"), (8, DIM, True, "pytorch/3_Dense")]
    assert list(spec.prompts) == ["query", "document"] and spec.prompts["query"] == "hello world "
    assert spec.dimensions == Dimensions(2, DIM, (2, DIM))
    assert spec.dimensions.describe() == "one of 2, 4"
    assert Dimensions(32, 1024).describe() == "an integer from 32 to 1024"


def test_an_encoder_folder_without_the_pipeline_fields_loads_as_no_dense_no_prompts_full_size(tmp_path):
    spec = spec_with(tmp_path)  # the fake model is a bert, written as convert did before the fields
    assert (spec.attention, spec.dense, spec.prompts) == ("bidirectional", (), {})
    assert spec.dimensions_rule() == Dimensions(DIM, DIM, (DIM,))


@pytest.mark.parametrize("architecture", ["qwen3", "gemma3"])
def test_a_decoder_folder_without_the_pipeline_fields_is_refused(tmp_path, architecture):
    with pytest.raises(ConfigError, match=f"field 'attention' is missing: a {architecture} model folder must state "
                                          "its whole pipeline .*convert it again"):
        spec_with(tmp_path, architecture=architecture)
    fields = {k: v for k, v in PIPELINE.items() if k != "dense"}
    with pytest.raises(ConfigError, match="field 'dense' is missing"):
        spec_with(tmp_path / "b", architecture=architecture, **fields)


def layer(**kw):
    return {"in": DIM, "out": DIM, "bias": False, "activation": "identity", "path": "pytorch/2_Dense", **kw}


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"attention": "sideways"}, "field 'attention' must be one of bidirectional, causal: got 'sideways'"),
        ({"dense": {}}, "field 'dense' must be a list of layers"),
        ({"dense": [layer(activation="tanh")]}, r"'dense\[0\].activation' must be one of identity: got 'tanh'"),
        ({"dense": [layer(out=8), layer(**{"in": 16})]}, r"'dense\[1\].in' is 16: expected 8, the out of dense\[0\]"),
        ({"dense": [layer(out=8)]}, r"the last dense layer's out is 8: expected embedding_dim \(4\)"),
        ({"dense": [layer(path="../x")]}, r"'dense\[0\].path' must be a path inside MODEL_DIR"),
        ({"dense": [layer(bias=1)]}, r"'dense\[0\].bias' must be a boolean"),
        ({"dense": [{"in": DIM}]}, r"'dense\[0\]' lacks out, bias, activation, path"),
        ({"prompts": {"query": 3}}, "field 'prompts' must map prompt names to strings"),
        ({"dimensions": [4]}, "field 'dimensions' must be an object"),
        ({"dimensions": {"min": 2, "max": 8}}, r"'dimensions.max' is 8: expected embedding_dim \(4\)"),
        ({"dimensions": {"min": 5, "max": 4}}, r"'dimensions.min' is 5: more than dimensions.max \(4\)"),
        ({"dimensions": {"min": 2, "max": 4, "sizes": [1, 4]}}, r"'dimensions.sizes' holds \[1\]: outside 2..4"),
        ({"dimensions": {"min": 2, "max": 4, "sizes": []}}, "'dimensions.sizes' must be a non-empty list"),
        ({"dimensions": {"max": 4}}, "field 'dimensions' lacks 'min'"),
    ],
)
def test_malformed_pipeline_fields_are_config_errors_naming_the_field(tmp_path, fields, message):
    with pytest.raises(ConfigError, match=message):
        spec_with(tmp_path, **fields)


# ----- the request's fields against the model


def checked(spec, **kw):
    return check_against_model(EmbedRequest(["one", "two"], **kw), spec)


def test_prompt_text_is_prepended_to_every_input(tmp_path):
    spec = spec_with(tmp_path, **PIPELINE)
    assert checked(spec, prompt_name="query") == ["hello world one", "hello world two"]
    assert checked(spec, prompt_name="document") == ["one", "two"]
    assert checked(spec) == ["one", "two"]
    assert checked(spec, dimensions=2) == ["one", "two"]


@pytest.mark.parametrize(
    "fields, kw, message",
    [
        (PIPELINE, {"prompt_name": "summary"}, """'prompt_name' is "summary": the model's prompts are query, document"""),
        ({}, {"prompt_name": "query"}, """'prompt_name' is "query": the model has no prompts"""),
        (PIPELINE, {"dimensions": 3}, "'dimensions' is 3: expected one of 2, 4"),
        (RANGE, {"dimensions": 1}, "'dimensions' is 1: expected an integer from 2 to 4"),
        (RANGE, {"dimensions": 5}, "'dimensions' is 5: expected an integer from 2 to 4"),
        ({}, {"dimensions": 2}, "'dimensions' is 2: expected one of 4"),
        (PIPELINE, {"dimensions": -4}, "'dimensions' is -4: expected one of 2, 4"),
    ],
)
def test_unknown_prompts_and_sizes_get_the_contracts_message(tmp_path, fields, kw, message):
    spec = spec_with(tmp_path, **fields)
    with pytest.raises(Exception) as caught:
        checked(spec, **kw)
    assert (caught.value.status, str(caught.value)) == (422, message)


def test_cut_dimensions_keeps_the_first_numbers_and_normalises_again():
    rows = np.array([[3.0, 4.0, 12.0, 0.0], [0.0, 0.0, 0.6, 0.8]], dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    out = cut_dimensions(rows, 2)
    assert out.shape == (2, 2) and out.dtype == np.float32
    assert np.allclose(out[0], [0.6, 0.8], atol=1e-7)
    # A row whose first numbers are all zero stays zero rather than NaN.
    assert np.all(out[1] == 0)
    assert cut_dimensions(rows, None) is rows and cut_dimensions(rows, 4) is rows


# ----- over HTTP


@pytest.mark.parametrize("serving", ["sequential", "batched"])
def test_prompt_and_dimensions_over_http(start_server, serving):
    live = start_server(serving=serving, model_fields=PIPELINE)
    r = live.embed({"inputs": ["one two", "three"], "prompt_name": "query"})
    assert r.status == 200, r.body
    assert np.allclose(r.json(), [expected_row(["hello", "world", "one", "two"]),
                                  expected_row(["hello", "world", "three"])], atol=1e-6)
    r = live.embed({"inputs": ["one two", "three"], "dimensions": 2})
    assert r.status == 200, r.body
    rows = r.json()
    assert [len(row) for row in rows] == [2, 2]
    assert np.allclose(rows, [cut(expected_row(["one", "two"]), 2), cut(expected_row(["three"]), 2)], atol=1e-6)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-6)
    both = live.embed({"inputs": "one", "prompt_name": "query", "dimensions": 2}).json()
    assert np.allclose(both, [cut(expected_row(["hello", "world", "one"]), 2)], atol=1e-6)
    # null is the default; the empty document prompt changes nothing.
    plain = live.embed({"inputs": "one"}).json()
    assert live.embed({"inputs": "one", "prompt_name": None, "dimensions": None}).json() == plain
    assert live.embed({"inputs": "one", "prompt_name": "document", "dimensions": DIM}).json() == plain


def test_the_prompt_counts_toward_max_seq_length(start_server):
    live = start_server(model_fields=PIPELINE)
    # [CLS] + 5 words + [SEP] fit MAX_SEQ (8) alone; with the prompt's 2 words they do not.
    words = ["one", "two", "three", "four", "five"]
    assert len(words) + 2 < MAX_SEQ
    text = " ".join(words)
    assert live.embed({"inputs": text, "truncate": False}).status == 200
    r = live.embed({"inputs": text, "prompt_name": "query"})
    assert np.allclose(r.json(), [expected_row(["hello", "world", *words])], atol=1e-6)
    assert live.backend.calls[-1] == (1, MAX_SEQ)
    assert_error(live.embed({"inputs": text, "prompt_name": "query", "truncate": False}), 422, "Validation",
                 "'inputs[0]' is longer than max_seq_length")


@pytest.mark.parametrize(
    "body, message",
    [
        ({"inputs": "one", "prompt_name": "summary"}, """'prompt_name' is "summary": the model's prompts are query, document"""),
        ({"inputs": "one", "dimensions": 3}, "'dimensions' is 3: expected one of 2, 4"),
        ({"inputs": "one", "prompt_name": 3}, "'prompt_name' must be a string: got number"),
        ({"inputs": "one", "dimensions": "2"}, "'dimensions' must be an integer: got string"),
        ({"inputs": "one", "dimensions": True}, "'dimensions' must be an integer: got boolean"),
        ({"inputs": "one", "dimensions": 2.0}, "'dimensions' must be an integer: got number"),
    ],
)
def test_bad_prompt_name_or_dimensions_get_422_and_are_not_counted(start_server, body, message):
    live = start_server(model_fields=PIPELINE)
    r = live.embed(body)
    assert_error(r, 422, "Validation")
    assert r.json()["error"] == message
    assert live.request("GET", "/health").status == 200
    assert live.app.metrics.render().count(b"embbench_requests_total 0") == 1


def test_a_model_without_prompts_refuses_any_prompt_name(start_server):
    live = start_server()
    r = live.embed({"inputs": "one", "prompt_name": "query"})
    assert_error(r, 422, "Validation")
    assert r.json()["error"] == """'prompt_name' is "query": the model has no prompts"""
    assert live.embed({"inputs": "one", "dimensions": DIM}).status == 200


def test_batched_joins_requests_with_different_prompts_and_sizes_and_each_gets_its_own(start_server):
    live = start_server(serving="batched", max_batch=4, model_fields=RANGE)
    bodies = [
        ({"inputs": ["one two"], "prompt_name": "query", "dimensions": 2}, ["hello", "world", "one", "two"], 2),
        ({"inputs": ["three", "four"]}, None, DIM),
        ({"inputs": ["five"], "prompt_name": "document", "dimensions": 3}, ["five"], 3),
        ({"inputs": ["six one"], "prompt_name": "query"}, ["hello", "world", "six", "one"], DIM),
    ]
    with ThreadPoolExecutor(8) as pool:
        held = hold_the_worker(live, pool)
        futures = [pool.submit(live.embed, body) for body, _, _ in bodies]
        wait_until(lambda: live.app.batcher.queued() == len(bodies))
        live.backend.gate.set()
        responses = [f.result() for f in futures]
        assert held.result().status == 200
    # One inference of all 5 rows, padded to the longest ([CLS] + 4 words + [SEP]).
    assert live.backend.calls[-1] == (5, 6)
    for (body, words, d), r in zip(bodies, responses):
        assert r.status == 200, r.body
        texts = body["inputs"]
        expected = [cut(expected_row(words or t.split()), d) for t in texts]
        assert np.allclose(r.json(), expected, atol=1e-6), body


def test_info_reports_prompts_and_dimensions(start_server):
    info = start_server(model_fields=RANGE).request("GET", "/info").json()
    assert info["prompts"] == PROMPTS
    assert info["dimensions"] == {"min": 2, "max": DIM}
    info = start_server().request("GET", "/info").json()
    assert (info["prompts"], info["dimensions"]) == ({}, {"min": DIM, "max": DIM, "sizes": [DIM]})


# ----- bench_run


def test_bench_run_applies_the_payloads_prompt(tmp_path):
    body = tmp_path / "seq32_b1_query.jsonl"
    body.write_text(json.dumps({"inputs": ["a", "b"], "prompt_name": "query"}) + "\n")
    texts, name = read_payload_body(body)
    assert (texts, name) == (["a", "b"], "query")
    assert with_prompt(texts, name, PROMPTS, body) == ["hello world a", "hello world b"]
    assert with_prompt(texts, None, {}, body) == ["a", "b"]
    with pytest.raises(ValueError, match="prompt_name 'query' is not one of the model's prompts \\(none\\)"):
        with_prompt(texts, name, {}, body)
