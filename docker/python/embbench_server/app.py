"""The HTTP layer: a plain ASGI app implementing docker/CONTRACT.md over one Backend.

No web framework: the contract is four routes, and every status code and header is ours to set.
The event loop parses and validates, tokenizes a small request itself (a hop to a thread costs more
than tokenizing a few hundred characters; a larger request goes to the tokenize pool), queues the
rows for the batcher's MAX_INFLIGHT inference threads (batcher.py) and serialises the answer: it
never runs inference.

Phases of an /embed request (the contract's /metrics table), all on time.perf_counter (CLOCK_MONOTONIC):
body read -> parsed and validated (parse) -> padded rows ready (tokenize) -> the inference holding
them starts in an inference thread (queue: the wait in the FIFO queue, and in batched mode the
padding of the batch) -> the backend's call returns in that thread (inference, the batch's call
counted whole for each of its requests) -> answer serialised on the loop (serialize, which so
includes the hop back to the loop). The phases tile the request phase.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import orjson
import tokenizers

from .backends.base import Backend
from .batcher import Batcher, Inference, Job, Outcome
from .config import ModelSpec, Settings
from .cpus import affinity_cpuset
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics, Phases
from .procinfo import name_this_thread, os_threads, process_start_monotonic, thread_cpus
from .text_tokenizer import TextTokenizer

log = logging.getLogger("embbench_server")

ROUTES: dict[str, tuple[str, ...]] = {
    "/embed": ("POST",), "/health": ("GET",), "/info": ("GET",), "/metrics": ("GET",),
}
STARTUP_STAGES = ("process_start", "runtime_ready", "model_loaded", "warmed")
WARMUP_TEXT = "warm-up"


class RequestError(Exception):
    """A request the contract rejects: answered with `status` and {error, error_type}."""

    def __init__(self, status: int, error_type: str, message: str):
        super().__init__(message)
        self.status = status
        self.error_type = error_type


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _validation(message: str) -> RequestError:
    return RequestError(422, "Validation", message)


@dataclass(frozen=True)
class EmbedRequest:
    """An /embed body, its types checked: the texts as sent, before any prompt."""

    texts: list[str]
    truncate: bool = True
    #: a key of embbench_model.json's prompts, or None (no prompt)
    prompt_name: str | None = None
    #: the Matryoshka size asked for, or None (embedding_dim)
    dimensions: int | None = None


def parse_embed_request(body: bytes, max_batch: int) -> EmbedRequest:
    """An /embed body with its fields' types checked, or a RequestError saying what is wrong.
    check_against_model() then checks prompt_name and dimensions against the model."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as u:
            raise _validation(f"request body is not valid UTF-8: {u.reason} at byte {u.start}") from None
        raise _validation(f"request body is not valid JSON: {e}") from None
    if not isinstance(payload, dict):
        raise _validation(f"request body must be a JSON object: got {_json_type(payload)}")
    if "inputs" not in payload:
        raise _validation("field 'inputs' is missing: send a string or a list of strings")
    inputs = payload["inputs"]
    if isinstance(inputs, str):
        texts = [inputs]
    elif isinstance(inputs, list):
        if not inputs:
            raise _validation(f"'inputs' is an empty list: send 1 to {max_batch} strings")
        if len(inputs) > max_batch:
            raise RequestError(413, "PayloadTooLarge", f"'inputs' holds {len(inputs)} texts: MAX_BATCH is {max_batch}")
        for i, text in enumerate(inputs):
            if not isinstance(text, str):
                raise _validation(f"'inputs[{i}]' must be a string: got {_json_type(text)}")
        texts = inputs
    else:
        raise _validation(f"'inputs' must be a string or a list of strings: got {_json_type(inputs)}")
    truncate = payload.get("truncate")
    if truncate is None:
        truncate = True
    elif not isinstance(truncate, bool):
        raise _validation(f"'truncate' must be a boolean: got {_json_type(truncate)}")
    normalize = payload.get("normalize")
    if normalize is not None and not isinstance(normalize, bool):
        raise _validation(f"'normalize' must be a boolean: got {_json_type(normalize)}")
    if normalize is False:
        raise _validation("'normalize': false is not supported: the served models end in L2 normalisation")
    prompt_name = payload.get("prompt_name")
    if prompt_name is not None and not isinstance(prompt_name, str):
        raise _validation(f"'prompt_name' must be a string: got {_json_type(prompt_name)}")
    dimensions = payload.get("dimensions")
    # bool is an int in Python, and 64.0 is not an integer in JSON's sense here (TEI's is usize).
    if dimensions is not None and (type(dimensions) is not int):
        raise _validation(f"'dimensions' must be an integer: got {_json_type(dimensions)}")
    return EmbedRequest(texts, truncate, prompt_name, dimensions)


