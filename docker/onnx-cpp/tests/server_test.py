"""End-to-end test of the server binary against the contract, on the toy model folder.

usage: server_test.py SERVER_BINARY   (EMBBENCH_FIXTURES names the folder make_fixtures.py wrote)

Expected embeddings are computed independently: HF `tokenizers` ids, then numpy over the toy
graph's embedding table (masked sum, L2 norm).
"""
import http.client
import json
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
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


METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"
COUNTERS = ["requests", "inputs", "tokens", "request_seconds", "parse_seconds", "tokenize_seconds",
            "queue_seconds", "inference_seconds", "serialize_seconds"]
BUCKETS = ["1", "2", "4", "8", "16", "32", "64", "128", "256", "+Inf"]


def metrics(port):
    """GET /metrics: (status, content type, {sample name: value}); checks the 0.0.4 text format."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    out, family, types = {}, None, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ")
            types[family] = kind
            continue
        name, value = line.rsplit(" ", 1)
        assert name.startswith(family), f"{name} outside its TYPE family {family}"
        out[name] = float(value)
    want_types = {f"embbench_{c}_total": "counter" for c in COUNTERS}
    want_types["embbench_batch_size"] = "histogram"
    assert types == want_types, types
    return resp.status, resp.getheader("Content-Type"), out


def delta(after, before):
    return {k: after[k] - before[k] for k in after}


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
    spawn0 = time.monotonic()
    proc = subprocess.Popen([binary], env=env)
    spawn1 = time.monotonic()
    try:
        run(port, model_dir, proc.pid, (spawn0, spawn1))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    warmup_settings(binary, model_dir)
    serving_settings(binary, model_dir)
    batched_mode(binary, model_dir)
    for serving in ("sequential", "batched"):
        prompts_and_dimensions(binary, model_dir, serving)
    graph_choice(binary, model_dir)
    bench_run(binary, model_dir)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def wait_healthy(port, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if request(port, "GET", "/health")[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def warmup_settings(binary, model_dir):
    """WARMUP=0 turns healthy with no warm-up stamp; a malformed WARMUP stops the server naming it."""
    port = free_port()
    env = dict(os.environ, MODEL_DIR=model_dir, PORT=str(port), NUM_THREADS="1", WARMUP="0")
    proc = subprocess.Popen([binary], env=env)
    try:
        check(wait_healthy(port, 30), "WARMUP=0: /health turns 200")
        _, _, info = request(port, "GET", "/info")
        st = info["startup"]
        check(info["warmup"] is False and st["warmed"] is None and st["model_loaded"] is not None
              and st["runtime_ready"] <= st["model_loaded"] <= st["now"],
              f"WARMUP=0: /info says warmup false, warmed null, model_loaded set ({info['warmup']}, {st})")
        _, _, m = metrics(port)
        check(m["embbench_requests_total"] == 0 and m["embbench_batch_size_count"] == 0,
              "WARMUP=0: /metrics starts at zero")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for bad in ("x", "2"):
        env = dict(os.environ, MODEL_DIR=model_dir, PORT=str(free_port()), NUM_THREADS="1", WARMUP=bad)
        r = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=30)
        check(r.returncode == 2 and f'WARMUP="{bad}"' in r.stderr,
              f"WARMUP={bad} is a configuration error naming the variable and value (exit {r.returncode}: {r.stderr.strip()})")


def start(binary, model_dir, **extra):
    port = free_port()
    env = dict(os.environ, MODEL_DIR=model_dir, PORT=str(port), NUM_THREADS="1", **extra)
    proc = subprocess.Popen([binary], env=env)
    return port, proc


def stop(proc):
    proc.terminate()
    proc.wait(timeout=10)


def serving_settings(binary, model_dir):
    """A malformed SERVING, MAX_BATCH_TOKENS or MAX_WAIT_US stops the server naming the variable."""
    for name, value in (("SERVING", "dynamic"), ("SERVING", "Batched"), ("MAX_BATCH_TOKENS", "0"),
                        ("MAX_BATCH_TOKENS", "lots"), ("MAX_WAIT_US", "-1"), ("MAX_WAIT_US", "1.5")):
        env = dict(os.environ, MODEL_DIR=model_dir, PORT=str(free_port()), NUM_THREADS="1", **{name: value})
        r = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=30)
        check(r.returncode == 2 and f"{name}=" in r.stderr and value in r.stderr,
              f"{name}={value} is a configuration error naming the variable (exit {r.returncode}: {r.stderr.strip()})")


def batched_mode(binary, model_dir):
    """SERVING=batched: concurrent requests share one inference, each answered with its own rows."""
    tok = Tokenizer.from_file(os.path.join(model_dir, "pytorch", "tokenizer.json"))
    tok.enable_truncation(16)
    table = np.load(os.path.join(model_dir, "table.npy"))

    def expected(text):
        v = table[tok.encode(text).ids].sum(axis=0)
        return v / np.linalg.norm(v)

    port, proc = start(binary, model_dir, SERVING="batched", MAX_WAIT_US="300000", MAX_BATCH="4")
    try:
        check(wait_healthy(port, 30), "SERVING=batched: /health turns 200")
        _, _, info = request(port, "GET", "/info")
        check(info["serving"] == {"mode": "batched", "max_batch_tokens": 16384, "max_wait_us": 300000},
              f"SERVING=batched: /info serving ({info['serving']})")
        # A lone request waits MAX_WAIT_US for company, then runs alone.
        _, _, m0 = metrics(port)
        t0 = time.monotonic()
        code, headers, rows = request(port, "POST", "/embed", {"inputs": ["alone in its batch", ""]})
        took = time.monotonic() - t0
        _, _, m1 = metrics(port)
        d = delta(m1, m0)
        diff = max(float(np.abs(np.array(r) - expected(t)).max()) for r, t in zip(rows, ["alone in its batch", ""]))
        check(code == 200 and diff < 1e-5 and 0.3 <= float(headers["x-inference-time"]) / 1000 <= took
              and d["embbench_batch_size_count"] == 1 and d["embbench_batch_size_sum"] == 2
              and d["embbench_requests_total"] == 1 and d["embbench_queue_seconds_total"] >= 0.29,
              f"a lone request waits MAX_WAIT_US=300 ms in the queue, then runs alone "
              f"(x-inference-time {headers.get('x-inference-time')} ms, {took:.3f} s, max |diff| {diff:.1e}, {d})")

        # Six requests of 1 to 3 texts sent at once on their own connections.
        reqs = [[f"request {i} text {k} " + "word " * ((i + k) % 3) for k in range(1 + i % 3)] for i in range(6)]
        answers = [None] * len(reqs)

        def send(i):
            answers[i] = request(port, "POST", "/embed", {"inputs": reqs[i]})

        _, _, m0 = metrics(port)
        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(reqs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _, _, m1 = metrics(port)
        d = delta(m1, m0)
        n_rows = sum(len(r) for r in reqs)
        right = all(a[0] == 200 and len(a[2]) == len(texts)
                    and max(float(np.abs(np.array(row) - expected(t)).max()) for row, t in zip(a[2], texts)) < 1e-5
                    for a, texts in zip(answers, reqs))
        check(right, "SERVING=batched: six concurrent requests each get their own rows, in their own order")
        check(d["embbench_requests_total"] == 6 and d["embbench_inputs_total"] == n_rows
              and d["embbench_batch_size_sum"] == n_rows and 1 <= d["embbench_batch_size_count"] <= 2,
              f"SERVING=batched: the six requests ({n_rows} rows) shared at most two inferences "
              f"(embbench_batch_size counts the rows of each inference: {d})")
        header_sum = sum(float(a[1]["x-inference-time"]) for a in answers) / 1000
        phases = d["embbench_queue_seconds_total"] + d["embbench_inference_seconds_total"]
        per_batch_inference = d["embbench_inference_seconds_total"] / 6
        check(abs(header_sum - phases) < 6e-6 and d["embbench_inference_seconds_total"] > 0
              and all(float(a[1]["x-total-time"]) >= float(a[1]["x-inference-time"]) for a in answers),
              f"SERVING=batched: x-inference-time is queue + inference, the batch's inference counted whole for "
              f"each request ({header_sum:.6f} s vs {phases:.6f} s, {per_batch_inference * 1000:.3f} ms each)")
        expect_error(port, "POST", "/embed", 413, "PayloadTooLarge", "SERVING=batched: more than MAX_BATCH inputs",
                     body={"inputs": ["a"] * 5})
        expect_error(port, "POST", "/embed", 422, "Validation", "SERVING=batched: truncate false with an over-long text",
                     body={"inputs": ["short", "word " * 40], "truncate": False})
    finally:
        stop(proc)

    # MAX_WAIT_US=0 (the default) under a burst: answers still follow their texts.
    port, proc = start(binary, model_dir, SERVING="batched", MAX_INFLIGHT="2", MAX_BATCH_TOKENS="64")
    try:
        check(wait_healthy(port, 30), "SERVING=batched, MAX_INFLIGHT=2: /health turns 200")
        results = []
        texts = [f"burst {i} " + "x " * (i % 9) for i in range(40)]

        def worker(k):
            for i in range(k, len(texts), 8):
                code, _, rows = request(port, "POST", "/embed", {"inputs": [texts[i], "shared"]})
                results.append(code == 200 and float(np.abs(np.array(rows[0]) - expected(texts[i])).max()) < 1e-5
                               and float(np.abs(np.array(rows[1]) - expected("shared")).max()) < 1e-5)

        _, _, m0 = metrics(port)
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _, _, m1 = metrics(port)
        d = delta(m1, m0)
        check(len(results) == 40 and all(results) and d["embbench_batch_size_sum"] == 80
              and d["embbench_requests_total"] == 40,
              f"SERVING=batched, MAX_WAIT_US=0, 8 connections: 40 requests answered with their own rows ({d})")
    finally:
        stop(proc)


def prompts_and_dimensions(binary, model_dir, serving):
    """prompt_name prepends the model's prompt before tokenization (counting toward max_seq_length);
    dimensions cuts each answer row and normalises it again; both are validated against
    embbench_model.json with the contract's 422 messages. Batched: requests with different prompts and
    sizes share one inference and each gets its own rows."""
    tok = Tokenizer.from_file(os.path.join(model_dir, "pytorch", "tokenizer.json"))
    tok.enable_truncation(16)
    table = np.load(os.path.join(model_dir, "table.npy"))
    prompts = {"query": "query: ", "document": ""}

    def expected(text, prompt_name=None, dims=None):
        v = table[tok.encode(prompts.get(prompt_name, "") + text).ids].sum(axis=0)
        v = v / np.linalg.norm(v)
        return v[:dims] / np.linalg.norm(v[:dims]) if dims else v

    work = tempfile.mkdtemp()
    try:
        folder = os.path.join(work, "model")
        shutil.copytree(model_dir, folder)
        facts_path = os.path.join(folder, "embbench_model.json")
        with open(facts_path) as f:
            facts = json.load(f)
        facts.update(attention="bidirectional", dense=[], prompts=prompts, dimensions={"min": 2, "max": 8, "sizes": [8, 4, 2]})
        with open(facts_path, "w") as f:
            json.dump(facts, f)
        port, proc = start(binary, folder, SERVING=serving, MAX_BATCH="4", MAX_WAIT_US="200000")
        what = f"SERVING={serving}"
        try:
            check(wait_healthy(port, 30), f"{what}, prompts and dimensions: /health turns 200")
            long_text = "many words to fill the sequence " * 3
            cases = [  # (body fields, text): every prompt and size, null defaults, a prompt that truncates
                ({"prompt_name": "query"}, "what is a fox?"),
                ({"prompt_name": "document"}, "a fox is an animal"),
                ({"dimensions": 4}, "a fox is an animal"),
                ({"dimensions": 2, "prompt_name": "query"}, "what is a fox?"),
                ({"dimensions": 8}, "full size"),
                ({"dimensions": None, "prompt_name": None}, "defaults"),
                ({"prompt_name": "query"}, long_text),
            ]
            results = [None] * len(cases)

            def send(i):
                fields, text = cases[i]
                results[i] = request(port, "POST", "/embed", {"inputs": [text, text], **fields})

            # Concurrent: in batched mode (MAX_WAIT_US) they share inferences with different prompts and sizes.
            threads = [threading.Thread(target=send, args=(i,)) for i in range(len(cases))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for (fields, text), (code, _, rows) in zip(cases, results):
                want = expected(text, fields.get("prompt_name"), fields.get("dimensions"))
                ok = code == 200 and len(rows) == 2 and all(len(r) == len(want) for r in rows)
                diff = max(float(np.abs(np.array(r) - want).max()) for r in rows) if ok else float("nan")
                norms = [float(np.linalg.norm(r)) for r in rows] if ok else []
                check(ok and diff < 1e-5 and all(abs(n - 1) < 1e-5 for n in norms),
                      f"{what}: {fields} answers {len(want)} numbers of norm 1 as tokenizers+numpy (max |diff| {diff:.2e})")
            code, _, rows = request(port, "POST", "/embed", {"inputs": long_text, "prompt_name": "query", "truncate": False})
            n = len(Tokenizer.from_file(os.path.join(model_dir, "pytorch", "tokenizer.json")).encode("query: " + long_text).ids)
            check(code == 422, f"{what}: the prompt counts toward max_seq_length ({n} tokens > 16, truncate false: {code})")
            for body, message in (
                ({"inputs": "a", "prompt_name": "summary"}, "'prompt_name' is \"summary\": the model's prompts are query, document"),
                ({"inputs": "a", "dimensions": 3}, "'dimensions' is 3: expected one of 2, 4, 8"),
                ({"inputs": "a", "dimensions": 16}, "'dimensions' is 16: expected one of 2, 4, 8"),
            ):
                code, _, err = request(port, "POST", "/embed", body)
                check(code == 422 and err == {"error": message, "error_type": "Validation"},
                      f"{what}: {body} answers 422 with the contract's message ({code} {err})")
        finally:
            stop(proc)
        port, proc = start(binary, model_dir, SERVING=serving)
        try:
            check(wait_healthy(port, 30), f"{what}, no prompts: /health turns 200")
            code, _, err = request(port, "POST", "/embed", {"inputs": "a", "prompt_name": "query"})
            check(code == 422 and err["error"] == "'prompt_name' is \"query\": the model has no prompts",
                  f"{what}: a model without prompts answers 422 to any prompt_name ({code} {err})")
            code, _, err = request(port, "POST", "/embed", {"inputs": "a", "dimensions": 4})
            check(code == 422 and err["error"] == "'dimensions' is 4: expected one of 8",
                  f"{what}: a model without Matryoshka sizes answers 422 to another size ({code} {err})")
        finally:
            stop(proc)
    finally:
        shutil.rmtree(work)


def graph_choice(binary, model_dir):
    """embbench_model.json's ort_graph is loaded when named (and named in /info.build.model_file)."""
    work = tempfile.mkdtemp()
    try:
        folder = os.path.join(work, "model")
        shutil.copytree(model_dir, folder)
        os.rename(os.path.join(folder, "onnx", "model.onnx"), os.path.join(folder, "onnx", "model_fused.onnx"))
        # onnx/model.onnx is left unloadable: only the named graph can serve.
        with open(os.path.join(folder, "onnx", "model.onnx"), "wb") as f:
            f.write(b"not an onnx graph")
        facts_path = os.path.join(folder, "embbench_model.json")
        with open(facts_path) as f:
            facts = json.load(f)
        facts["ort_graph"] = "onnx/model_fused.onnx"
        with open(facts_path, "w") as f:
            json.dump(facts, f)
        port, proc = start(binary, folder)
        try:
            check(wait_healthy(port, 30), "ort_graph: /health turns 200 with onnx/model.onnx unloadable")
            _, _, info = request(port, "GET", "/info")
            code, _, rows = request(port, "POST", "/embed", {"inputs": ["fused graph"]})
            check(info["build"]["model_file"] == "onnx/model_fused.onnx" and code == 200 and len(rows) == 1,
                  f"ort_graph names the graph loaded: /info.build.model_file {info['build']['model_file']}")
        finally:
            stop(proc)
        os.remove(os.path.join(folder, "onnx", "model_fused.onnx"))
        env = dict(os.environ, MODEL_DIR=folder, PORT=str(free_port()), NUM_THREADS="1")
        r = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=30)
        check(r.returncode == 1 and "model_fused.onnx" in r.stderr,
              f"a missing ort_graph file stops the server naming it (exit {r.returncode}: {r.stderr.strip()[-200:]})")
    finally:
        shutil.rmtree(work)


