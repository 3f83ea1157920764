"""source: huggingface models on a host without hub access (this test host has none)."""

from conftest import convert


def test_hub_model_without_hub_access_fails_with_one_clear_line(tmp_path):
    # An empty HF_HOME, and a hub endpoint that refuses connections even on a host that has hub
    # access, so this never downloads 2 GB.
    env = {"HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    run = convert("bge-m3", tmp_path / "bge-m3", env=env)
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert "hub is unreachable" in errors[0]
    assert "BAAI/bge-m3" in errors[0] and "--quick" in errors[0]
    assert run.summary["exit_code"] == 2
    assert not (tmp_path / "bge-m3").exists()
    assert run.seconds < 60


# --- the hub path on folders laid out exactly like the hub snapshots (tests/hub_snapshots.py) ---

import http.server  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402

import pytest  # noqa: E402

import hub_snapshots  # noqa: E402
from conftest import CORPUS_DIR  # noqa: E402


def offline(hf_home):
    return {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def hub_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf-home")
    hub_snapshots.embeddinggemma(home, CORPUS_DIR)
    hub_snapshots.qwen3_embedding(home, CORPUS_DIR)
    return home


def test_embeddinggemma_converts_from_its_hub_snapshot(hub_home, tmp_path):
    out = tmp_path / "embeddinggemma-300m"
    run = convert("embeddinggemma-300m", out, env=offline(hub_home))
    assert run.returncode == 0, run.stderr
    facts = json.loads((out / "embbench_model.json").read_text())
    assert facts["dense"] == [
        {"in": 768, "out": 3072, "bias": False, "activation": "identity", "path": "pytorch/2_Dense"},
        {"in": 3072, "out": 768, "bias": False, "activation": "identity", "path": "pytorch/3_Dense"},
    ]
    # the snapshot has fourteen prompts; embbench serves the ones models.yaml lists
    assert facts["prompts"] == {"query": "task: search result | query: ", "document": "title: none | text: "}
    assert facts["dimensions"] == {"min": 128, "max": 768, "sizes": [128, 256, 512, 768]}
    assert facts["attention"] == "bidirectional" and facts["pooling"] == "mean"
    for rel in ("pytorch/2_Dense/model.safetensors", "pytorch/3_Dense/config.json", "pytorch/modules.json",
                "pytorch/config_sentence_transformers.json", "pytorch/1_Pooling/config.json"):
        assert (out / rel).is_file(), rel
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == {"type": "huggingface", "id": "google/embeddinggemma-300m", "revision": "main",
                                  "commit": hub_snapshots.COMMIT}
    assert all(p["passed"] for p in manifest["parity"].values())
    ref = json.loads((out / "reference" / "embeddings.json").read_text())
    assert ref["library"] == "sentence-transformers"
    assert {(c["prompt_name"], c["dimensions"]) for c in ref["cases"]} == {
        ("query", None), ("document", None), (None, 128), (None, 256)}
    names = {m["name"] for m in ref["mistakes"]}
    assert {"dense layers skipped", "causal attention instead of bidirectional", "cls pooling instead of mean",
            "last_token pooling instead of mean", "sliding window ignored", "prompt 'query' not applied",
            "prompt 'document' not applied"} <= names


def test_qwen3_embedding_converts_from_its_hub_snapshot(hub_home, tmp_path):
    out = tmp_path / "qwen3-embedding-0.6b"
    run = convert("qwen3-embedding-0.6b", out, env=offline(hub_home))
    assert run.returncode == 0, run.stderr
    facts = json.loads((out / "embbench_model.json").read_text())
    assert facts["dense"] == [] and facts["pooling"] == "last_token" and facts["attention"] == "causal"
    assert facts["dimensions"] == {"min": 32, "max": 1024}
    ref = json.loads((out / "reference" / "embeddings.json").read_text())
    assert ref["library"] == "sentence-transformers"  # with the snapshot's left padding
    names = {m["name"] for m in ref["mistakes"]}
    assert {"<|endoftext|> not appended", "bidirectional attention instead of causal",
            "mean pooling instead of last_token", "prompt 'query' not applied"} <= names
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(p["passed"] for p in manifest["parity"].values())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"dense_out": 2048}, "models.yaml models.embeddinggemma-300m.dense[0].out is 3072 but 2_Dense/config.json "
                              "in the hub snapshot 'google/embeddinggemma-300m' says 2048"),
        ({"prompts": {**hub_snapshots.EMBEDDINGGEMMA_PROMPTS, "query": "task: search | query: "}},
         "models.yaml models.embeddinggemma-300m.prompts.query is 'task: search result | query: ' but "
         "config_sentence_transformers.json in the hub snapshot 'google/embeddinggemma-300m' says "
         "'task: search | query: '"),
        ({"prompts": {"query": "task: search result | query: "}},
         "prompts.document is 'title: none | text: ' but config_sentence_transformers.json in the hub snapshot "
         "'google/embeddinggemma-300m' has no prompt 'document' (it has: query)"),
    ],
)
def test_a_hub_snapshot_that_disagrees_with_models_yaml_is_refused(tmp_path, change, message):
    home = tmp_path / "hf-home"
    hub_snapshots.embeddinggemma(home, CORPUS_DIR, **change)
    run = convert("embeddinggemma-300m", tmp_path / "out", env=offline(home))
    assert run.returncode == 2, run.stderr
    assert message in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()


class _Gated(http.server.BaseHTTPRequestHandler):
    """The hub's answer for a gated model without access: 401 with X-Error-Code GatedRepo."""

    def do_GET(self):  # noqa: N802
        self.send_response(401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to model google/embeddinggemma-300m is restricted.")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("token", [None, "hf_not_a_real_token"])
def test_a_gated_model_says_to_set_hf_token(tmp_path, token):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gated)  # a free port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
               "HF_TOKEN": token or ""}
        run = convert("embeddinggemma-300m", tmp_path / "out", env=env)
    finally:
        server.shutdown()
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert "is gated" in errors[0] and "set HF_TOKEN" in errors[0]
    assert ("HF_TOKEN is set but its account has no access" if token else "HF_TOKEN is not set") in errors[0]
