"""A minimal server speaking docker/CONTRACT.md's shape, for testing the harness's orchestration.

It is a test fixture, not a framework: its "embeddings" are a deterministic hash of the text, so
`embbench verify` fails it by design (the reference check), while every other part of the contract
it serves is there to be measured: its timing, start-up, threads and memory are ground truth the
harness's measurements can be checked against. Environment (every number may be fractional; a
malformed or negative value stops the server with a message naming the variable):

  HOST, PORT      where to listen (default 127.0.0.1:8080)
  NUM_THREADS     reported by /info (default 1)
  MAX_BATCH       reported by /info; more inputs are rejected with 413 (default 64)
  MAX_INFLIGHT    reported by /info when WORKERS is 0 (default 1)

Start-up, in this order (the stamps of /info `startup` mark each boundary):

  IMPORT_MS       sleep this long after the interpreter is up, then bind the port: runtime_ready is
                  process_start + interpreter start + IMPORT_MS (default 0)
  LOAD_DELAY_MS   the "model" load (the memory work below, then a sleep) takes this long in all, or
                  as long as the memory work when that is longer; /health answers 503 meanwhile
                  (default 0)
  FILE_MB,        first map the first FILE_MB MiB of the file at FILE_PATH (relative to MODEL_DIR
  FILE_PATH       when not absolute) read-only and read one byte per page, so it is all resident and
                  file-backed (Pss_File); the mapping is kept (default 0: nothing mapped). A missing
                  or shorter file stops the server at start, naming both
  ANON_MB         then allocate and touch this many MiB of private anonymous memory (Pss_Anon), kept
                  for the process's lifetime (default 0)
  LOAD_PEAK_MB    then allocate and touch this many MiB more and unmap them again: the load-time peak
                  is FILE_MB + ANON_MB + LOAD_PEAK_MB above the baseline, the steady state
                  FILE_MB + ANON_MB (default 0). model_loaded is stamped here
  WARMUP          1: the warm-up runs (default); 0: skipped, /health turns 200 at model_loaded and
                  `warmed` stays null. Anything else stops the server
  WARMUP_MS       the warm-up (one embed, then a sleep) takes this long in all; warmed is stamped
                  after it and /health turns 200 (default 0). It is not counted in /metrics

Serving /embed; the phases of /metrics (and the timing headers) are measured at these points:
parse = json.loads and validation; tokenize = counting words (tiny); queue = waiting for a worker
(WORKERS); inference = BURN_MS then SERVICE_MS from admission; serialize = json.dumps.

  SERVICE_MS      each /embed takes at least this long from its admission to its answer's
                  serialisation, slept with time.sleep and measured with perf_counter (default 0)
  BURN_MS         each /embed first burns this much CPU time of its own thread (time.thread_time()),
                  hashing with the GIL released as a native runtime would, in its inference phase;
                  then it sleeps out what is left of SERVICE_MS, if anything (default 0)
  SLOW_EVERY      every SLOW_EVERY-th /embed (one global counter, so exactly 1/SLOW_EVERY of them)
                  takes SERVICE_MS and BURN_MS x SLOW_FACTOR instead (default 0: never)
  SLOW_FACTOR     see SLOW_EVERY (default 10)
  WORKERS         at most this many /embed requests are served at once, admitted first come first
                  served (default 0: unlimited). With WORKERS=1 the capacity is exactly
                  1000 / mean service time requests per second
  SERVING         sequential (default) or batched: one batcher thread joins queued requests as
                  docker/CONTRACT.md describes (MAX_BATCH_TOKENS, tokens = words + 2), one BURN_MS and
                  SERVICE_MS per batch; WORKERS does not apply
  KEEPALIVE       0: every answer carries `Connection: close` and the connection is closed, like a
                  server that drops keep-alive (default 1)
  CACHE           1: a body seen before is answered from a cache at once, without SERVICE_MS,
                  BURN_MS or a worker: a cheating server the harness must be able to expose
                  (default 0). Its answers count in /metrics with no inference and no batch
  BUSY_THREADS    this many extra threads spin on the CPU from start to exit, hashing with the GIL
                  released, named busy-0, busy-1, ... in /info `os_threads`: a server with more busy
                  threads than CPUs (default 0)

Threads are named in `os_threads`: the main thread keeps the interpreter's name, the loader
"loader", the connection handlers "http", the spinners "busy-<i>".

`python3 server.py burn [MB]` is short for ANON_MB=MB (default 256) BUSY_THREADS=1: it keeps one core
busy and holds a known allocation, to check the docker stats formulas.
"""
import hashlib
import json
import math
import mmap
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MIB = 1024 * 1024
PAGE = mmap.PAGESIZE
CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_start() -> float:
    """When this process started, on CLOCK_MONOTONIC: /proc/self/stat field 22, as docker/CONTRACT.md says."""
    with open("/proc/self/stat") as f:
        stat = f.read()
    # Fields after the command name, which may itself hold spaces and parentheses: field 3 is [0].
    starttime = int(stat[stat.rindex(")") + 2:].split()[22 - 3])
    since_boot = time.clock_gettime(time.CLOCK_BOOTTIME) - time.clock_gettime(time.CLOCK_MONOTONIC)
    return starttime / CLK_TCK - since_boot


