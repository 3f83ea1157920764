"""End-to-end test of the server binary against the contract, on the toy model folder.

usage: server_test.py SERVER_BINARY   (EMBBENCH_FIXTURES names the folder make_fixtures.py wrote)

Expected embeddings are computed independently: HF `tokenizers` ids, then numpy over the toy
graph's embedding table (masked sum, L2 norm).
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
from tokenizers import Tokenizer

passed = failed = 0


def check(ok, what):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if ok:
        passed += 1
    else:
        failed += 1


def request(port, method, path, body=None, content_type="application/json", raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": content_type} if content_type and data is not None else {}
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload
    return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), parsed


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expect_error(port, method, path, status, error_type, what, **kw):
    code, _, body = request(port, method, path, **kw)
    ok = code == status and isinstance(body, dict) and body.get("error_type") == error_type and body.get("error")
    check(ok, f"{what}: {status} {error_type} (got {code} {body})")


def main():
    binary = sys.argv[1]
    model_dir = os.path.join(os.environ["EMBBENCH_FIXTURES"], "toy")
    port = free_port()
    env = dict(os.environ, MODEL_DIR=model_dir, HOST="127.0.0.1", PORT=str(port), NUM_THREADS="1",
               MAX_BATCH="4", MAX_INFLIGHT="2", MAX_BODY_BYTES="4096", LOAD_DELAY_MS="1500")
    proc = subprocess.Popen([binary], env=env)
    try:
        run(port, model_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def run(port, model_dir):
    deadline = time.time() + 10
    while True:
        try:
            code, _, body = request(port, "GET", "/health")
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    check(code == 503 and body == {"error": "model is loading", "error_type": "Unhealthy"},
          f"/health answers 503 Unhealthy while LOAD_DELAY_MS holds the load (got {code} {body})")
    expect_error(port, "POST", "/embed", 503, "Unhealthy", "/embed while loading", body={"inputs": "x"})
    code, _, info = request(port, "GET", "/info")
    check(code == 200 and info["model"] == "toy", "/info answers while loading")

    t0 = time.time()
    while request(port, "GET", "/health")[0] != 200:
        if time.time() - t0 > 30:
            check(False, "/health turns 200 within 30 s")
            return
        time.sleep(0.05)
    check(request(port, "GET", "/health")[2] == {"status": "ok"}, "/health answers {\"status\": \"ok\"} once loaded")

    code, _, info = request(port, "GET", "/info")
    check(info["framework"] == "onnxruntime" and info["framework_version"].startswith("1.21")
          and info["embedding_dim"] == 8 and info["max_seq_length"] == 16 and info["threads"] == 1
          and info["max_batch"] == 4 and info["max_inflight"] == 2 and info["dtype"] == "float32"
          and info["cpus"] and info["build"]["cpu_level"] == "x86-64-v3", f"/info reports the settings: {info}")

    tok = Tokenizer.from_file(os.path.join(model_dir, "pytorch", "tokenizer.json"))
    tok.enable_truncation(16)
    table = np.load(os.path.join(model_dir, "table.npy"))

    def expected(text):
        v = table[tok.encode(text).ids].sum(axis=0)
        return v / np.linalg.norm(v)

    texts = ["The quick brown fox.", "", "Über den Wolken " * 10]
    code, headers, rows = request(port, "POST", "/embed", {"inputs": texts})
    check(code == 200 and headers.get("content-type", "").startswith("application/json"), f"/embed answers 200 JSON ({code})")
    check(all(h in headers for h in ("x-tokenization-time", "x-inference-time", "x-total-time")),
          "/embed sends x-tokenization-time, x-inference-time, x-total-time")
    check(all(float(headers[h]) >= 0 for h in ("x-tokenization-time", "x-inference-time", "x-total-time")),
          "timing headers are non-negative decimal milliseconds")
    diffs = [float(np.abs(np.array(r) - expected(t)).max()) for r, t in zip(rows, texts)]
    diff = max(diffs) if all(np.isfinite(diffs)) else float("nan")
    check(len(rows) == 3 and diff < 1e-5, f"embeddings match tokenizers+numpy, padded and truncated (max |diff| {diff:.2e})")
    code, _, single = request(port, "POST", "/embed", {"inputs": "The quick brown fox."})
    same = len(single) == 1 and float(np.abs(np.array(single[0]) - np.array(rows[0])).max()) < 1e-6
    check(code == 200 and same, "a single string answers one row, the same as within a padded batch")
    code, _, _ = request(port, "POST", "/embed", {"inputs": ["a"], "prompt_name": "q", "truncate": None,
                                                 "normalize": True})
    check(code == 200, "unknown fields are ignored and null means the default")

    expect_error(port, "GET", "/nope", 404, "NotFound", "unknown path")
    expect_error(port, "GET", "/embed", 405, "MethodNotAllowed", "GET /embed")
    expect_error(port, "POST", "/health", 405, "MethodNotAllowed", "POST /health")
    expect_error(port, "POST", "/embed", 413, "PayloadTooLarge", "more than MAX_BATCH inputs",
                 body={"inputs": ["a"] * 5})
    expect_error(port, "POST", "/embed", 413, "PayloadTooLarge", "a body over MAX_BODY_BYTES",
                 body={"inputs": ["x" * 5000]})
    expect_error(port, "POST", "/embed", 415, "UnsupportedMediaType", "text/plain",
                 body={"inputs": "a"}, content_type="text/plain")
    expect_error(port, "POST", "/embed", 422, "Validation", "malformed JSON", raw=b'{"inputs": ')
    expect_error(port, "POST", "/embed", 422, "Validation", "invalid UTF-8", raw=b'{"inputs": "\xc3\x28"}')
    expect_error(port, "POST", "/embed", 422, "Validation", "missing inputs", body={"truncate": True})
    expect_error(port, "POST", "/embed", 422, "Validation", "null inputs", body={"inputs": None})
    expect_error(port, "POST", "/embed", 422, "Validation", "nested list", body={"inputs": [["a"]]})
    expect_error(port, "POST", "/embed", 422, "Validation", "empty list", body={"inputs": []})
    expect_error(port, "POST", "/embed", 422, "Validation", "normalize false", body={"inputs": "a", "normalize": False})
    expect_error(port, "POST", "/embed", 422, "Validation", "truncate false with an over-long text",
                 body={"inputs": ["short", "word " * 40], "truncate": False})
    code, _, _ = request(port, "POST", "/embed", {"inputs": "short", "truncate": False})
    check(code == 200, "truncate false with a short text is fine")

    results = []

    def worker():
        for _ in range(5):
            results.append(request(port, "POST", "/embed", {"inputs": texts})[2] == rows)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(len(results) == 40 and all(results), "40 concurrent requests on 8 connections all answer the same rows")
    check(request(port, "GET", "/health")[0] == 200, "still healthy after every error")


if __name__ == "__main__":
    main()