def bench_run(binary, model_dir):
    """--bench-run: the engine as the server loads it, the payload tokenized once, Run() timed."""
    tok = Tokenizer.from_file(os.path.join(model_dir, "pytorch", "tokenizer.json"))
    tok.enable_truncation(16)
    texts = ["bench run text one", "a second, longer bench run text with more words"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"inputs": texts}, f)
        payload = f.name
    try:
        env = dict(os.environ, MODEL_DIR=model_dir, NUM_THREADS="1")
        r = subprocess.run([binary, "--bench-run", "--payload", payload, "--runs", "25"], env=env,
                           capture_output=True, text=True, timeout=60)
        out = json.loads(r.stdout) if r.returncode == 0 else {}
        seq = max(len(tok.encode(t).ids) for t in texts)
        check(r.returncode == 0 and out["runs"] == 25 and 0 < out["p10_ms"] <= out["median_ms"] <= out["p90_ms"]
              and out["rows"] == 2 and out["seq_len"] == seq
              and out["session"]["model_file"] == "onnx/model.onnx" and out["session"]["intra_op_threads"] == 1,
              f"--bench-run prints the timing and session facts (exit {r.returncode}: {r.stdout.strip()} {r.stderr[-300:]})")
        r = subprocess.run([binary, "--bench-run", "--runs", "5"], env=env, capture_output=True, text=True, timeout=60)
        check(r.returncode == 2 and "--payload" in r.stderr, f"--bench-run without --payload says so ({r.stderr.strip()})")
    finally:
        os.remove(payload)


