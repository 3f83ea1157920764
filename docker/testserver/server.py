"""A minimal server speaking docker/CONTRACT.md's shape, for testing the harness's orchestration.

It is a test fixture, not a framework: its "embeddings" are a deterministic hash of the text, so
`embbench verify` fails it by design. `burn` mode instead keeps one core busy and holds a known
allocation, to check the docker stats formulas.

Its timing is known exactly, so the harness's measurements can be checked against it. Environment:

  HOST, PORT      where to listen (default 127.0.0.1:8080)
  LOAD_DELAY_MS   /health answers 503 for this long after start (default 0)
  NUM_THREADS     reported by /info (default 1)
  SERVICE_MS      each /embed takes this long from its admission (below) to its answer, slept with
                  time.sleep and measured with perf_counter (default 0)
  SLOW_EVERY      every SLOW_EVERY-th /embed (one global counter, so exactly 1/SLOW_EVERY of them)
                  takes SERVICE_MS x SLOW_FACTOR instead (default 0: never)
  SLOW_FACTOR     see SLOW_EVERY (default 10)
  WORKERS         at most this many /embed requests are served at once, admitted first come first
                  served (default 0: unlimited). With WORKERS=1 the capacity is exactly
                  1000 / mean service time requests per second
  KEEPALIVE       0: every answer carries `Connection: close` and the connection is closed, like a
                  server that drops keep-alive (default 1)
  CACHE           1: a body seen before is answered from a cache at once, without SERVICE_MS or a
                  worker: a cheating server the harness must be able to expose (default 0)
"""
import hashlib
import json
import math
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def env_number(name: str, default: float, minimum: float = 0) -> float:
    """A numeric environment variable; a malformed or too small value stops the server with its name."""
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw.strip() else default
    except ValueError:
        sys.exit(f"error: {name} must be a number, found '{raw}'")
    if value < minimum:
        sys.exit(f"error: {name} must be at least {minimum}, found '{raw}'")
    return value


STARTED = time.monotonic()
LOAD_DELAY_S = env_number("LOAD_DELAY_MS", 0) / 1000
SERVICE_S = env_number("SERVICE_MS", 0) / 1000
SLOW_EVERY = int(env_number("SLOW_EVERY", 0))
SLOW_FACTOR = env_number("SLOW_FACTOR", 10)
WORKERS = int(env_number("WORKERS", 0))
KEEPALIVE = env_number("KEEPALIVE", 1) != 0
CACHE = env_number("CACHE", 0) != 0
DIM = 8


def embed(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    row = [b - 127.5 for b in digest[:DIM]]
    norm = math.sqrt(sum(v * v for v in row)) or 1.0
    return [v / norm for v in row]


class FifoGate:
    """At most `workers` holders at once, admitted in arrival order.

    A plain semaphore wakes an arbitrary waiter; tickets make the queue first come first served, so
    queueing delay follows arrival order as in a textbook single-queue server.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self.cond = threading.Condition()
        self.next_ticket = 0
        self.next_admitted = 0
        self.active = 0

    def __enter__(self):
        with self.cond:
            ticket = self.next_ticket
            self.next_ticket += 1
            self.cond.wait_for(lambda: ticket == self.next_admitted and self.active < self.workers)
            self.next_admitted += 1
            self.active += 1
            self.cond.notify_all()  # the next ticket may fit too

    def __exit__(self, *exc):
        with self.cond:
            self.active -= 1
            self.cond.notify_all()


class NoGate:
    def __enter__(self):
        pass

    def __exit__(self, *exc):
        pass


GATE = FifoGate(WORKERS) if WORKERS > 0 else NoGate()
COUNTER_LOCK = threading.Lock()
served = 0  # /embed requests admitted so far: decides which ones are slow
CACHE_LOCK = threading.Lock()
cache: dict[bytes, list[list[float]]] = {}


def service_seconds() -> float:
    """This request's service time: SERVICE_MS, or SLOW_FACTOR times it for every SLOW_EVERY-th request."""
    global served
    with COUNTER_LOCK:
        served += 1
        n = served
    slow = SLOW_EVERY > 0 and n % SLOW_EVERY == 0
    return SERVICE_S * SLOW_FACTOR if slow else SERVICE_S


def sleep_until(deadline: float) -> None:
    """Sleeps until perf_counter() reaches `deadline`; time.sleep may wake early or late by a little."""
    while (left := deadline - time.perf_counter()) > 0:
        time.sleep(left)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle and delayed ACKs add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):  # keep the container log for errors only
        pass

    def answer(self, status: int, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if not KEEPALIVE:
            self.send_header("connection", "close")  # also makes the handler close the connection
        self.end_headers()
        self.wfile.write(data)

    def healthy(self) -> bool:
        return time.monotonic() - STARTED >= LOAD_DELAY_S

    def do_GET(self):
        if self.path == "/health":
            if self.healthy():
                self.answer(200, {"status": "ok"})
            else:
                self.answer(503, {"error": "model is loading", "error_type": "Unhealthy"})
        elif self.path == "/info":
            self.answer(200, {
                "framework": "testserver", "framework_version": sys.version.split()[0], "model": "hash",
                "embedding_dim": DIM, "max_seq_length": 512, "dtype": "float32",
                "threads": int(os.environ.get("NUM_THREADS", "1")),
                "cpus": ",".join(str(c) for c in sorted(os.sched_getaffinity(0))),
            })
        else:
            self.answer(404, {"error": "not found", "error_type": "NotFound"})

    def do_POST(self):
        t0 = time.perf_counter()
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path != "/embed":
            self.answer(404, {"error": "not found", "error_type": "NotFound"})
            return
        try:
            inputs = json.loads(body)["inputs"]
        except (ValueError, KeyError, TypeError):
            self.answer(422, {"error": "invalid body", "error_type": "Validation"})
            return
        inputs = [inputs] if isinstance(inputs, str) else inputs
        rows = None
        if CACHE:
            with CACHE_LOCK:
                rows = cache.get(body)
        if rows is None:
            with GATE:
                # Service starts at admission, so time spent queued for a worker is not service.
                deadline = time.perf_counter() + service_seconds()
                rows = [embed(t) for t in inputs]
                sleep_until(deadline)
            if CACHE:
                with CACHE_LOCK:
                    cache[body] = rows
        total = (time.perf_counter() - t0) * 1000
        self.answer(200, rows, {"x-tokenization-time": "0", "x-inference-time": f"{total:.3f}",
                                "x-total-time": f"{total:.3f}"})


def burn(megabytes: int) -> None:
    """Holds `megabytes` of touched memory and keeps one core busy until killed."""
    block = bytearray(megabytes * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    print(f"burning one core, holding {megabytes} MiB", flush=True)
    x = 0
    while True:
        x = (x + 1) % 1_000_003


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "burn":
        burn(int(sys.argv[2]) if len(sys.argv) > 2 else 256)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8080"))
    ThreadingHTTPServer((host, port), Handler).serve_forever()
