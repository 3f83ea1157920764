"""The inference queue and its workers (docker/CONTRACT.md, "Serving modes and the batcher").

Requests are tokenized on arrival and queued here in arrival order, each with its own padded rows.
MAX_INFLIGHT worker threads run the inferences, so the event loop never does:

- `sequential`: a free worker takes the oldest request and runs its rows, as tokenized, alone.
- `batched`: a free worker takes the oldest request, then the next oldest ones in order while the
  batch stays within MAX_BATCH_TOKENS padded tokens (rows x longest row) and at least half of its
  padded tokens are real ones; it stops at the first request that does not fit, which then leads the
  next batch (no request is overtaken). With MAX_WAIT_US > 0 and room left, it waits until
  MAX_WAIT_US after the oldest request was queued for more. The rows are padded to the batch's
  longest row, run as one inference, and each request gets its own rows back.

One worker gathers a batch at a time (the others wait for the gather lock), so a worker waiting
MAX_WAIT_US for more requests is never overtaken by an idle one starting the next request alone.

Results go back through `deliver(jobs, outcome)`, called once per inference in the worker thread; the
server hands them to its event loop with one call_soon_threadsafe per inference.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .procinfo import name_this_thread
from .text_tokenizer import TokenBatch

log = logging.getLogger("embbench_server")


@dataclass(eq=False)
class Job:
    """One request's rows in the queue. `rows`, `width` (its longest row) and `real` (its real tokens)
    are what the batching rule reads; `queued` is when it entered the queue (perf_counter)."""

    batch: TokenBatch
    queued: float
    rows: int = 0
    width: int = 0
    real: int = 0
    #: the caller's handle for the answer (the server's asyncio future); the batcher never reads it
    waiter: Any = None

    def __post_init__(self) -> None:
        self.rows, self.width = self.batch.input_ids.shape
        self.real = int(self.batch.attention_mask.sum())


@dataclass(eq=False)
class Inference:
    """One runtime call: its rows, when it started and returned (perf_counter) and its output or
    error. `pending` counts the requests of it not answered yet (the server's, on its loop)."""

    rows: int
    started: float = 0.0
    finished: float = 0.0
    output: np.ndarray | None = None
    error: BaseException | None = None
    pending: int = 0


@dataclass(eq=False)
class Outcome:
    """What one request gets back: its own rows of the inference (or the inference's error)."""

    inference: Inference
    rows: np.ndarray | None = None
    error: BaseException | None = None


def fits(rows: int, width: int, real: int, job: Job, max_batch_tokens: int) -> bool:
    """Whether `job` may join a batch of `rows` rows, `width` long, holding `real` real tokens: the
    batch stays within the token budget and at least half of its padded tokens are real."""
    new_rows = rows + job.rows
    padded = new_rows * max(width, job.width)
    return padded <= max_batch_tokens and 2 * (real + job.real) >= padded


def pad_together(batches: list[TokenBatch], pad_id: int) -> TokenBatch:
    """The batches' rows, in order, right-padded to the longest with `pad_id` (mask 0). One batch is
    returned as it is."""
    if len(batches) == 1:
        return batches[0]
    rows = sum(b.input_ids.shape[0] for b in batches)
    width = max(b.input_ids.shape[1] for b in batches)
    input_ids = np.full((rows, width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((rows, width), dtype=np.int64)
    truncated: list[bool] = []
    row = 0
    for b in batches:
        n, w = b.input_ids.shape
        input_ids[row : row + n, :w] = b.input_ids
        attention_mask[row : row + n, :w] = b.attention_mask
        truncated.extend(b.truncated)
        row += n
    return TokenBatch(input_ids, attention_mask, tuple(truncated))


class Batcher:
    def __init__(
        self,
        run: Callable[[TokenBatch], np.ndarray],
        deliver: Callable[[list[Job], Inference, list[Outcome]], None],
        *,
        batched: bool,
        max_inflight: int,
        max_batch_tokens: int,
        max_wait_us: int,
        pad_id: int,
        embedding_dim: int | None = None,
        thread_setup: Callable[[int], None] | None = None,
    ):
        """`run` is the backend's embed(); `deliver(jobs, inference, outcomes)` is called in the worker
        thread once per inference with each job's outcome, in the jobs' order. `thread_setup(i)` runs
        first in worker i's thread (pinning, naming)."""
        self.run = run
        self.deliver = deliver
        self.batched = batched
        self.max_inflight = max_inflight
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_us / 1e6
        self.pad_id = pad_id
        self.embedding_dim = embedding_dim
        self.thread_setup = thread_setup
        self._queue: collections.deque[Job] = collections.deque()
        self._calls: collections.deque[tuple[Callable[[], Any], list]] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._gather = threading.Lock()
        self._closed = False
        self._threads: list[threading.Thread] = []

    # ----- the caller's side

    def start(self) -> None:
        for i in range(self.max_inflight):
            thread = threading.Thread(target=self._work, args=(i,), name=f"infer-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the inference queue is closed")
            self._queue.append(job)
            self._cond.notify()

    def call_in_worker(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Runs fn() in a worker thread, ahead of any queued request, and returns its result (or
        raises its exception): the warm-up runs where inference will (torch's OpenMP pool is the
        calling thread's, so a warm-up elsewhere would warm a pool nobody uses)."""
        done = threading.Event()
        box: list = []
        with self._cond:
            self._calls.append((lambda: _capture(fn, box, done), box))
            self._cond.notify()
        if not done.wait(timeout):
            raise TimeoutError("the inference worker did not run the call in time")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def queued(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ----- the workers

    def _work(self, index: int) -> None:
        name_this_thread("infer")
        if self.thread_setup is not None:
            try:
                self.thread_setup(index)
            except Exception:  # noqa: BLE001 -- pinning is best effort; inference must still run
                log.error("inference thread setup failed:\n%s", traceback.format_exc())
        while True:
            with self._gather:
                taken = self._take()
            if taken is None:
                return
            if callable(taken):
                taken()
                continue
            self._run(taken)

    def _take(self) -> list[Job] | Callable[[], None] | None:
        """Waits for work and takes it: a call, or the next batch by the serving mode's rule. Holding
        the gather lock: one worker gathers at a time."""
        cond = self._cond
        with cond:
            while not self._queue and not self._calls and not self._closed:
                cond.wait()
            if self._calls:
                return self._calls.popleft()[0]
            if self._closed:
                return None
            first = self._queue.popleft()
            jobs = [first]
            if not self.batched:
                return jobs
            rows, width, real = first.rows, first.width, first.real
            budget = self.max_batch_tokens
            deadline = first.queued + self.max_wait
            while True:
                if self._queue:
                    job = self._queue[0]
                    if not fits(rows, width, real, job, budget):
                        break  # it leads the next batch
                    self._queue.popleft()
                    jobs.append(job)
                    rows, width, real = rows + job.rows, max(width, job.width), real + job.real
                    continue
                # The queue is empty: wait for more while MAX_WAIT_US allows and a row could still fit.
                if self.max_wait <= 0 or (rows + 1) * width > budget or self._closed or self._calls:
                    break
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                cond.wait(remaining)
            return jobs

    def _run(self, jobs: list[Job]) -> None:
        inference = self._infer([job.batch for job in jobs])
        if inference.error is not None and len(jobs) > 1:
            # One request's failure must not fail the others it shared the batch with: run each alone.
            for job in jobs:
                self._run([job])
            return
        outcomes: list[Outcome] = []
        row = 0
        for job in jobs:
            if inference.error is not None:
                outcomes.append(Outcome(inference, error=inference.error))
            else:
                assert inference.output is not None
                outcomes.append(Outcome(inference, rows=inference.output[row : row + job.rows]))
            row += job.rows
        inference.pending = len(jobs)
        try:
            self.deliver(jobs, inference, outcomes)
        except Exception:  # noqa: BLE001 -- a worker must outlive a failed hand-over
            log.error("delivering an inference's results failed:\n%s", traceback.format_exc())

    def _infer(self, batches: list[TokenBatch]) -> Inference:
        batch = pad_together(batches, self.pad_id)
        rows = batch.input_ids.shape[0]
        inference = Inference(rows)
        inference.started = time.perf_counter()
        try:
            output = self.run(batch)
            inference.finished = time.perf_counter()
            expected = (rows, self.embedding_dim) if self.embedding_dim is not None else (rows,)
            if output.shape[: len(expected)] != expected or output.ndim != 2:
                raise RuntimeError(f"backend returned shape {output.shape}: expected {expected}")
            inference.output = output
        except Exception as e:  # noqa: BLE001 -- answered as a 500 to the requests of this inference
            inference.finished = inference.finished or time.perf_counter()
            log.error("inference failed: %s", traceback.format_exc())
            inference.error = e
        return inference


def _capture(fn: Callable[[], Any], box: list, done: threading.Event) -> None:
    try:
        box.append((True, fn()))
    except BaseException as e:  # noqa: BLE001 -- handed to the caller
        box.append((False, e))
    finally:
        done.set()