def run(port, model_dir, pid, spawned):
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
    st = info["startup"]
    # /proc's start time has 10 ms resolution, floored.
    check(st["clock"] == "monotonic" and spawned[0] - 0.03 <= st["process_start"] <= spawned[1] + 0.03,
          f"/info startup.process_start is the server's start on CLOCK_MONOTONIC "
          f"({st['process_start']} within {spawned[0]:.3f}..{spawned[1]:.3f})")
    check(st["process_start"] - 0.02 <= st["runtime_ready"] <= st["now"] and st["model_loaded"] is None
          and st["warmed"] is None and info["warmup"] is True,
          f"while loading: runtime_ready stamped, model_loaded and warmed null, warmup true ({st})")
    code, ctype, m = metrics(port)
    check(code == 200 and ctype == METRICS_CONTENT_TYPE and all(v == 0 for v in m.values()) and len(m) == 9 + 12,
          f"/metrics answers {METRICS_CONTENT_TYPE}, every counter 0, while loading ({code} {ctype} {m})")
    expect_error(port, "POST", "/metrics", 405, "MethodNotAllowed", "POST /metrics", body={})
    expect_error(port, "DELETE", "/metrics", 405, "MethodNotAllowed", "DELETE /metrics")

    t0 = time.time()
    while request(port, "GET", "/health")[0] != 200:
        if time.time() - t0 > 30:
            check(False, "/health turns 200 within 30 s")
            return
        time.sleep(0.05)
    check(request(port, "GET", "/health")[2] == {"status": "ok"}, "/health answers {\"status\": \"ok\"} once loaded")

    tasks_before = {int(t) for t in os.listdir(f"/proc/{pid}/task")}
    before = time.monotonic()
    code, _, info = request(port, "GET", "/info")
    after = time.monotonic()
    tasks_after = {int(t) for t in os.listdir(f"/proc/{pid}/task")}
    st = info["startup"]
    check(st["process_start"] - 0.02 <= st["runtime_ready"] and st["runtime_ready"] + 1.5 <= st["model_loaded"]
          and st["model_loaded"] <= st["warmed"] <= st["now"] and before <= st["now"] <= after,
          f"startup stamps are ordered, LOAD_DELAY_MS=1500 lies between runtime_ready and model_loaded, "
          f"now is the answer's time ({st}, asked at {before:.3f}..{after:.3f})")
    threads = info["os_threads"]
    check(isinstance(threads, list) and any(t["tid"] == pid for t in threads) and len(threads) >= 3
          and all(isinstance(t["tid"], int) and isinstance(t["name"], str) and t["cpu_seconds"] >= 0 for t in threads)
          and len({t["tid"] for t in threads}) == len(threads)
          and tasks_before & tasks_after <= {t["tid"] for t in threads} <= tasks_before | tasks_after,
          f"/info os_threads lists every thread of the server ({len(threads)} threads, "
          f"{len(tasks_before)} in /proc/{pid}/task)")
    _, _, m = metrics(port)
    check(all(v == 0 for v in m.values()), "the warm-up inference is not counted in /metrics")
    code, _, info = request(port, "GET", "/info")
    check(info["framework"] == "onnxruntime" and info["framework_version"].startswith("1.21")
          and info["embedding_dim"] == 8 and info["max_seq_length"] == 16 and info["threads"] == 1
          and info["max_batch"] == 4 and info["max_inflight"] == 2 and info["dtype"] == "float32"
          and info["cpus"] and info["build"]["cpu_level"] == "x86-64-v3", f"/info reports the settings: {info}")
    b = info["build"]
    check(info["serving"] == {"mode": "sequential", "max_batch_tokens": 16384, "max_wait_us": 0}
          and b["model_file"] == "onnx/model.onnx" and isinstance(b["intra_op_spinning"], bool)
          and b["onnxruntime_version"] == info["framework_version"] and b["onnxruntime_build"]
          and "libonnxruntime" in b["onnxruntime_library"] and b["intra_op_threads"] == 1 and b["inter_op_threads"] == 1
          and b["graph_optimization_level"] == "ORT_ENABLE_ALL" and b["execution_mode"] == "sequential"
          and b["cpu_mem_arena"] is True and b["intra_op_thread_affinities"] is None,
          f"/info serving and build: sequential by default, the graph, ONNX Runtime and session options "
          f"({info['serving']}, {b})")

    tok = Tokenizer.from_file(os.path.join(model_dir, "pytorch", "tokenizer.json"))
    tok.enable_truncation(16)
    table = np.load(os.path.join(model_dir, "table.npy"))
    _, _, m_start = metrics(port)

    def expected(text):
        v = table[tok.encode(text).ids].sum(axis=0)
        return v / np.linalg.norm(v)

    texts = ["The quick brown fox.", "", "Über den Wolken " * 10]
    _, _, m0 = metrics(port)
    code, headers, rows = request(port, "POST", "/embed", {"inputs": texts})
    _, _, m1 = metrics(port)
    d = delta(m1, m0)
    n_tokens = sum(len(tok.encode(t).ids) for t in texts)
    check(d["embbench_requests_total"] == 1 and d["embbench_inputs_total"] == 3
          and d["embbench_tokens_total"] == n_tokens and d["embbench_batch_size_sum"] == 3
          and d["embbench_batch_size_count"] == 1 and d['embbench_batch_size_bucket{le="2"}'] == 0
          and all(d[f'embbench_batch_size_bucket{{le="{b}"}}'] == 1 for b in BUCKETS[2:]),
          f"one /embed of 3 texts ({n_tokens} tokens after truncation) moves the counters and histogram: {d}")
    phases = ["parse", "tokenize", "queue", "inference", "serialize"]
    secs = {p: d[f"embbench_{p}_seconds_total"] for p in phases + ["request"]}
    check(all(v >= 0 for v in secs.values()) and secs["inference"] > 0 and secs["tokenize"] > 0
          and sum(secs[p] for p in phases) <= secs["request"] + 1e-9,
          f"the phases are non-negative and add up to at most the request's time: {secs}")
    header_s = {h: float(headers[h]) / 1000 for h in ("x-tokenization-time", "x-inference-time", "x-total-time")}
    check(abs(header_s["x-tokenization-time"] - secs["tokenize"]) <= 1e-6
          and abs(header_s["x-inference-time"] - (secs["queue"] + secs["inference"])) <= 1e-6
          and abs(header_s["x-total-time"] - secs["request"]) <= 1e-6,
          f"the timing headers are tokenize, queue + inference and request ({header_s} vs {secs})")
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
    code, _, _ = request(port, "POST", "/embed", {"inputs": ["a"], "pooling": "q", "truncate": None,
                                                 "normalize": True, "prompt_name": None, "dimensions": None})
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
    # 200 answers since m_start: 3 texts, 1, 1 ("a"), 1 ("short"), then 40 × 3; errors are not counted.
    _, _, m_end = metrics(port)
    d = delta(m_end, m_start)
    check(d["embbench_requests_total"] == 44 and d["embbench_inputs_total"] == 126
          and d['embbench_batch_size_bucket{le="1"}'] == 3 and d['embbench_batch_size_bucket{le="4"}'] == 44
          and d["embbench_batch_size_sum"] == 126,
          f"only the 44 requests answered 200 are counted: {d}")
    _, _, info = request(port, "GET", "/info")
    check(sum(t["cpu_seconds"] for t in info["os_threads"]) > 0, "os_threads report the CPU time used")
    check(request(port, "GET", "/health")[0] == 200, "still healthy after every error")
    many_connections(port, 1100)


