"""Fixtures: a model folder with a real (tiny, word-level) tokenizer, a fake backend, and a live
uvicorn server on a free port, so the HTTP layer is tested as clients see it."""

from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import uvicorn
from tokenizers import Tokenizer, models, pre_tokenizers, processors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embbench_server.app import EmbedServer  # noqa: E402
from embbench_server.backends.base import Backend  # noqa: E402
from embbench_server.config import Settings, load_model_spec  # noqa: E402
from embbench_server.text_tokenizer import TextTokenizer, TokenBatch  # noqa: E402

WORDS = ["hello", "world", "one", "two", "three", "four", "five", "six", "boom", "slow", "gate"]
VOCAB = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
MAX_SEQ = 8
DIM = 4


def write_model_dir(root: Path, *, padding_in_tokenizer: bool = False, pad_source: str = "tokenizer_config",
                    fields: dict | None = None) -> Path:
    """A model folder for the fake backend; `fields` are merged into its embbench_model.json."""
    hf = root / "pytorch"
    hf.mkdir(parents=True)
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    if padding_in_tokenizer:
        tok.enable_padding(pad_id=0, pad_token="[PAD]", length=32)
    # A saved truncation setting the server must override with max_seq_length.
    tok.enable_truncation(max_length=512)
    tok.save(str(hf / "tokenizer.json"))
    if pad_source == "tokenizer_config":
        (hf / "tokenizer_config.json").write_text(json.dumps({"pad_token": "[PAD]"}))
    elif pad_source == "config":
        (hf / "config.json").write_text(json.dumps({"pad_token_id": 0}))
    (root / "embbench_model.json").write_text(json.dumps({
        "name": "fake-model", "architecture": "bert", "pooling": "cls", "normalize": True,
        "max_seq_length": MAX_SEQ, "embedding_dim": DIM, **(fields or {}),
    }))
    return root


class FakeBackend(Backend):
    """Embeds each row from its token ids, so tests can tell rows apart and check their order.
    The word "boom" makes inference fail; "slow" makes it take 0.2 s (to observe concurrency);
    "gate" holds it until the test sets `gate` (to queue requests behind it)."""

    framework = "fake"

    def __init__(self, spec, settings, load_gate: threading.Event | None = None, fail_load: bool = False):
        super().__init__(spec, settings)
        self.load_gate = load_gate
        self.fail_load = fail_load
        self.calls: list[tuple[int, int]] = []
        #: every inference's input_ids and attention_mask, as run
        self.batches: list[tuple[np.ndarray, np.ndarray]] = []
        self.gate = threading.Event()
        self.threads: set[str] = set()
        self.runtime_initialised_at: float | None = None
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def framework_version(self) -> str:
        return "0.0-test"

    def init_runtime(self) -> None:
        self.runtime_initialised_at = time.monotonic()

    def load(self) -> None:
        if self.load_gate is not None:
            self.load_gate.wait(10)
        if self.fail_load:
            raise RuntimeError("weights are corrupt")

    def embed(self, batch: TokenBatch) -> np.ndarray:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append(batch.input_ids.shape)
            self.batches.append((batch.input_ids.copy(), batch.attention_mask.copy()))
            self.threads.add(threading.current_thread().name)
        try:
            ids = batch.input_ids
            if (ids == VOCAB["gate"]).any():
                assert self.gate.wait(10), "the test never opened the gate"
            if (ids == VOCAB["boom"]).any():
                raise RuntimeError("kaboom")
            if (ids == VOCAB["slow"]).any():
                time.sleep(0.2)
            rows = np.stack(
                [(ids * batch.attention_mask).sum(1), batch.attention_mask.sum(1), ids[:, 1], np.ones(len(ids))], axis=1
            ).astype(np.float32)
            return rows / np.linalg.norm(rows, axis=1, keepdims=True)
        finally:
            with self._lock:
                self.active -= 1

    def build_info(self) -> dict[str, Any]:
        return {"fake": True}


def expected_row(words: list[str]) -> list[float]:
    ids = [VOCAB["[CLS]"], *(VOCAB[w] for w in words)][: MAX_SEQ - 1] + [VOCAB["[SEP]"]]
    row = np.array([sum(ids), len(ids), ids[1], 1], dtype=np.float32)
    return (row / np.linalg.norm(row)).tolist()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LiveServer:
    port: int
    app: EmbedServer
    backend: FakeBackend
    failures: list[BaseException] = field(default_factory=list)
    #: time.monotonic() when make_backend (the "framework import") returned
    made_at: list[float] = field(default_factory=list)

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str | None = "application/json", headers: dict | None = None) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            hdrs = dict(headers or {})
            if content_type is not None:
                hdrs["Content-Type"] = content_type
            # An iterable body goes out chunked, without a Content-Length.
            conn.request(method, path, body=body, headers=hdrs, encode_chunked=not isinstance(body, (bytes, type(None))))
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def embed(self, payload: Any) -> Response:
        return self.request("POST", "/embed", json.dumps(payload).encode())

    def wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.request("GET", "/health").status == 200:
                return
            time.sleep(0.01)
        raise AssertionError("server did not become healthy")


@pytest.fixture
def start_server(tmp_path) -> Callable[..., LiveServer]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(*, max_inflight: int = 1, max_batch: int = 4, max_body_bytes: int = 4096,
              load_gate: threading.Event | None = None, fail_load: bool = False, wait: bool = True,
              warmup: bool = True, load_delay_ms: int = 0, import_seconds: float = 0,
              serving: str = "sequential", max_batch_tokens: int = 16384, max_wait_us: int = 0,
              inline_tokenize_chars: int | None = None, model_fields: dict | None = None,
              on_make: Callable[[FakeBackend], None] | None = None) -> LiveServer:
        model_dir = write_model_dir(tmp_path / f"model{len(servers)}", fields=model_fields)
        settings = Settings(model_dir=model_dir, host="127.0.0.1", port=0, num_threads=1, max_batch=max_batch,
                            max_inflight=max_inflight, max_body_bytes=max_body_bytes, load_delay_ms=load_delay_ms,
                            warmup=warmup, serving=serving, max_batch_tokens=max_batch_tokens,
                            max_wait_us=max_wait_us,
                            tokenize_inline_chars=512 if inline_tokenize_chars is None else inline_tokenize_chars)
        spec = load_model_spec(model_dir)
        backend = FakeBackend(spec, settings, load_gate, fail_load)
        failures: list[BaseException] = []
        made_at: list[float] = []

        def make_backend() -> FakeBackend:
            # Stands for the framework import the real make_backend does.
            time.sleep(import_seconds)
            if on_make is not None:
                on_make(backend)  # in the loading thread, as the framework import
            made_at.append(time.monotonic())
            return backend

        app = EmbedServer(settings, spec, TextTokenizer(model_dir / "pytorch", spec.max_seq_length), "fake",
                          make_backend, failures.append)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on",
                                               log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread))
        live = LiveServer(sock.getsockname()[1], app, backend, failures, made_at)
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        if wait:
            live.wait_ready()
        return live

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)
