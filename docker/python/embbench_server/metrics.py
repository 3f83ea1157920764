"""GET /metrics: cumulative /embed counters in the Prometheus text format 0.0.4 (docker/CONTRACT.md).

Plain numbers updated on the event loop thread only (the one place an answer is serialised), so
they need no lock; /metrics renders them on the same thread. The request counters move when a
request's answer is serialised, the batch-size histogram when the last answer of an inference is.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTENT_TYPE = b"text/plain; version=0.0.4"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
PHASES = ("request", "parse", "tokenize", "queue", "inference", "serialize")


@dataclass(frozen=True)
class Phases:
    """The seconds one /embed request spent in each of the contract's phases."""

    request: float
    parse: float
    tokenize: float
    queue: float
    inference: float
    serialize: float


class Metrics:
    def __init__(self) -> None:
        self.requests = 0
        self.inputs = 0
        self.tokens = 0
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.batch_counts = [0] * len(BATCH_BUCKETS)  # per bucket, not cumulative; over 256 goes to +Inf only
        self.batch_sum = 0
        self.batch_count = 0

    def observe(self, inputs: int, tokens: int, phases: Phases) -> None:
        """One /embed answered 200: `inputs` texts, `tokens` real tokens."""
        self.requests += 1
        self.inputs += inputs
        self.tokens += tokens
        seconds = self.seconds
        seconds["request"] += phases.request
        seconds["parse"] += phases.parse
        seconds["tokenize"] += phases.tokenize
        seconds["queue"] += phases.queue
        seconds["inference"] += phases.inference
        seconds["serialize"] += phases.serialize

    def observe_inference(self, rows: int) -> None:
        """One inference of `rows` rows whose requests were all answered 200."""
        for i, bound in enumerate(BATCH_BUCKETS):
            if rows <= bound:
                self.batch_counts[i] += 1
                break
        self.batch_sum += rows
        self.batch_count += 1

    def render(self) -> bytes:
        lines = []

        def counter(name: str, value: float) -> None:
            lines.append(f"# TYPE {name} counter")
            lines.append(f"{name} {_number(value)}")

        counter("embbench_requests_total", self.requests)
        counter("embbench_inputs_total", self.inputs)
        counter("embbench_tokens_total", self.tokens)
        for phase in PHASES:
            counter(f"embbench_{phase}_seconds_total", self.seconds[phase])
        lines.append("# TYPE embbench_batch_size histogram")
        cumulative = 0
        for bound, count in zip(BATCH_BUCKETS, self.batch_counts):
            cumulative += count
            lines.append(f'embbench_batch_size_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'embbench_batch_size_bucket{{le="+Inf"}} {self.batch_count}')
        lines.append(f"embbench_batch_size_sum {self.batch_sum}")
        lines.append(f"embbench_batch_size_count {self.batch_count}")
        return ("\n".join(lines) + "\n").encode()


def _number(value: float) -> str:
    # Integers as integers; floats by repr, the shortest text that reads back as the same double.
    return str(value) if isinstance(value, int) else repr(float(value))