def many_connections(port, n):
    """n keep-alive connections open at once, each sending POST /embed and kept open: every one is
    answered (no connection waits for an HTTP thread another connection holds), then each sends a
    second request on the same connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    body = json.dumps({"inputs": ["many connections"]}).encode()
    req = (b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            socks.append(s)
        for rnd in (1, 2):
            for s in socks:
                s.sendall(req)
            sel = selectors.DefaultSelector()
            bufs = {}
            for s in socks:
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
                bufs[s] = b""
            answered = {}
            deadline = time.time() + 60
            while len(answered) < n and time.time() < deadline:
                for key, _ in sel.select(timeout=1):
                    s = key.fileobj
                    chunk = s.recv(65536)
                    if not chunk:
                        answered[s] = b"closed"
                        sel.unregister(s)
                        continue
                    bufs[s] += chunk
                    head, sep, rest = bufs[s].partition(b"\r\n\r\n")
                    if not sep:
                        continue
                    length = int(next(l.split(b":")[1] for l in head.split(b"\r\n")
                                      if l.lower().startswith(b"content-length:")))
                    if len(rest) >= length:
                        answered[s] = head.split(b"\r\n")[0]
                        sel.unregister(s)
            sel.close()
            ok = sum(1 for v in answered.values() if v.startswith(b"HTTP/1.1 200"))
            check(ok == n, f"{n} connections open at once, request {rnd} on each: {ok} answered 200 "
                           f"({len(answered)} answered within 60 s)")
            for s in socks:
                s.setblocking(True)
    finally:
        for s in socks:
            s.close()


if __name__ == "__main__":
    main()