PROCESS_START = process_start()


def env_number(name: str, default: float, minimum: float = 0) -> float:
    """A numeric environment variable; a malformed or too small value stops the server with its name."""
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw.strip() else default
    except ValueError:
        sys.exit(f"error: {name} must be a number, found '{raw}'")
    if not math.isfinite(value) or value < minimum:
        sys.exit(f"error: {name} must be a number of at least {minimum}, found '{raw}'")
    return value


def env_switch(name: str, default: bool) -> bool:
    """A 0/1 environment variable; anything else stops the server with its name."""
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    if raw not in ("0", "1"):
        sys.exit(f"error: {name} must be 0 or 1, found '{raw}'")
    return raw == "1"


if len(sys.argv) > 1 and sys.argv[1] == "burn":
    os.environ.setdefault("ANON_MB", sys.argv[2] if len(sys.argv) > 2 else "256")
    os.environ.setdefault("BUSY_THREADS", "1")

IMPORT_S = env_number("IMPORT_MS", 0) / 1000
LOAD_DELAY_S = env_number("LOAD_DELAY_MS", 0) / 1000
WARMUP = env_switch("WARMUP", True)
WARMUP_S = env_number("WARMUP_MS", 0) / 1000
FILE_BYTES = int(env_number("FILE_MB", 0) * MIB)
FILE_PATH = os.environ.get("FILE_PATH", "")
ANON_BYTES = int(env_number("ANON_MB", 0) * MIB)
LOAD_PEAK_BYTES = int(env_number("LOAD_PEAK_MB", 0) * MIB)
SERVICE_S = env_number("SERVICE_MS", 0) / 1000
BURN_S = env_number("BURN_MS", 0) / 1000
SLOW_EVERY = int(env_number("SLOW_EVERY", 0))
SLOW_FACTOR = env_number("SLOW_FACTOR", 10)
WORKERS = int(env_number("WORKERS", 0))
KEEPALIVE = env_number("KEEPALIVE", 1) != 0
CACHE = env_number("CACHE", 0) != 0
BUSY_THREADS = int(env_number("BUSY_THREADS", 0))
NUM_THREADS = int(env_number("NUM_THREADS", 1, 1))
MAX_BATCH = int(env_number("MAX_BATCH", 64, 1))
MAX_INFLIGHT = int(env_number("MAX_INFLIGHT", 1, 1))
DIM = 8
MAX_SEQ = 512

if FILE_BYTES > 0:
    if not FILE_PATH:
        sys.exit("error: FILE_MB is set but FILE_PATH is not: which file should be mapped?")
    FILE_PATH = os.path.join(os.environ.get("MODEL_DIR", "."), FILE_PATH)
    try:
        size = os.stat(FILE_PATH).st_size
    except OSError as e:
        sys.exit(f"error: FILE_PATH {FILE_PATH}: {e.strerror}")
    if size < FILE_BYTES:
        sys.exit(f"error: FILE_PATH {FILE_PATH} holds {size} bytes, fewer than FILE_MB asks for ({FILE_BYTES})")

# /info `startup`: seconds on CLOCK_MONOTONIC (time.monotonic() on Linux); null until reached.
STAMPS: dict[str, float | None] = {
    "process_start": PROCESS_START, "runtime_ready": None, "model_loaded": None, "warmed": None,
}
HEALTHY = threading.Event()
# What the "model" holds for the process's lifetime: the file mapping and the anonymous memory.
held: list[mmap.mmap] = []