def check_against_model(request: EmbedRequest, spec: ModelSpec) -> list[str]:
    """The texts to tokenize (the prompt prepended to each), or the contract's 422 when the model
    has no such prompt or size."""
    prompt = ""
    if request.prompt_name is not None:
        if request.prompt_name not in spec.prompts:
            known = (
                f"the model's prompts are {', '.join(spec.prompts)}" if spec.prompts else "the model has no prompts"
            )
            raise _validation(f"'prompt_name' is {orjson.dumps(request.prompt_name).decode()}: {known}")
        prompt = spec.prompts[request.prompt_name]
    if request.dimensions is not None:
        rule = spec.dimensions_rule()
        if not rule.allows(request.dimensions):
            raise _validation(f"'dimensions' is {request.dimensions}: expected {rule.describe()}")
    return [prompt + text for text in request.texts] if prompt else request.texts


def cut_dimensions(rows: np.ndarray, dimensions: int | None) -> np.ndarray:
    """Matryoshka: each row's first `dimensions` numbers, L2-normalised again (rows as they are
    when `dimensions` is None or the full width)."""
    if dimensions is None or dimensions >= rows.shape[1]:
        return rows
    cut = np.asarray(rows[:, :dimensions], dtype=np.float32)
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return cut / np.maximum(norms, 1e-12)


def _error_body(message: str, error_type: str) -> bytes:
    return orjson.dumps({"error": message, "error_type": error_type})


