"""A minimal server speaking docker/CONTRACT.md's shape, for testing the harness's orchestration.

It is a test fixture, not a framework: its "embeddings" are a deterministic hash of the text, so
`embbench verify` fails it by design. `burn` mode instead keeps one core busy and holds a known
allocation, to check the docker stats formulas.
"""
import hashlib
import json
import math
import os
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()
LOAD_DELAY_S = float(os.environ.get("LOAD_DELAY_MS", "0")) / 1000
DIM = 8


def embed(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    row = [b - 127.5 for b in digest[:DIM]]
    norm = math.sqrt(sum(v * v for v in row)) or 1.0
    return [v / norm for v in row]


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
        rows = [embed(t) for t in inputs]
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