def name_thread(name: str) -> None:
    """Sets the calling thread's OS name (comm, at most 15 bytes), as /info `os_threads` reports it."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass


def os_threads() -> list[dict]:
    """Every thread of this process now: id, name and CPU time (utime + stime) from /proc/self/task."""
    out = []
    for tid in sorted(os.listdir("/proc/self/task"), key=int):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # ended since the listing
        fields = stat[stat.rindex(")") + 2:].split()
        ticks = int(fields[14 - 3]) + int(fields[15 - 3])
        out.append({"tid": int(tid), "name": stat[stat.index("(") + 1:stat.rindex(")")],
                    "cpu_seconds": ticks / CLK_TCK})
    return out


def cpuset(cpus: set[int]) -> str:
    """CPU numbers as a compact cpuset string ("0-3,8")."""
    parts, run = [], []
    for c in sorted(cpus):
        if run and c != run[-1] + 1:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else f"{run[0]}")
            run = []
        run.append(c)
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else f"{run[0]}")
    return ",".join(parts)


BURN_CHUNK = bytes(64 * 1024)


def burn(seconds: float) -> None:
    """Uses `seconds` of this thread's CPU time; hashlib releases the GIL for large buffers, so
    burners on different threads run in parallel, as a native inference runtime's would."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        hashlib.sha256(BURN_CHUNK).digest()


def spin(i: int) -> None:
    name_thread(f"busy-{i}")
    while True:
        hashlib.sha256(BURN_CHUNK).digest()


def touched_anonymous(size: int) -> mmap.mmap:
    """`size` bytes (rounded up to pages) of private anonymous memory, every page written."""
    size = -(-size // PAGE) * PAGE
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    chunk = b"\x01" * MIB
    for off in range(0, size, MIB):
        n = min(MIB, size - off)
        m[off:off + n] = chunk[:n]
    return m


def map_file(path: str, size: int) -> mmap.mmap:
    """The first `size` bytes of `path` mapped read-only, one byte of each page read so all are resident."""
    fd = os.open(path, os.O_RDONLY)
    try:
        m = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)  # the mapping keeps the file
    total = 0
    for off in range(0, size, PAGE):
        total += m[off]
    return m


