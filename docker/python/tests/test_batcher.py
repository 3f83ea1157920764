"""The batcher (batcher.py) on its own: which queued requests make each inference, in which order,
which rows each request gets back, and when an inference starts."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from embbench_server.batcher import Batcher, Job, fits, pad_together
from embbench_server.text_tokenizer import TokenBatch

PAD = 0


def make_batch(*lengths: int, tag: int, pad: int = PAD) -> TokenBatch:
    """Rows of the given real lengths, right-padded to the longest; every real token is `tag` * 100 +
    the row index + 1, so each row of each request can be recognised in the output."""
    width = max(lengths)
    ids = np.full((len(lengths), width), pad, dtype=np.int64)
    mask = np.zeros((len(lengths), width), dtype=np.int64)
    for r, n in enumerate(lengths):
        ids[r, :n] = tag * 100 + r + 1
        mask[r, :n] = 1
    return TokenBatch(ids, mask, (False,) * len(lengths))


class Recorder:
    """A backend stand-in: each output row is (row's token id, its real length), so a request's rows
    say whose they are. Blocks while `hold` is clear; records every batch it runs and when."""

    def __init__(self, fail_tag: int | None = None):
        self.hold = threading.Event()
        self.hold.set()
        self.batches: list[TokenBatch] = []
        self.started: list[float] = []
        self.threads: list[str] = []
        self.fail_tag = fail_tag
        self.running = threading.Event()

    def __call__(self, batch: TokenBatch) -> np.ndarray:
        self.batches.append(batch)
        self.started.append(time.perf_counter())
        self.threads.append(threading.current_thread().name)
        self.running.set()
        assert self.hold.wait(10)
        if self.fail_tag is not None and (batch.input_ids // 100 == self.fail_tag).any():
            raise RuntimeError(f"request {self.fail_tag} breaks the model")
        return np.stack([batch.input_ids[:, 0], batch.attention_mask.sum(1)], axis=1).astype(np.float32)


class Delivered:
    def __init__(self):
        self.items: list[tuple[list[Job], object, list]] = []
        self.cond = threading.Condition()

    def __call__(self, jobs, inference, outcomes) -> None:
        with self.cond:
            self.items.append((jobs, inference, outcomes))
            self.cond.notify_all()

    def wait_for(self, jobs: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while sum(len(j) for j, _, _ in self.items) < jobs:
                left = deadline - time.monotonic()
                assert left > 0, f"only {sum(len(j) for j, _, _ in self.items)} of {jobs} jobs answered"
                self.cond.wait(left)

    def outcome_of(self, job: Job):
        for jobs, _, outcomes in self.items:
            for j, o in zip(jobs, outcomes):
                if j is job:
                    return o
        raise AssertionError("job never answered")

    def groups(self) -> list[list[int]]:
        """Each inference's jobs, as the tags of their first token."""
        return [[int(j.batch.input_ids[0, 0]) // 100 for j in jobs] for jobs, _, _ in self.items]


def start(run, *, batched=True, max_inflight=1, max_batch_tokens=16384, max_wait_us=0, setup=None):
    delivered = Delivered()
    batcher = Batcher(run, delivered, batched=batched, max_inflight=max_inflight, max_batch_tokens=max_batch_tokens,
                      max_wait_us=max_wait_us, pad_id=PAD, embedding_dim=2, thread_setup=setup)
    batcher.start()
    return batcher, delivered


def job(*lengths: int, tag: int) -> Job:
    return Job(make_batch(*lengths, tag=tag), time.perf_counter())


def queue_behind_a_running_one(batcher, run: Recorder, jobs: list[Job]) -> Job:
    """Holds the worker in an inference of tag 99, queues `jobs` behind it, and lets it go."""
    run.hold.clear()
    first = job(1, tag=99)
    batcher.submit(first)
    assert run.running.wait(10)
    for j in jobs:
        j.queued = time.perf_counter()
        batcher.submit(j)
    assert batcher.queued() == len(jobs)
    run.hold.set()
    return first


# ----- the rule


def test_fits_keeps_the_budget_and_half_real_tokens():
    short = Job(make_batch(4, tag=1), 0.0)
    assert fits(1, 4, 4, short, 8)  # 2 rows x 4 = 8 padded, all real
    assert not fits(2, 4, 8, short, 8)  # 12 > 8
    long = Job(make_batch(16, tag=2), 0.0)
    # 2 rows x 16 = 32 padded, 4 + 16 = 20 real: more than half
    assert fits(1, 4, 4, long, 64)
    # 4 rows x 16 = 64 padded, 3 x 4 + 16 = 28 real: less than half
    assert not fits(3, 4, 12, long, 64)
    # exactly half is enough: 2 rows x 8 = 16 padded, 8 real
    assert fits(1, 8, 4, Job(make_batch(4, tag=3), 0.0), 64)


def test_pad_together_keeps_each_request_rows_in_order_and_pads_with_the_pad_id():
    a, b = make_batch(2, 3, tag=1, pad=7), make_batch(5, tag=2, pad=7)
    joined = pad_together([a, b], pad_id=7)
    assert joined.input_ids.shape == (3, 5)
    assert joined.input_ids.tolist() == [[101, 101, 7, 7, 7], [102, 102, 102, 7, 7], [201] * 5]
    assert joined.attention_mask.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1] * 5]
    assert pad_together([a], pad_id=7) is a


# ----- sequential


def test_sequential_runs_each_request_alone_in_arrival_order():
    run = Recorder()
    batcher, delivered = start(run, batched=False)
    jobs = [job(3, tag=t) for t in range(1, 6)]
    queue_behind_a_running_one(batcher, run, jobs)
    delivered.wait_for(6)
    assert delivered.groups() == [[99], [1], [2], [3], [4], [5]]
    # Each request's rows run as it tokenized them: no re-padding.
    assert all(b is j.batch for b, j in zip(run.batches[1:], jobs))


# ----- batched


def test_batched_joins_queued_requests_in_order_and_answers_each_its_own_rows():
    run = Recorder()
    batcher, delivered = start(run)
    jobs = [job(2, 5, tag=1), job(3, tag=2), job(1, 4, 2, tag=3)]
    queue_behind_a_running_one(batcher, run, jobs)
    delivered.wait_for(4)
    assert delivered.groups() == [[99], [1, 2, 3]]
    batch = run.batches[1]
    assert batch.input_ids.shape == (6, 5)  # padded once, to the batch's longest row
    for j, tag in zip(jobs, (1, 2, 3)):
        rows = delivered.outcome_of(j).rows
        n = j.rows
        # (token id, real length) per row: this request's rows, in its own order.
        assert rows.tolist() == [[tag * 100 + r + 1, int(j.batch.attention_mask[r].sum())] for r in range(n)]
    inference = delivered.items[1][1]
    assert inference.rows == 6 and inference.pending == 3
    assert inference.started <= inference.finished


def test_batched_stops_at_the_token_budget_and_the_next_request_leads_the_next_batch():
    run = Recorder()
    batcher, delivered = start(run, max_batch_tokens=16)
    # 4 tokens each: 4 requests fill 16 padded tokens; the fifth leads the next batch.
    queue_behind_a_running_one(batcher, run, [job(4, tag=t) for t in range(1, 7)])
    delivered.wait_for(7)
    assert delivered.groups() == [[99], [1, 2, 3, 4], [5, 6]]
    assert all(b.input_ids.size <= 16 for b in run.batches[1:])


def test_batched_stops_at_the_first_request_that_does_not_fit_even_if_a_later_one_would():
    """A long request behind short ones would make the batch mostly padding: it waits for the next
    batch, and the short ones behind it are not taken ahead of it (no request is overtaken)."""
    run = Recorder()
    batcher, delivered = start(run)
    queue_behind_a_running_one(batcher, run, [job(4, tag=1), job(4, tag=2), job(4, tag=3), job(32, tag=4),
                                              job(4, tag=5), job(30, tag=6)])
    delivered.wait_for(7)
    # [1, 2, 3] + 4: 4 rows x 32 = 128 padded, 44 real < 64: no. Then [4]: 32 real; + 5: 2 x 32 = 64
    # padded, 36 real >= 32: yes; + 6: 3 x 32 = 96 padded, 66 real >= 48: yes.
    assert delivered.groups() == [[99], [1, 2, 3], [4, 5, 6]]


def test_a_request_larger_than_the_budget_runs_alone():
    run = Recorder()
    batcher, delivered = start(run, max_batch_tokens=16)
    big = job(8, 8, 8, tag=2)  # 24 padded tokens > 16
    queue_behind_a_running_one(batcher, run, [job(4, tag=1), big, job(4, tag=3)])
    delivered.wait_for(4)
    assert delivered.groups() == [[99], [1], [2], [3]]
    assert delivered.outcome_of(big).rows.shape == (3, 2)


def test_a_failing_request_does_not_fail_the_others_of_its_batch():
    run = Recorder(fail_tag=2)
    batcher, delivered = start(run)
    jobs = [job(3, tag=1), job(3, tag=2), job(3, tag=3)]
    queue_behind_a_running_one(batcher, run, jobs)
    delivered.wait_for(4)
    assert delivered.outcome_of(jobs[1]).error is not None
    assert "breaks the model" in str(delivered.outcome_of(jobs[1]).error)
    for j in (jobs[0], jobs[2]):
        outcome = delivered.outcome_of(j)
        assert outcome.error is None and outcome.rows.shape == (1, 2)
    # The shared inference failed; each request was then run alone.
    assert [b.input_ids.shape[0] for b in run.batches[1:]] == [3, 1, 1, 1]


def test_a_wrongly_shaped_output_is_an_error_for_its_requests():
    batcher, delivered = start(lambda batch: np.zeros((batch.input_ids.shape[0], 5), dtype=np.float32))
    j = job(3, tag=1)
    batcher.submit(j)
    delivered.wait_for(1)
    assert "expected (1, 2)" in str(delivered.outcome_of(j).error)


# ----- MAX_WAIT_US


def test_max_wait_0_runs_a_lone_request_at_once():
    run = Recorder()
    batcher, delivered = start(run, max_wait_us=0)
    j = job(3, tag=1)
    batcher.submit(j)
    delivered.wait_for(1)
    assert run.started[0] - j.queued < 0.05


def test_max_wait_holds_the_batch_open_for_later_requests_until_the_oldest_waited_that_long():
    run = Recorder()
    batcher, delivered = start(run, max_wait_us=300_000)
    first = job(3, tag=1)
    batcher.submit(first)
    time.sleep(0.1)
    second = job(3, tag=2)
    batcher.submit(second)
    delivered.wait_for(2)
    assert delivered.groups() == [[1, 2]]
    waited = run.started[0] - first.queued
    assert 0.29 <= waited < 0.6


def test_max_wait_ends_early_when_the_batch_is_full():
    run = Recorder()
    batcher, delivered = start(run, max_wait_us=2_000_000, max_batch_tokens=8)
    first = job(4, tag=1)
    batcher.submit(first)
    time.sleep(0.05)
    batcher.submit(job(4, tag=2))  # 2 x 4 = 8: no room for another row
    delivered.wait_for(2)
    assert delivered.groups() == [[1, 2]]
    assert run.started[0] - first.queued < 1.0


def test_max_wait_stops_at_a_request_that_does_not_fit():
    run = Recorder()
    batcher, delivered = start(run, max_wait_us=2_000_000, max_batch_tokens=12)
    first = job(4, tag=1)
    batcher.submit(first)
    time.sleep(0.05)
    batcher.submit(job(4, 4, 4, tag=2))  # would make 16 > 12: the batch closes, this one leads the next
    delivered.wait_for(2)
    assert delivered.groups() == [[1], [2]]
    assert run.started[0] - first.queued < 1.0


# ----- threads


def test_calls_run_in_a_worker_thread_ahead_of_queued_requests():
    run = Recorder()
    seen: list[int] = []
    batcher, delivered = start(run, setup=lambda i: seen.append(i))
    name = batcher.call_in_worker(lambda: threading.current_thread().name)
    assert name == "infer-0" and seen == [0]
    with pytest.raises(ZeroDivisionError):
        batcher.call_in_worker(lambda: 1 / 0)
    # Still serving after a failed call.
    j = job(2, tag=1)
    batcher.submit(j)
    delivered.wait_for(1)
    assert run.threads == ["infer-0"]


def test_max_inflight_workers_run_batches_at_the_same_time():
    gate = threading.Barrier(2, timeout=5)
    running = []

    def run(batch):
        running.append(batch.input_ids[0, 0] // 100)
        gate.wait()  # returns only when two inferences run at once
        return np.zeros((batch.input_ids.shape[0], 2), dtype=np.float32)

    batcher, delivered = start(run, max_inflight=2, batched=False)
    batcher.submit(job(2, tag=1))
    batcher.submit(job(2, tag=2))
    delivered.wait_for(2)
    assert sorted(running) == [1, 2]