class EmbedServer:
    """The ASGI application. Loading starts at lifespan startup in a thread; the port is bound
    before (__main__ binds it before running uvicorn), so /health answers 503 while the model loads."""

    def __init__(
        self,
        settings: Settings,
        spec: ModelSpec,
        tokenizer: TextTokenizer,
        framework: str,
        make_backend: Callable[[], Backend],
        on_load_failure: Callable[[BaseException], None] | None = None,
    ):
        """`make_backend` runs in the loading thread and imports the framework (torch takes
        seconds) without reading the model; backend.load() then reads it. The startup stamp
        runtime_ready falls between the two."""
        self.settings = settings
        self.spec = spec
        self.tokenizer = tokenizer
        self.framework = framework
        self.make_backend = make_backend
        self.backend: Backend | None = None
        self.on_load_failure = on_load_failure
        self.state = "loading"  # then "ready" or "failed"
        self.load_error = ""
        self.load_ms: float | None = None
        self._build: dict[str, Any] = {}
        self._thread_cpus: list[dict[str, Any]] = []
        self._framework_version: str | None = None
        self._tokenize_pool = ThreadPoolExecutor(
            settings.max_inflight, thread_name_prefix="tokenize", initializer=name_this_thread, initargs=("tokenize",)
        )
        # A request with at most this many characters of text is tokenized on the event loop.
        self.inline_tokenize_chars = settings.tokenize_inline_chars
        self.batcher: Batcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loader: threading.Thread | None = None
        # The cpuset, read before any framework loads: a runtime may pin the loading thread (GNU
        # OpenMP binds the thread that loads it), and threads started from it would inherit that.
        self._process_cpus = os.sched_getaffinity(0)
        self.metrics = Metrics()
        # CLOCK_MONOTONIC seconds; None until the stage is reached.
        self.startup: dict[str, float | None] = dict.fromkeys(STARTUP_STAGES)
        self.startup["process_start"] = process_start_monotonic()

    # ----- loading

    def start_loading(self) -> None:
        self._loader = threading.Thread(target=self._load, name="load", daemon=True)
        self._loader.start()

    def _load(self) -> None:
        # Not named: the framework's own threads, started from here, would inherit the name.
        try:
            started = time.monotonic()
            backend = self.make_backend()  # imports the framework
            backend.init_runtime()
            self._framework_version = backend.framework_version()
            runtime_ready = self.startup["runtime_ready"] = time.monotonic()
            # After runtime_ready, so the delay counts as model load (the contract's LOAD_DELAY_MS).
            if self.settings.load_delay_ms:
                time.sleep(self.settings.load_delay_ms / 1000)
            loading = time.monotonic()
            backend.load()
            loaded = self.startup["model_loaded"] = time.monotonic()
            batcher = self._start_batcher(backend)
            if self.settings.warmup:
                # In an inference thread: where the runtime's per-thread state (torch's OpenMP pool) lives.
                warm = batcher.call_in_worker(lambda: backend.embed(self.tokenizer.encode([WARMUP_TEXT])))
                if warm.shape != (1, self.spec.embedding_dim):
                    raise RuntimeError(
                        f"warm-up embedding has shape {warm.shape}: expected (1, {self.spec.embedding_dim}) "
                        "from embbench_model.json's embedding_dim"
                    )
                self.startup["warmed"] = time.monotonic()
            self._build = backend.build_info()
            # After the warm-up, when the runtime has started (and maybe pinned) its threads.
            self._thread_cpus = thread_cpus()
            # The framework import and the model read; LOAD_DELAY_MS left out.
            self.load_ms = ((runtime_ready - started) + (loaded - loading)) * 1000
            log.warning(
                "model %r loaded by %s in %.0f ms (framework import %.0f ms included), warm-up %s",
                self.spec.name, self.framework, self.load_ms, (runtime_ready - started) * 1000,
                f"{(self.startup['warmed'] - loaded) * 1000:.0f} ms" if self.settings.warmup else "skipped (WARMUP=0)",
            )
            self.backend = backend
            self.state = "ready"
        except BaseException as e:  # noqa: BLE001 -- any failure must surface, not leave a silent 503
            self.load_error = f"{type(e).__name__}: {e}"
            self.state = "failed"
            log.error("model failed to load: %s\n%s", self.load_error, traceback.format_exc())
            if self.on_load_failure is not None:
                self.on_load_failure(e)

    def _start_batcher(self, backend: Backend) -> Batcher:
        settings = self.settings
        batcher = Batcher(
            backend.embed,
            self._deliver,
            batched=settings.serving == "batched",
            max_inflight=settings.max_inflight,
            max_batch_tokens=settings.max_batch_tokens,
            max_wait_us=settings.max_wait_us,
            pad_id=self.tokenizer.pad_id,
            embedding_dim=self.spec.embedding_dim,
            thread_setup=lambda index: self._prepare_inference_thread(backend, index),
        )
        batcher.start()
        self.batcher = batcher
        return batcher

    def _prepare_inference_thread(self, backend: Backend, index: int) -> None:
        # Started from the loading thread: back to the whole cpuset, then the backend pins it if it will.
        os.sched_setaffinity(0, self._process_cpus)
        backend.prepare_inference_thread(index)

    def close(self) -> None:
        self._tokenize_pool.shutdown(wait=False, cancel_futures=True)
        if self.batcher is not None:
            self.batcher.close()

    def _deliver(self, jobs: list[Job], inference: Inference, outcomes: list[Outcome]) -> None:
        """In an inference thread: hands one inference's outcomes to the event loop in one wake-up."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._resolve, jobs, outcomes)

    def _resolve(self, jobs: list[Job], outcomes: list[Outcome]) -> None:
        """On the event loop: each request's future gets its outcome. A request no longer waiting
        (its task cancelled) is answered by nobody: the inference stops waiting for it."""
        for job, outcome in zip(jobs, outcomes):
            if not job.waiter.done():
                job.waiter.set_result(outcome)
            elif outcome.error is None:
                outcome.inference.pending -= 1
                if outcome.inference.pending == 0:
                    self.metrics.observe_inference(outcome.inference.rows)

    # ----- ASGI

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                self.start_loading()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, receive: Callable) -> bytes | None:
        """The whole body, or None when it is over MAX_BODY_BYTES. An oversized body is still read
        to its end (and dropped) so the client gets its 413 instead of a reset connection."""
        limit = self.settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            elif chunks:
                chunks.clear()
            if not message.get("more_body", False):
                break
        return None if size > limit else b"".join(chunks)

    async def _http(self, scope: dict, receive: Callable, send: Callable) -> None:
        body = await self._read_body(receive)
        body_read = time.perf_counter()  # the request and parse phases start here
        path, method = scope["path"], scope["method"]
        allowed = ROUTES.get(path)
        try:
            if allowed is None:
                raise RequestError(404, "NotFound", f"no route {path!r}: the routes are {', '.join(ROUTES)}")
            if method not in allowed:
                raise RequestError(
                    405, "MethodNotAllowed", f"{method} is not allowed on {path}: use {' or '.join(allowed)}"
                )
            if path == "/embed":
                await self._embed(scope, body, body_read, send)
            elif path == "/health":
                await self._health(send)
            elif path == "/metrics":
                await _send(send, 200, self.metrics.render(), METRICS_CONTENT_TYPE)
            else:
                await _send_json(send, 200, orjson.dumps(self.info()))
        except RequestError as e:
            extra = [(b"allow", ", ".join(allowed).encode())] if e.status == 405 and allowed else []
            await _send_json(send, e.status, _error_body(str(e), e.error_type), extra)

    async def _health(self, send: Callable) -> None:
        if self.state == "ready":
            await _send_json(send, 200, b'{"status":"ok"}')
        elif self.state == "failed":
            raise RequestError(503, "Unhealthy", f"model failed to load: {self.load_error}")
        else:
            raise RequestError(503, "Unhealthy", "model is loading")

    def info(self) -> dict[str, Any]:
        build = {
            "server": "uvicorn+uvloop+httptools",
            "python": platform.python_version(),
            "tokenizers": tokenizers.__version__,
            "tokenizers_parallelism": False,
            "tokenize_inline_chars": self.inline_tokenize_chars,
            "load_ms": self.load_ms,
            **self._build,
            "thread_cpus_after_load": self._thread_cpus,
        }
        return {
            "framework": self.framework,
            # Known once the framework is imported, which is part of loading.
            "framework_version": self._framework_version,
            "model": self.spec.name,
            "embedding_dim": self.spec.embedding_dim,
            "max_seq_length": self.spec.max_seq_length,
            "dtype": "float32",
            "threads": self.settings.num_threads,
            "cpus": affinity_cpuset(),
            "max_batch": self.settings.max_batch,
            "max_inflight": self.settings.max_inflight,
            # What POST /embed's prompt_name and dimensions accept.
            "prompts": self.spec.prompts,
            "dimensions": self.spec.dimensions_rule().as_json(),
            "serving": {
                "mode": self.settings.serving,
                "max_batch_tokens": self.settings.max_batch_tokens,
                "max_wait_us": self.settings.max_wait_us,
            },
            "build": build,
            "warmup": self.settings.warmup,
            "startup": {"clock": "monotonic", **self.startup, "now": time.monotonic()},
            "os_threads": os_threads(),
        }

    async def _embed(self, scope: dict, body: bytes | None, body_read: float, send: Callable) -> None:
        if self.state != "ready":
            await self._health(send)  # raises the 503 that says why
            return
        content_type = _header(scope, b"content-type")
        media_type = content_type.split(b";", 1)[0].strip().lower() if content_type is not None else b""
        if media_type != b"application/json":
            shown = content_type.decode("latin-1") if content_type is not None else "missing"
            raise RequestError(415, "UnsupportedMediaType", f"Content-Type must be application/json: got {shown}")
        if body is None:
            raise RequestError(
                413, "PayloadTooLarge", f"request body is over MAX_BODY_BYTES ({self.settings.max_body_bytes} bytes)"
            )
        request = parse_embed_request(body, self.settings.max_batch)
        texts = check_against_model(request, self.spec)
        parsed = time.perf_counter()
        if sum(map(len, texts)) <= self.inline_tokenize_chars:
            batch = self.tokenizer.encode(texts)
        else:
            # Handing the texts to the tokenize pool is calling the tokenizer: a wait for a free tokenize
            # thread counts as tokenizing, so the phases tile the request with no gap.
            batch = await asyncio.get_running_loop().run_in_executor(self._tokenize_pool, self.tokenizer.encode, texts)
        tokenized = time.perf_counter()
        if not request.truncate and any(batch.truncated):
            row = batch.truncated.index(True)
            raise _validation(
                f"'inputs[{row}]' is longer than max_seq_length ({self.spec.max_seq_length} tokens) "
                "and 'truncate' is false"
            )
        batcher = self.batcher
        assert batcher is not None  # state is "ready"
        waiter = asyncio.get_running_loop().create_future()
        job = Job(batch, tokenized, waiter=waiter)
        batcher.submit(job)
        outcome: Outcome = await waiter
        inference = outcome.inference
        if outcome.error is not None:
            e = outcome.error
            raise RequestError(500, "Backend", f"inference failed: {type(e).__name__}: {e}")
        # Per request, on its own rows: requests of other sizes may have shared the inference.
        rows = cut_dimensions(outcome.rows, request.dimensions)
        answer = orjson.dumps(np.ascontiguousarray(rows, dtype=np.float32), option=orjson.OPT_SERIALIZE_NUMPY)
        finished = time.perf_counter()
        phases = Phases(
            request=finished - body_read,
            parse=parsed - body_read,
            tokenize=tokenized - parsed,
            queue=inference.started - tokenized,
            inference=inference.finished - inference.started,
            serialize=finished - inference.finished,
        )
        self.metrics.observe(job.rows, job.real, phases)
        # The inference counts in the batch-size histogram once its last request is answered.
        inference.pending -= 1
        if inference.pending == 0:
            self.metrics.observe_inference(inference.rows)
        await _send_json(
            send,
            200,
            answer,
            [
                (b"x-tokenization-time", _ms(phases.tokenize)),
                (b"x-inference-time", _ms(phases.queue + phases.inference)),
                (b"x-total-time", _ms(phases.request)),
            ],
        )


def _ms(seconds: float) -> bytes:
    return f"{seconds * 1000:.3f}".encode()


def _header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def _send_json(send: Callable, status: int, body: bytes, extra: list[tuple[bytes, bytes]] = ()) -> None:
    await _send(send, status, body, b"application/json", extra)


async def _send(
    send: Callable, status: int, body: bytes, content_type: bytes, extra: list[tuple[bytes, bytes]] = ()
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