def embed(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    row = [b - 127.5 for b in digest[:DIM]]
    norm = math.sqrt(sum(v * v for v in row)) or 1.0
    return [v / norm for v in row]


def load() -> None:
    """The model load and warm-up, on their own thread while the port already answers 503."""
    name_thread("loader")
    started = time.monotonic()
    if FILE_BYTES > 0:
        held.append(map_file(FILE_PATH, FILE_BYTES))
    if ANON_BYTES > 0:
        held.append(touched_anonymous(ANON_BYTES))
    if LOAD_PEAK_BYTES > 0:
        touched_anonymous(LOAD_PEAK_BYTES).close()  # munmap: the pages go back to the OS
    # The load phase lasts LOAD_DELAY_MS in all, the memory work above included.
    time.sleep(max(0.0, LOAD_DELAY_S - (time.monotonic() - started)))
    STAMPS["model_loaded"] = time.monotonic()
    if WARMUP:
        loaded = STAMPS["model_loaded"]
        embed("warm-up")
        time.sleep(max(0.0, WARMUP_S - (time.monotonic() - loaded)))
        STAMPS["warmed"] = time.monotonic()
    HEALTHY.set()


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
SERVING = os.environ.get("SERVING", "sequential").strip() or "sequential"
if SERVING not in ("sequential", "batched"):
    sys.exit(f"error: SERVING must be sequential or batched, found '{SERVING}'")
MAX_BATCH_TOKENS = int(env_number("MAX_BATCH_TOKENS", 16384, 1))


class Pending:
    """A request waiting in the batcher's queue: its texts and token counts, then its rows."""

    def __init__(self, inputs: list[str], lengths: list[int]):
        self.inputs, self.lengths = inputs, lengths
        self.done = threading.Event()
        self.rows: list[list[float]] = []
        self.started = self.finished = 0.0
        self.batch_rows = 0  # set on the batch's first request only: /metrics counts each batch once


class Batcher:
    """docker/CONTRACT.md's batcher, one worker: the oldest request, then the next ones in order while
    the padded tokens stay within MAX_BATCH_TOKENS and at least half of them are real; one
    "inference" (BURN_MS and SERVICE_MS once) per batch."""

    def __init__(self):
        self.cond = threading.Condition()
        self.queue: list[Pending] = []
        threading.Thread(target=self.work, daemon=True).start()

    def submit(self, p: Pending) -> None:
        with self.cond:
            self.queue.append(p)
            self.cond.notify()
        p.done.wait()

    def take(self) -> list[Pending]:
        with self.cond:
            while not self.queue:
                self.cond.wait()
            batch = [self.queue.pop(0)]
            rows, longest, real = len(batch[0].lengths), max(batch[0].lengths), sum(batch[0].lengths)
            while self.queue:
                nxt = self.queue[0]
                r, lg, rl = rows + len(nxt.lengths), max(longest, *nxt.lengths), real + sum(nxt.lengths)
                if r * lg > MAX_BATCH_TOKENS or rl * 2 < r * lg:
                    break
                batch.append(self.queue.pop(0))
                rows, longest, real = r, lg, rl
            return batch

    def work(self) -> None:
        name_thread("batcher")
        while True:
            batch = self.take()
            started = time.perf_counter()
            factor = slow_factor()
            burn(BURN_S * factor)
            for p in batch:
                p.rows = [embed(t) for t in p.inputs]
            sleep_until(started + SERVICE_S * factor)
            finished = time.perf_counter()
            batch[0].batch_rows = sum(len(p.inputs) for p in batch)
            for p in batch:
                p.started, p.finished = started, finished
                p.done.set()


BATCHER = Batcher() if SERVING == "batched" else None
COUNTER_LOCK = threading.Lock()
served = 0  # /embed requests admitted so far: decides which ones are slow
CACHE_LOCK = threading.Lock()
cache: dict[bytes, list[list[float]]] = {}


def slow_factor() -> float:
    """This request's service multiplier: SLOW_FACTOR for every SLOW_EVERY-th request, else 1."""
    global served
    with COUNTER_LOCK:
        served += 1
        n = served
    return SLOW_FACTOR if SLOW_EVERY > 0 and n % SLOW_EVERY == 0 else 1


def sleep_until(deadline: float) -> None:
    """Sleeps until perf_counter() reaches `deadline`; time.sleep may wake early or late by a little."""
    while (left := deadline - time.perf_counter()) > 0:
        time.sleep(left)


PHASES = ("request", "parse", "tokenize", "queue", "inference", "serialize")
BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """docker/CONTRACT.md's counters: /embed requests answered 200, counted once serialised."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.inputs = 0
        self.tokens = 0
        self.seconds = {p: 0.0 for p in PHASES}
        self.buckets = [0] * len(BUCKETS)  # inferences with at most BUCKETS[i] inputs (cumulative)
        self.batch_sum = 0
        self.batch_count = 0

    def record(self, inputs: int, tokens: int, seconds: dict[str, float], batch: int | None) -> None:
        with self.lock:
            self.requests += 1
            self.inputs += inputs
            self.tokens += tokens
            for p in PHASES:
                self.seconds[p] += seconds[p]
            if batch is not None:
                self.batch_sum += batch
                self.batch_count += 1
                for i, le in enumerate(BUCKETS):
                    if batch <= le:
                        self.buckets[i] += 1

    def render(self) -> str:
        with self.lock:
            lines = []

            def counter(name: str, value) -> None:
                lines.extend([f"# TYPE {name} counter", f"{name} {value}"])

            counter("embbench_requests_total", self.requests)
            counter("embbench_inputs_total", self.inputs)
            counter("embbench_tokens_total", self.tokens)
            for p in PHASES:
                counter(f"embbench_{p}_seconds_total", repr(self.seconds[p]))
            lines.append("# TYPE embbench_batch_size histogram")
            for le, n in zip(BUCKETS, self.buckets):
                lines.append(f'embbench_batch_size_bucket{{le="{le}"}} {n}')
            lines.append(f'embbench_batch_size_bucket{{le="+Inf"}} {self.batch_count}')
            lines.append(f"embbench_batch_size_sum {self.batch_sum}")
            lines.append(f"embbench_batch_size_count {self.batch_count}")
            return "\n".join(lines) + "\n"


METRICS = Metrics()


class Invalid(Exception):
    def __init__(self, status: int, error_type: str, message: str):
        super().__init__(message)
        self.status = status
        self.error_type = error_type


def parse_inputs(body: bytes) -> list[str]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Invalid(422, "Validation", "the body is not JSON") from None
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise Invalid(422, "Validation", "the body needs an object with 'inputs'")
    inputs = payload["inputs"]
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        raise Invalid(422, "Validation", "'inputs' must be a string or a non-empty list of strings")
    if len(inputs) > MAX_BATCH:
        raise Invalid(413, "PayloadTooLarge", f"{len(inputs)} inputs, more than MAX_BATCH {MAX_BATCH}")
    return inputs


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        name_thread("http")
        # Headers and body go out in two writes: without this, Nagle and delayed ACKs add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):  # keep the container log for errors only
        pass

    def send(self, status: int, data: bytes, content_type: str, headers=None):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if not KEEPALIVE:
            self.send_header("connection", "close")  # also makes the handler close the connection
        self.end_headers()
        self.wfile.write(data)

    def answer(self, status: int, body, headers=None):
        self.send(status, json.dumps(body).encode(), "application/json", headers)

    def error(self, status: int, error_type: str, message: str):
        self.answer(status, {"error": message, "error_type": error_type})

    def info(self) -> dict:
        return {
            "framework": "testserver", "framework_version": sys.version.split()[0], "model": "hash",
            "embedding_dim": DIM, "max_seq_length": MAX_SEQ, "dtype": "float32",
            "threads": NUM_THREADS, "cpus": cpuset(os.sched_getaffinity(0)),
            "max_batch": MAX_BATCH, "max_inflight": WORKERS if WORKERS > 0 else MAX_INFLIGHT,
            "serving": {"mode": SERVING, "max_batch_tokens": MAX_BATCH_TOKENS, "max_wait_us": 0},
            "build": {"server": "docker/testserver/server.py"},
            "warmup": WARMUP,
            "startup": {"clock": "monotonic", **STAMPS, "now": time.monotonic()},
            "os_threads": os_threads(),
        }

    def do_GET(self):
        if self.path == "/health":
            if HEALTHY.is_set():
                self.answer(200, {"status": "ok"})
            else:
                self.error(503, "Unhealthy", "model is loading")
        elif self.path == "/info":
            self.answer(200, self.info())
        elif self.path == "/metrics":
            self.send(200, METRICS.render().encode(), "text/plain; version=0.0.4")
        elif self.path == "/embed":
            self.error(405, "MethodNotAllowed", "use POST /embed")
        else:
            self.error(404, "NotFound", "not found")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        t_read = time.perf_counter()
        if self.path in ("/health", "/info", "/metrics"):
            self.error(405, "MethodNotAllowed", f"use GET {self.path}")
            return
        if self.path != "/embed":
            self.error(404, "NotFound", "not found")
            return
        if not HEALTHY.is_set():
            self.error(503, "Unhealthy", "model is loading")
            return
        try:
            inputs = parse_inputs(body)
        except Invalid as e:
            self.error(e.status, e.error_type, str(e))
            return
        t_parsed = time.perf_counter()
        tokens = sum(min(MAX_SEQ, len(t.split()) + 2) for t in inputs)  # words and two special tokens
        t_tokenized = time.perf_counter()
        rows, batch = None, None
        if CACHE:
            with CACHE_LOCK:
                rows = cache.get(body)
        if rows is None and BATCHER is not None:
            pending = Pending(inputs, [min(MAX_SEQ, len(t.split()) + 2) for t in inputs])
            BATCHER.submit(pending)
            rows, t_admitted, t_inferred = pending.rows, pending.started, pending.finished
            batch = pending.batch_rows or None
        elif rows is None:
            with GATE:
                # Service starts at admission, so time spent queued for a worker is not service.
                t_admitted = time.perf_counter()
                factor = slow_factor()
                burn(BURN_S * factor)
                rows = [embed(t) for t in inputs]
                sleep_until(t_admitted + SERVICE_S * factor)
                t_inferred = time.perf_counter()
            batch = len(inputs)
            if CACHE:
                with CACHE_LOCK:
                    cache[body] = rows
        else:
            t_admitted = t_inferred = t_tokenized
        data = json.dumps(rows).encode()
        t_serialized = time.perf_counter()
        seconds = {
            "request": t_serialized - t_read, "parse": t_parsed - t_read,
            "tokenize": t_tokenized - t_parsed, "queue": t_admitted - t_tokenized,
            "inference": t_inferred - t_admitted, "serialize": t_serialized - t_inferred,
        }
        METRICS.record(len(inputs), tokens, seconds, batch)
        ms = lambda s: f"{s * 1000:.3f}"  # noqa: E731
        self.send(200, data, "application/json", {
            "x-tokenization-time": ms(seconds["tokenize"]),
            "x-inference-time": ms(seconds["queue"] + seconds["inference"]),
            "x-total-time": ms(seconds["request"]),
        })


if __name__ == "__main__":
    for i in range(BUSY_THREADS):
        threading.Thread(target=spin, args=(i,), daemon=True).start()
    time.sleep(IMPORT_S)
    http = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))),
                               Handler)
    STAMPS["runtime_ready"] = time.monotonic()
    threading.Thread(target=load, daemon=True).start()
    http.serve_forever()
