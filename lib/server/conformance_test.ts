import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  changeLastWord,
  checkBatchedRows,
  checkBusyThreads,
  checkKeepAlive,
  checkMetrics,
  checkNoWarmup,
  compareEmbeddings,
  type ConformanceCheck,
  type ConformanceOptions,
  MAX_ABS_DIFF,
  observeHealthStartup,
  ortGraphCheck,
  parseOsThreads,
  referenceCaseCheckName,
  runConformance,
  startupProblems,
} from "./conformance.ts";
import { metricsDelta, type MetricsReading, parsePrometheus, PHASES } from "./metrics.ts";
import { freePort } from "./server.ts";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const venvPython = `${repo}.venv-server/bin/python`;

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function failures(checks: ConformanceCheck[]): string[] {
  return checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
}

Deno.test("compareEmbeddings() reports the worst cosine and |Δ| and the rows past the limits", () => {
  const reference = [[1, 0], [0, 1], [0.6, 0.8]];
  const served = [[1, 0], [0, 1 + 2 * MAX_ABS_DIFF], [0.8, 0.6]];
  const c = compareEmbeddings(served, reference);
  equal(c.rows, 3);
  equal(c.worstCosineRow, 2);
  ok(Math.abs(c.worstCosine - 0.96) < 1e-12);
  equal(c.worstAbsDiffRow, 2);
  deepStrictEqual(c.failingRows, [1, 2]);
  deepStrictEqual(compareEmbeddings(reference, reference).failingRows, []);
});

/** A model folder with just what the suite reads. */
function writeFakeModel(): string {
  const dir = Deno.makeTempDirSync({ prefix: "embbench-conformance-" });
  Deno.mkdirSync(`${dir}/reference`);
  Deno.writeTextFileSync(
    `${dir}/embbench_model.json`,
    JSON.stringify({
      name: "fake",
      architecture: "bert",
      pooling: "cls",
      normalize: true,
      max_seq_length: 16,
      embedding_dim: 2,
    }),
  );
  Deno.writeTextFileSync(
    `${dir}/reference/embeddings.json`,
    JSON.stringify({ model: "fake", texts: ["a", "b"], embeddings: [[1, 0], [0, 1]], token_counts: [3, 3] }),
  );
  return dir;
}

Deno.test("runConformance() fails a server that breaks the contract, without throwing", async () => {
  const modelDir = writeFakeModel();
  // Answers every request 200 with slightly wrong rows, and never a JSON error.
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    await req.arrayBuffer().catch(() => undefined);
    const path = new URL(req.url).pathname;
    if (path === "/info") {
      return Response.json({ framework: "broken", framework_version: "0", model: "fake", embedding_dim: 2 });
    }
    if (path === "/health") return new Response("fine");
    return Response.json([[0.9, 0.1], [0.1, 0.9]]);
  });
  try {
    const baseUrl = `http://127.0.0.1:${server.addr.port}`;
    const checks = await runConformance({ baseUrl, modelDir, maxBatch: 8, maxBodyBytes: 1024 });
    const byName = new Map(checks.map((c) => [c.name, c]));
    ok(checks.filter((c) => c.name.startsWith("rejects ")).length >= 12);
    const info = byName.get("info: shape and values")!;
    ok(!info.ok);
    match(info.detail, /max_seq_length is undefined: expected 16/);
    const emb = byName.get("embeddings match the reference")!;
    ok(!emb.ok);
    match(emb.detail, /rows 0, 1 outside/);
    match(emb.detail, /worst cosine 0\.99388/);
    const bad = byName.get("rejects malformed JSON: 422 Validation")!;
    ok(!bad.ok);
    match(bad.detail, /status 200: expected 422/);
    ok(!byName.get("timing headers: present, milliseconds")!.ok);
    // The one thing it does right: it keeps answering /health with 200.
    ok(byName.get("health still 200 after the rejected requests")!.ok);

    const startup = await observeHealthStartup(baseUrl, 2000);
    ok(!startup.ok);
    match(startup.detail, /no 503 seen/);
  } finally {
    await server.shutdown();
    Deno.removeSync(modelDir, { recursive: true });
  }
});

/** Texts long enough that their last word lies past any short prefix. */
const SAMPLE_TEXTS = [
  "The morning train was late because of the snow on the tracks",
  "Die Bibliothek bleibt heute bis Mitternacht geöffnet, sagt die Stadt",
  "Le marché du samedi vend des fromages de toute la région",
];

/** A model folder for docker/testserver (model "hash", 8 dimensions) with payloads/ like convert's. */
function writeTestServerModel(): string {
  const dir = Deno.makeTempDirSync({ prefix: "embbench-conformance-" });
  Deno.mkdirSync(`${dir}/reference`);
  Deno.mkdirSync(`${dir}/payloads`);
  Deno.writeTextFileSync(
    `${dir}/embbench_model.json`,
    JSON.stringify({
      name: "hash",
      architecture: "bert",
      pooling: "cls",
      normalize: true,
      max_seq_length: 512,
      embedding_dim: 8,
    }),
  );
  Deno.writeTextFileSync(
    `${dir}/reference/embeddings.json`,
    JSON.stringify({
      model: "hash",
      texts: ["a"],
      embeddings: [[1, 0, 0, 0, 0, 0, 0, 0]],
      token_counts: [3],
    }),
  );
  Deno.writeTextFileSync(
    `${dir}/payloads/index.json`,
    JSON.stringify({
      bodies: 1,
      payloads: [{ file: "seq16_b3.json", lines: "seq16_b3.jsonl", seq_len: 16, batch_size: 3 }],
    }),
  );
  Deno.writeTextFileSync(`${dir}/payloads/seq16_b3.json`, JSON.stringify({ inputs: SAMPLE_TEXTS }));
  return dir;
}

/** docker/testserver/server.py run directly with python3 (standard library only): no Docker needed. */
async function startTestServerProcess(
  env: Record<string, string>,
): Promise<{ baseUrl: string; pid: number; stop(): Promise<void> }> {
  const port = freePort();
  const child = new Deno.Command("python3", {
    args: [`${repo}docker/testserver/server.py`],
    env: { HOST: "127.0.0.1", PORT: String(port), ...env },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const baseUrl = `http://127.0.0.1:${port}`;
  const stop = async () => {
    child.kill("SIGTERM");
    await child.output();
  };
  // Generous: the interpreter alone can take a second on a busy two-core machine.
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline) {
    try {
      const r = await fetch(`${baseUrl}/health`);
      await r.body?.cancel();
      if (r.status === 200) return { baseUrl, pid: child.pid, stop };
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 20));
  }
  await stop();
  throw new Error(`docker/testserver/server.py did not answer /health on port ${port} within 20 s`);
}

/** Runs the whole suite and returns the named check. */
async function checkNamed(baseUrl: string, modelDir: string, name: string): Promise<ConformanceCheck> {
  const checks = await runConformance({
    baseUrl,
    modelDir,
    maxBatch: 64,
    maxBodyBytes: 2 * 1024 * 1024,
    busyLoadMs: 300,
  });
  const check = checks.find((c) => c.name === name);
  ok(check, `no check named "${name}" in ${checks.map((c) => c.name).join(", ")}`);
  return check;
}

/** A deterministic stand-in for an embedding: 8 numbers from the text's characters. */
function fakeRow(text: string): number[] {
  const row = Array(8).fill(0).map((_, j) => Math.sin(j + 1));
  for (let i = 0; i < text.length; i++) row[i % 8] = row[i % 8]! + Math.sin(text.charCodeAt(i) * (i + 1));
  const norm = Math.hypot(...row) || 1;
  return row.map((x) => x / norm);
}

/** A Deno.serve fake answering /embed with `answer(texts)`; everything else as the contract's happy path. */
function fakeServer(answer: (texts: string[]) => number[][]): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = await req.text().catch(() => "");
    if (new URL(req.url).pathname === "/health") return Response.json({ status: "ok" });
    let inputs: unknown;
    try {
      inputs = JSON.parse(body).inputs;
    } catch {
      return Response.json({ error: "bad", error_type: "Validation" }, { status: 422 });
    }
    const texts = typeof inputs === "string" ? [inputs] : Array.isArray(inputs) ? inputs.map(String) : [];
    return Response.json(answer(texts));
  });
}

const FOLLOW = "answers follow the texts";
const KEEP_ALIVE = "keep-alive: two requests on one connection";

Deno.test("changeLastWord() replaces the last word only", () => {
  equal(changeLastWord("the train was late"), "the train was zebra");
  equal(changeLastWord("a zebra"), "a yak");
  equal(changeLastWord("今天早上"), "zebra");
});

Deno.test("runConformance() passes the test server's rows and keep-alive, with and without its body cache", async () => {
  const modelDir = writeTestServerModel();
  try {
    for (const env of [{}, { CACHE: "1" }] as Record<string, string>[]) {
      const server = await startTestServerProcess(env);
      try {
        const follow = await checkNamed(server.baseUrl, modelDir, FOLLOW);
        ok(follow.ok, follow.detail);
        match(follow.detail, /texts from payloads\/seq16_b3\.json/);
        const keepAlive = await checkNamed(server.baseUrl, modelDir, KEEP_ALIVE);
        ok(keepAlive.ok, keepAlive.detail);
      } finally {
        await server.stop();
      }
    }
  } finally {
    Deno.removeSync(modelDir, { recursive: true });
  }
});

Deno.test("checkKeepAlive() fails a server that closes every connection (test server KEEPALIVE=0)", async () => {
  const server = await startTestServerProcess({ KEEPALIVE: "0" });
  try {
    const check = await checkKeepAlive(server.baseUrl, ['{"inputs": "a"}', '{"inputs": "b"}']);
    ok(!check.ok);
    match(check.detail, /the first answer carries Connection: close: the server drops keep-alive/);
  } finally {
    await server.stop();
  }
});

Deno.test("checkKeepAlive() fails a server that closes the connection without saying so", async () => {
  // Answers one request per connection with a Content-Length and then hangs up.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      const buf = new Uint8Array(4096);
      await conn.read(buf).catch(() => null);
      const body = "[[1,0]]";
      await conn.write(new TextEncoder().encode(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      )).catch(() => 0);
      conn.close();
    }
  })();
  try {
    const check = await checkKeepAlive(`http://127.0.0.1:${listener.addr.port}`, [
      '{"inputs": "a"}',
      '{"inputs": "b"}',
    ]);
    ok(!check.ok);
    match(check.detail, /second request: .*closed the connection|sending the second request failed/);
  } finally {
    listener.close();
    await serving.catch(() => undefined);
  }
});

Deno.test("checkKeepAlive() reads chunked answers to their end and passes a server that keeps the connection", async () => {
  // A streamed body goes out with Transfer-Encoding: chunked, in two chunks.
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    await req.text();
    const parts = ["[[0.6,", "0.8]]"].map((p) => new TextEncoder().encode(p));
    return new Response(
      new ReadableStream({
        start(c) {
          parts.forEach((p) => c.enqueue(p));
          c.close();
        },
      }),
      {
        headers: { "content-type": "application/json" },
      },
    );
  });
  try {
    const check = await checkKeepAlive(`http://127.0.0.1:${server.addr.port}`, [
      '{"inputs": "a"}',
      '{"inputs": "b"}',
    ]);
    ok(check.ok, check.detail);
  } finally {
    await server.shutdown();
  }
});

Deno.test("runConformance() fails a server that answers the same rows whatever the input", async () => {
  const modelDir = writeTestServerModel();
  const server = fakeServer((texts) => texts.map(() => fakeRow("constant")));
  try {
    const check = await checkNamed(`http://127.0.0.1:${server.addr.port}`, modelDir, FOLLOW);
    ok(!check.ok);
    match(check.detail, /the server answers the same rows whatever the input/);
    match(check.detail, /got t2's embedding back/);
  } finally {
    await server.shutdown();
    Deno.removeSync(modelDir, { recursive: true });
  }
});

Deno.test("runConformance() fails a server whose cache is keyed on a text's first characters", async () => {
  const modelDir = writeTestServerModel();
  const cache = new Map<string, number[]>();
  const server = fakeServer((texts) =>
    texts.map((t) => {
      const key = t.slice(0, 24);
      if (!cache.has(key)) cache.set(key, fakeRow(t));
      return cache.get(key)!;
    })
  );
  try {
    const check = await checkNamed(`http://127.0.0.1:${server.addr.port}`, modelDir, FOLLOW);
    ok(!check.ok);
    match(check.detail, /a cache keyed on part of the request .* answers instead of the model/);
    ok(!/whatever the input/.test(check.detail), check.detail);
  } finally {
    await server.shutdown();
    Deno.removeSync(modelDir, { recursive: true });
  }
});

Deno.test("runConformance() fails a server whose rows depend on the rest of the batch", async () => {
  const modelDir = writeTestServerModel();
  // Mixes a little of the whole batch into every row, as a padding bug would.
  const server = fakeServer((texts) => texts.map((t) => fakeRow(t + texts.length)));
  try {
    const check = await checkNamed(`http://127.0.0.1:${server.addr.port}`, modelDir, FOLLOW);
    ok(!check.ok);
    match(check.detail, /a row depends on the other texts in its batch/);
  } finally {
    await server.shutdown();
    Deno.removeSync(modelDir, { recursive: true });
  }
});

Deno.test("observeHealthStartup() times out when nothing listens", async () => {
  const check = await observeHealthStartup(`http://127.0.0.1:${freePort()}`, 300);
  ok(!check.ok);
  match(check.detail, /no HTTP answer within 300 ms/);
});

// ---- The contract's /metrics, /info startup and os_threads, busy threads, WARMUP=0 ----

const METRICS_FORMAT = "metrics: Prometheus text with every metric of the contract";
const METRICS_COUNT = "metrics: counters move with the answered requests only";
const STARTUP = "info: warmup, and startup stamps in order";
const OS_THREADS = "info: os_threads lists the server's threads";
const BUSY = "busy threads under load fit the CPUs";

/** Runs the whole suite (a short busy load) and returns the checks by name. */
async function checksByName(
  baseUrl: string,
  modelDir: string,
  extra: Partial<ConformanceOptions> = {},
): Promise<Map<string, ConformanceCheck>> {
  const checks = await runConformance({
    baseUrl,
    modelDir,
    maxBatch: 64,
    maxBodyBytes: 2 * 1024 * 1024,
    busyLoadMs: 500,
    ...extra,
  });
  return new Map(checks.map((c) => [c.name, c]));
}

function named(checks: Map<string, ConformanceCheck>, name: string): ConformanceCheck {
  const check = checks.get(name);
  ok(check, `no check named "${name}" in ${[...checks.keys()].join(", ")}`);
  return check;
}

Deno.test("runConformance() passes the test server's /metrics, startup stamps, os_threads and busy threads", async () => {
  const modelDir = writeTestServerModel();
  try {
    // CACHE=1 answers repeated bodies from its cache: the metrics check sends bodies never seen.
    for (
      const env of [{}, { CACHE: "1" }, { WORKERS: "1", SERVICE_MS: "2", BURN_MS: "1" }] as Record<
        string,
        string
      >[]
    ) {
      const server = await startTestServerProcess(env);
      try {
        const checks = await checksByName(server.baseUrl, modelDir);
        for (const name of [METRICS_FORMAT, METRICS_COUNT, STARTUP, OS_THREADS, BUSY]) {
          const check = named(checks, name);
          ok(check.ok, `${JSON.stringify(env)} ${name}: ${check.detail}`);
        }
        ok(named(checks, "rejects POST /metrics: 405 MethodNotAllowed").ok);
        const count = named(checks, METRICS_COUNT);
        equal(count.metrics?.requests, 3);
        equal(count.metrics?.inputs, 6);
        match(count.detail, /the malformed body \(status 422\) moved nothing/);
        match(named(checks, OS_THREADS).detail, /http/);
        match(named(checks, STARTUP).detail, /^warmup true; runtime_ready \+\d+ ms, model_loaded .* warmed/);
        ok(named(checks, BUSY).metrics!.requests! > 0);
      } finally {
        await server.stop();
      }
    }
  } finally {
    Deno.removeSync(modelDir, { recursive: true });
  }
});

Deno.test("startupProblems() wants warmup as started, the clock named, and every stamp in order", () => {
  const startup = {
    clock: "monotonic",
    process_start: 10,
    runtime_ready: 10.5,
    model_loaded: 12,
    warmed: 12.2,
    now: 20,
  };
  deepStrictEqual(startupProblems({ warmup: true, startup }, true), []);
  deepStrictEqual(startupProblems({ warmup: false, startup: { ...startup, warmed: null } }, false), []);
  deepStrictEqual(startupProblems({ warmup: true, startup: { ...startup, model_loaded: 10.4 } }, true), [
    "startup.model_loaded 10.4 is earlier than startup.runtime_ready 10.5",
  ]);
  deepStrictEqual(startupProblems({ warmup: true, startup: { ...startup, now: 12.1 } }, true), [
    "startup.now 12.1 is earlier than startup.warmed 12.2",
  ]);
  deepStrictEqual(startupProblems({ warmup: true, startup }, false), [
    "warmup is true: expected false (started with WARMUP=0)",
    "startup.warmed is 12.2: expected null with WARMUP=0",
  ]);
  const p = startupProblems({ startup: { ...startup, clock: "realtime", runtime_ready: null } }, true);
  deepStrictEqual(p.slice(0, 2), [
    "warmup is undefined: expected true",
    'startup.clock is "realtime": expected "monotonic"',
  ]);
  match(p[2]!, /^startup.runtime_ready is null: expected seconds/);
  equal(p.length, 3, "the stamps around a missing one are still compared: 10 <= 12");
  match(startupProblems({ warmup: true }, true)[0]!, /^startup is null: expected an object/);
});

Deno.test("parseOsThreads() takes a non-empty list of {tid, name, cpu_seconds} only", () => {
  deepStrictEqual(parseOsThreads([{ tid: 7, name: "python3", cpu_seconds: 1.5 }]), [
    { tid: 7, name: "python3", cpuSeconds: 1.5 },
  ]);
  match(parseOsThreads([]) as string, /os_threads is \[\]: expected a non-empty list/);
  match(parseOsThreads(undefined) as string, /os_threads is null/);
  match(parseOsThreads([{ tid: 7, name: "x", cpu_seconds: -1 }]) as string, /os_threads\[0\] is/);
  match(parseOsThreads([{ tid: 7, name: "x" }]) as string, /os_threads\[0\] is/);
  match(
    parseOsThreads([{ tid: 7, name: "a", cpu_seconds: 0 }, { tid: 7, name: "b", cpu_seconds: 0 }]) as string,
    /lists thread 7 twice/,
  );
});

/** What a fake server gets wrong on purpose; by default it serves the contract's new parts right. */
interface FakeFlaws {
  /** /metrics never moves. */
  frozen?: boolean;
  /** A 422 answer is counted like a 200 one. */
  countErrors?: boolean;
  /** Every phase counter is inflated this many times. */
  phaseFactor?: number;
  /** The request counter is this share of the handler's time (the phases stay right). */
  requestFactor?: number;
  contentType?: string;
  /** Samples left out of /metrics (exact keys). */
  omit?: string[];
  /** /info's startup, replacing the right one. */
  startup?: Record<string, unknown>;
  /** /info's os_threads from the seconds since the fake started (default: one idle thread). */
  osThreads?: (elapsedS: number) => unknown;
  cpus?: string;
}

/**
 * A Deno.serve fake of the contract's /info, /metrics and /embed (8-dimensional rows), with the
 * flaws asked for. Phases are the handler's real time, split into the contract's parts.
 */
function flawedServer(flaws: FakeFlaws = {}): Deno.HttpServer<Deno.NetAddr> {
  const born = performance.now();
  const clock = () => 5000 + performance.now() / 1000;
  const c = { requests: 0, inputs: 0, tokens: 0, seconds: 0, batches: 0, batchSum: 0 };
  const render = () => {
    const f = flaws.phaseFactor ?? 1;
    const split = { parse: 0.1, tokenize: 0.2, queue: 0.05, inference: 0.5, serialize: 0.1 };
    const samples: [string, number][] = [
      ["embbench_requests_total", c.requests],
      ["embbench_inputs_total", c.inputs],
      ["embbench_tokens_total", c.tokens],
      ["embbench_request_seconds_total", c.seconds * (flaws.requestFactor ?? 1)],
      ...Object.entries(split).map((
        [p, share],
      ) => [`embbench_${p}_seconds_total`, c.seconds * share * f]) as [
        string,
        number,
      ][],
      ...[1, 2, 4, 8, 16, 32, 64, 128, 256].map((le) =>
        [`embbench_batch_size_bucket{le="${le}"}`, le >= 3 ? c.batches : 0] as [string, number]
      ),
      ['embbench_batch_size_bucket{le="+Inf"}', c.batches],
      ["embbench_batch_size_sum", c.batchSum],
      ["embbench_batch_size_count", c.batches],
    ];
    return samples.filter(([k]) => !(flaws.omit ?? []).includes(k)).map(([k, v]) => `${k} ${v}`).join("\n") +
      "\n";
  };
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = await req.text().catch(() => "");
    const t0 = performance.now();
    const path = new URL(req.url).pathname;
    if (path === "/health") return Response.json({ status: "ok" });
    if (path === "/metrics") {
      if (req.method !== "GET") {
        return Response.json({ error: "GET only", error_type: "MethodNotAllowed" }, { status: 405 });
      }
      return new Response(render(), {
        headers: { "content-type": flaws.contentType ?? "text/plain; version=0.0.4" },
      });
    }
    if (path === "/info") {
      const start = 4990;
      return Response.json({
        warmup: true,
        cpus: flaws.cpus ?? "0",
        startup: flaws.startup ??
          {
            clock: "monotonic",
            process_start: start,
            runtime_ready: start + 1,
            model_loaded: start + 2,
            warmed: start + 3,
            now: clock(),
          },
        os_threads: (flaws.osThreads ?? (() => [{ tid: 1, name: "main", cpu_seconds: 0.01 }]))(
          (performance.now() - born) / 1000,
        ),
      });
    }
    let texts: string[];
    try {
      const inputs = JSON.parse(body).inputs;
      texts = typeof inputs === "string" ? [inputs] : inputs.map(String);
    } catch {
      if (flaws.countErrors) c.requests++;
      return Response.json({ error: "bad", error_type: "Validation" }, { status: 422 });
    }
    await new Promise((r) => setTimeout(r, 2));
    if (!flaws.frozen) {
      c.requests++;
      c.inputs += texts.length;
      c.tokens += texts.length * 5;
      c.batches++;
      c.batchSum += texts.length;
      c.seconds += (performance.now() - t0) / 1000;
    }
    return Response.json(texts.map((t) => fakeRow(t)));
  });
}

/** checkMetrics() against a flawed fake: the two checks by name. */
async function metricsChecks(flaws: FakeFlaws): Promise<Map<string, ConformanceCheck>> {
  const server = flawedServer(flaws);
  try {
    const checks = await checkMetrics(`http://127.0.0.1:${server.addr.port}`, SAMPLE_TEXTS, { maxBatch: 64 });
    return new Map(checks.map((c) => [c.name, c]));
  } finally {
    await server.shutdown();
  }
}

Deno.test("checkMetrics() passes a fake that counts as the contract says, and fails each flaw", async () => {
  const right = await metricsChecks({});
  ok(right.get(METRICS_FORMAT)!.ok, right.get(METRICS_FORMAT)!.detail);
  ok(right.get(METRICS_COUNT)!.ok, right.get(METRICS_COUNT)!.detail);

  const frozen = await metricsChecks({ frozen: true });
  ok(frozen.get(METRICS_FORMAT)!.ok);
  ok(!frozen.get(METRICS_COUNT)!.ok);
  match(frozen.get(METRICS_COUNT)!.detail, /embbench_requests_total moved by 0: expected 3/);
  match(frozen.get(METRICS_COUNT)!.detail, /embbench_batch_size_sum moved by 0: expected 6/);

  const errors = await metricsChecks({ countErrors: true });
  ok(!errors.get(METRICS_COUNT)!.ok);
  match(
    errors.get(METRICS_COUNT)!.detail,
    /^a malformed body \(answered status 422\) moved embbench_requests_total by 1: only 200 answers count$/,
  );

  const slow = await metricsChecks({ phaseFactor: 1000 });
  ok(!slow.get(METRICS_COUNT)!.ok);
  match(
    slow.get(METRICS_COUNT)!.detail,
    /the phase counters moved by .* s in all: expected more than 0 and at most/,
  );

  const inflated = await metricsChecks({ requestFactor: 0.5 });
  ok(!inflated.get(METRICS_COUNT)!.ok);
  match(
    inflated.get(METRICS_COUNT)!.detail,
    /more than embbench_request_seconds_total's .*: the phases are parts/,
  );

  const json = await metricsChecks({ contentType: "application/json", omit: ["embbench_tokens_total"] });
  ok(!json.get(METRICS_FORMAT)!.ok);
  match(
    json.get(METRICS_FORMAT)!.detail,
    /Content-Type "application\/json": expected "text\/plain; version=0.0.4"/,
  );
  match(json.get(METRICS_FORMAT)!.detail, /missing embbench_tokens_total/);

  const noInf = await metricsChecks({ omit: ['embbench_batch_size_bucket{le="+Inf"}'] });
  ok(!noInf.get(METRICS_FORMAT)!.ok);
  match(noInf.get(METRICS_FORMAT)!.detail, /embbench_batch_size_bucket lacks le="\+Inf"/);
});

Deno.test("checkMetrics() fails a server without /metrics", async () => {
  const modelDir = writeTestServerModel();
  const server = fakeServer((texts) => texts.map((t) => fakeRow(t)));
  try {
    const checks = await checksByName(`http://127.0.0.1:${server.addr.port}`, modelDir);
    ok(!named(checks, METRICS_FORMAT).ok);
    match(named(checks, METRICS_FORMAT).detail, /^GET \/metrics answered 422/);
    ok(!named(checks, METRICS_COUNT).ok);
    ok(!named(checks, STARTUP).ok);
    ok(!named(checks, OS_THREADS).ok);
    ok(!named(checks, BUSY).ok);
  } finally {
    await server.shutdown();
    Deno.removeSync(modelDir, { recursive: true });
  }
});

Deno.test("runConformance() fails start-up stamps out of order", async () => {
  const modelDir = writeTestServerModel();
  const server = flawedServer({
    startup: {
      clock: "monotonic",
      process_start: 100,
      runtime_ready: 99,
      model_loaded: 101,
      warmed: 102,
      now: 103,
    },
  });
  try {
    const checks = await checksByName(`http://127.0.0.1:${server.addr.port}`, modelDir);
    const check = named(checks, STARTUP);
    ok(!check.ok);
    equal(check.detail, "startup.runtime_ready 99 is earlier than startup.process_start 100");
  } finally {
    await server.shutdown();
    Deno.removeSync(modelDir, { recursive: true });
  }
});

/** Three threads that each use 90% of a CPU from the fake's start, one idle main thread. */
const threeSpinners = (elapsedS: number) => [
  { tid: 1, name: "main", cpu_seconds: 0.02 },
  ...[1, 2, 3].map((i) => ({ tid: 10 + i, name: `intra-op-${i}`, cpu_seconds: 0.9 * elapsedS })),
];

Deno.test("checkBusyThreads() fails more busy threads than the server's CPUs, naming them", async () => {
  const body = JSON.stringify({ inputs: ["a"] });
  for (const [cpus, wantOk] of [["0-1", false], ["0,1,5", true]] as const) {
    const server = flawedServer({ osThreads: threeSpinners, cpus });
    try {
      const check = await checkBusyThreads(`http://127.0.0.1:${server.addr.port}`, [body], {
        durationMs: 400,
      });
      equal(check.ok, wantOk, check.detail);
      match(check.detail, /^3 busy \(CPU >= 50% of the wall time\): intra-op-1 \(tid 11\) 90%, intra-op-2 /);
      equal(check.metrics?.busyThreads, 3);
      equal(check.metrics?.activeThreads, 3, "the idle main thread is not active");
      equal(check.metrics?.cpus, cpus === "0-1" ? 2 : 3);
      ok(check.metrics!.requests! > 0);
      if (!wantOk) match(check.detail, /more busy threads than the 2 CPUs \(cpus 0-1\) they run on/);
    } finally {
      await server.shutdown();
    }
  }
});

Deno.test("checkBusyThreads() fails a server whose load answers errors, or that reports no threads", async () => {
  const server = flawedServer({ osThreads: () => [] });
  try {
    const noThreads = await checkBusyThreads(`http://127.0.0.1:${server.addr.port}`, ['{"inputs": "a"}'], {
      durationMs: 100,
    });
    ok(!noThreads.ok);
    match(noThreads.detail, /os_threads is \[\]/);
  } finally {
    await server.shutdown();
  }
  const idle = flawedServer({});
  try {
    const rejected = await checkBusyThreads(`http://127.0.0.1:${idle.addr.port}`, ["not json"], {
      durationMs: 100,
    });
    ok(!rejected.ok);
    match(rejected.detail, /^a POST \/embed under load answered 422/);
  } finally {
    await idle.shutdown();
  }
});

Deno.test("checkBusyThreads() measures the test server's spinning threads (BUSY_THREADS=2) as its most active", async () => {
  const server = await startTestServerProcess({ BUSY_THREADS: "2", SERVICE_MS: "5" });
  try {
    const check = await checkBusyThreads(server.baseUrl, ['{"inputs": ["a b c"]}'], { durationMs: 1500 });
    // Two spinners on this machine's CPUs never outnumber them, whatever else runs: a pass.
    ok(check.ok, check.detail);
    // The spinners lead the list, busy or (on a crowded machine) just the most active; then the rest.
    const names = [...check.detail.matchAll(/([\w-]+) \(tid \d+\) (\d+)%/g)].map((m) => m[1]);
    // On a crowded machine only one spinner may cross the line: the named ones must be spinners.
    ok(names.length >= 1, check.detail);
    ok(names.slice(0, 2).every((n) => n === "busy-0" || n === "busy-1"), check.detail);
  } finally {
    await server.stop();
  }
});

Deno.test("checkNoWarmup() passes the test server with WARMUP=0 and fails it with the warm-up", async () => {
  const body = '{"inputs": ["first"]}';
  const cold = await startTestServerProcess({ WARMUP: "0" });
  try {
    const check = await checkNoWarmup(cold.baseUrl, body);
    ok(check.ok, check.detail);
    match(check.detail, /^warmup false, warmed null; the first request answered 200 in \d+ ms$/);
  } finally {
    await cold.stop();
  }
  const warm = await startTestServerProcess({});
  try {
    const check = await checkNoWarmup(warm.baseUrl, body);
    ok(!check.ok);
    match(
      check.detail,
      /^warmup is true: expected false .*; startup.warmed is [\d.]+: expected null with WARMUP=0$/,
    );
  } finally {
    await warm.stop();
  }
});

// ---- The test server's ground truth: what the harness's own measurements are checked against ----

/** GET /info or /metrics of a test server. */
async function getJson(baseUrl: string, path: string): Promise<Record<string, unknown>> {
  return await (await fetch(`${baseUrl}${path}`)).json();
}

async function getMetrics(baseUrl: string): Promise<MetricsReading> {
  return parsePrometheus(await (await fetch(`${baseUrl}/metrics`)).text());
}

async function post(baseUrl: string, inputs: string[]): Promise<number> {
  const r = await fetch(`${baseUrl}/embed`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ inputs }),
  });
  await r.text(); // read to the end, so the connection (and its handler thread) stays
  return r.status;
}

Deno.test("test server: IMPORT_MS, LOAD_DELAY_MS and WARMUP_MS set the gaps between its startup stamps", async () => {
  const server = await startTestServerProcess({ IMPORT_MS: "400", LOAD_DELAY_MS: "300", WARMUP_MS: "250" });
  try {
    const s = (await getJson(server.baseUrl, "/info")).startup as Record<string, number>;
    const gap = (a: string, b: string) => (s[b]! - s[a]!) * 1000;
    // Each gap is its knob plus a little: interpreter start-up, a thread start. Generous for a busy machine.
    const runtime = gap("process_start", "runtime_ready");
    ok(runtime >= 400 - 10 && runtime < 400 + 5000, `runtime ${runtime} ms`); // process_start is ticks, 10 ms
    const model = gap("runtime_ready", "model_loaded");
    ok(model >= 300 && model < 300 + 2000, `model load ${model} ms`);
    const warmup = gap("model_loaded", "warmed");
    ok(warmup >= 250 && warmup < 250 + 2000, `warm-up ${warmup} ms`);
    ok(gap("warmed", "now") >= 0);
  } finally {
    await server.stop();
  }
});

Deno.test("test server: /metrics phases are its queue (WORKERS=1) and service time (SERVICE_MS, BURN_MS)", async () => {
  const server = await startTestServerProcess({ WORKERS: "1", SERVICE_MS: "60", BURN_MS: "20" });
  try {
    const before = await getMetrics(server.baseUrl);
    const cpuBefore = processCpuSeconds(server.pid);
    // Three at once through one worker: the second waits one service time, the third two.
    deepStrictEqual(
      await Promise.all([["a"], ["b", "c"], ["d", "e", "f"]].map((i) => post(server.baseUrl, i))),
      [
        200,
        200,
        200,
      ],
    );
    equal(await post(server.baseUrl, []), 422);
    const d = metricsDelta(before, await getMetrics(server.baseUrl));
    equal(d["embbench_requests_total"], 3);
    equal(d["embbench_inputs_total"], 6);
    equal(d["embbench_tokens_total"], 6 * 3, "one word and two special tokens per input");
    equal(d["embbench_batch_size_count"], 3);
    equal(d["embbench_batch_size_sum"], 6);
    equal(d['embbench_batch_size_bucket{le="1"}'], 1);
    equal(d['embbench_batch_size_bucket{le="2"}'], 2);
    equal(d['embbench_batch_size_bucket{le="4"}'], 3);
    const inference = d["embbench_inference_seconds_total"]!;
    ok(inference >= 3 * 0.06 && inference < 3 * 0.06 + 3, `inference ${inference} s`);
    const queue = d["embbench_queue_seconds_total"]!;
    // Ideally 0 + 1 + 2 service times; the three connect a few ms apart, so less, but surely one.
    ok(queue >= 0.06 && queue < 3 * 0.06 + 3, `queue ${queue} s`);
    const phases = PHASES.reduce((sum, p) => sum + d[`embbench_${p}_seconds_total`]!, 0);
    const request = d["embbench_request_seconds_total"]!;
    ok(phases <= request + 1e-6 && request - phases < 0.05, `phases ${phases} s of request ${request} s`);
    // BURN_MS is CPU time of the handler threads: 3 × 20 ms at least, at 10 ms tick resolution.
    const cpu = processCpuSeconds(server.pid) - cpuBefore;
    ok(cpu >= 0.06 - 0.02, `${cpu} s of CPU`);
  } finally {
    await server.stop();
  }
});

/** A process's CPU time (utime + stime, its ended threads included), seconds at 100 ticks a second. */
function processCpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[14 - 3]) + Number(fields[15 - 3])) / 100;
}

/** Pss_Anon, Pss_File + Pss_Shmem, VmHWM and VmRSS of a process, MiB. */
function memoryMiB(pid: number): { anon: number; file: number; hwm: number; rss: number } {
  const kb = (text: string, key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)![1]) / 1024;
  const rollup = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return {
    anon: kb(rollup, "Pss_Anon"),
    file: kb(rollup, "Pss_File") + kb(rollup, "Pss_Shmem"),
    hwm: kb(status, "VmHWM"),
    rss: kb(status, "VmRSS"),
  };
}

Deno.test("test server: ANON_MB, FILE_MB and LOAD_PEAK_MB hold the memory they say", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "embbench-testserver-" });
  const file = new Uint8Array(40 * 1024 * 1024);
  crypto.getRandomValues(file.subarray(0, 65536));
  Deno.writeFileSync(`${dir}/weights.bin`, file);
  const baseline = await startTestServerProcess({});
  const loaded = await startTestServerProcess({
    MODEL_DIR: dir,
    FILE_PATH: "weights.bin",
    FILE_MB: "32",
    ANON_MB: "48",
    LOAD_PEAK_MB: "64",
  });
  try {
    const b = memoryMiB(baseline.pid);
    const m = memoryMiB(loaded.pid);
    const near = (got: number, want: number, what: string) =>
      ok(Math.abs(got - want) <= 6, `${what}: ${got.toFixed(1)} MiB, expected ${want} ± 6`);
    near(m.anon - b.anon, 48, "Pss_Anon above the baseline");
    near(m.file - b.file, 32, "Pss_File above the baseline");
    near(m.hwm - b.hwm, 32 + 48 + 64, "the load's peak RSS above the baseline's");
    near(m.hwm - m.rss, 64, "LOAD_PEAK_MB given back after the load");
  } finally {
    await Promise.all([baseline.stop(), loaded.stop()]);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("test server: a malformed knob stops it with a message naming the knob", async () => {
  const run = async (env: Record<string, string>) => {
    const out = await new Deno.Command("python3", {
      args: [`${repo}docker/testserver/server.py`],
      env: { HOST: "127.0.0.1", PORT: String(freePort()), ...env },
      stdout: "null",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  };
  for (
    const [env, message] of [
      [{ WARMUP: "yes" }, /WARMUP must be 0 or 1, found 'yes'/],
      [{ BURN_MS: "-1" }, /BURN_MS must be a number of at least 0/],
      [{ FILE_MB: "1" }, /FILE_MB is set but FILE_PATH is not/],
      [{ FILE_MB: "1", FILE_PATH: "/no/such/file" }, /FILE_PATH \/no\/such\/file: No such file/],
    ] as [Record<string, string>, RegExp][]
  ) {
    const { code, stderr } = await run(env);
    equal(code, 1, JSON.stringify(env));
    match(stderr, message);
  }
});

/** docker/python's server with its ONNX Runtime backend (from .venv-server) serving `modelDir`. */
function startPythonServer(modelDir: string, maxBatch: number): {
  baseUrl: string;
  stop(): Promise<Deno.CommandOutput>;
} {
  const port = freePort();
  const child = new Deno.Command(venvPython, {
    args: ["-m", "embbench_server", "--backend", "onnxruntime"],
    cwd: `${repo}docker/python`,
    env: {
      MODEL_DIR: modelDir,
      HOST: "127.0.0.1",
      PORT: String(port),
      NUM_THREADS: "1",
      MAX_BATCH: String(maxBatch),
      MAX_INFLIGHT: "2",
      LOAD_DELAY_MS: "300",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    stop() {
      child.kill("SIGTERM");
      return child.output();
    },
  };
}

/**
 * The real proof: docker/python's server (ONNX Runtime backend, from .venv-server) with each
 * converted model passes the whole suite. EMBBENCH_TEST_MODEL_DIRS (comma-separated) adds folders.
 */
const modelDirs = [
  `${repo}models/tiny-xlmr`,
  `${repo}models/minilm`,
  `${repo}models/tiny-qwen3`,
  `${repo}models/tiny-gemma3`,
  ...(Deno.env.get("EMBBENCH_TEST_MODEL_DIRS") ?? "").split(",").filter((d) => d !== ""),
];

for (const modelDir of modelDirs) {
  const missing = !exists(venvPython)
    ? `${venvPython} is missing: run docker/python/install.sh`
    : !exists(`${modelDir}/onnx/model.onnx`) || !exists(`${modelDir}/reference/embeddings.json`)
    ? `${modelDir} is not converted: run \`embbench convert\``
    : "";
  const model = modelDir.split("/").filter((p) => p !== "").pop();
  Deno.test({
    name: `runConformance() passes docker/python's onnxruntime server with ${model}` +
      (missing ? ` (ignored: ${missing})` : ""),
    ignore: missing !== "",
    async fn() {
      const maxBatch = 16;
      const server = startPythonServer(modelDir, maxBatch);
      let checks: ConformanceCheck[] = [];
      let error: unknown;
      try {
        checks = [
          await observeHealthStartup(server.baseUrl, 60_000),
          ...await runConformance({
            baseUrl: server.baseUrl,
            modelDir,
            maxBatch,
            maxBodyBytes: 2 * 1024 * 1024,
            threads: 1,
            maxInflight: 2,
          }),
        ];
      } catch (e) {
        error = e;
      }
      const out = await server.stop();
      if (error) throw error;
      deepStrictEqual(failures(checks), [], `server log:\n${new TextDecoder().decode(out.stderr)}`);
      // SIGTERM shuts down cleanly; uvicorn then re-raises the signal, so either outcome is clean.
      ok(out.code === 0 || out.signal === "SIGTERM", `exit ${out.code} ${out.signal}`);
      ok(checks.filter((c) => c.name.startsWith("rejects ")).length >= 12);
      if (Deno.env.get("EMBBENCH_TEST_VERBOSE")) {
        for (const c of checks) console.log(`${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
      }
    },
  });
}

/** The converted tiny twins: models/ (or EMBBENCH_TEST_TWINS_DIR, a folder holding tiny-gemma3/ and tiny-qwen3/). */
const twinsDir = Deno.env.get("EMBBENCH_TEST_TWINS_DIR") ?? `${repo}models`;
/** Convert's Python (onnx), to break a graph. */
const convertPython = `${repo}.venv/bin/python`;

/** Removes embbench_model.json's dense layers from onnx/model.onnx: the pooled rows go straight to the norm. */
const BYPASS_DENSE = `
import json, sys, onnx
d = sys.argv[1]
spec = json.load(open(f"{d}/embbench_model.json"))
m = onnx.load(f"{d}/onnx/model.onnx")
shapes = {i.name: list(i.dims) for i in m.graph.initializer}
layers = []
for layer in spec["dense"]:
    node = next(n for n in m.graph.node if n.op_type == "MatMul" and shapes.get(n.input[1]) == [layer["in"], layer["out"]])
    layers.append(node)
first_input, last_output = layers[0].input[0], layers[-1].output[0]
for n in m.graph.node:
    for i, x in enumerate(n.input):
        if x == last_output:
            n.input[i] = first_input
for n in layers:
    m.graph.node.remove(n)
onnx.save(m, f"{d}/onnx/model.onnx")
spec.pop("ort_graph", None)
json.dump(spec, open(f"{d}/embbench_model.json", "w"))
`;

/** Takes Qwen3's <|endoftext|> out of tokenizer.json's post-processor (its byte-level step stays). */
function dropEndOfText(dir: string): void {
  const path = `${dir}/pytorch/tokenizer.json`;
  const tokenizer = JSON.parse(Deno.readTextFileSync(path));
  const post = tokenizer.post_processor;
  tokenizer.post_processor = post?.type === "Sequence"
    ? {
      ...post,
      processors: post.processors.filter((p: { type: string }) => p.type !== "TemplateProcessing"),
    }
    : null;
  Deno.writeTextFileSync(path, JSON.stringify(tokenizer));
}

/** Empties every prompt of embbench_model.json: the server accepts prompt_name but prepends nothing. */
function emptyPrompts(dir: string): void {
  const path = `${dir}/embbench_model.json`;
  const spec = JSON.parse(Deno.readTextFileSync(path));
  spec.prompts = Object.fromEntries(Object.keys(spec.prompts).map((name) => [name, ""]));
  Deno.writeTextFileSync(path, JSON.stringify(spec));
}

/** Runs BYPASS_DENSE on a model folder with convert's Python. */
async function bypassDense(dir: string): Promise<void> {
  const out = await new Deno.Command(convertPython, { args: ["-c", BYPASS_DENSE, dir], stderr: "piped" })
    .output();
  ok(out.success, new TextDecoder().decode(out.stderr));
}

/**
 * A deliberately broken twin: its folder copied and broken, served as is, must fail `check` (default:
 * the reference texts) with the mistake named.
 */
interface BrokenTwin {
  model: string;
  how: string;
  check?: string;
  mistake: RegExp;
  needs?: string;
  breakIt(dir: string): Promise<void> | void;
}

const brokenTwins: BrokenTwin[] = [
  {
    model: "tiny-gemma3",
    how: "its graph without the Dense layers",
    mistake: /^rows match 'dense layers skipped'/,
    needs: convertPython,
    breakIt: bypassDense,
  },
  {
    model: "tiny-gemma3",
    how: "its prompts emptied",
    check: referenceCaseCheckName({ promptName: "query", dimensions: null }),
    mistake: /rows match 'prompt 'query' not applied'/,
    breakIt: emptyPrompts,
  },
  {
    model: "tiny-qwen3",
    how: "its tokenizer without <|endoftext|>",
    mistake: /^rows match '<\|endoftext\|> not appended'/,
    breakIt: dropEndOfText,
  },
];

for (const twin of brokenTwins) {
  const source = `${twinsDir}/${twin.model}`;
  let hasMistakes = false;
  try {
    hasMistakes = "mistakes" in JSON.parse(Deno.readTextFileSync(`${source}/reference/embeddings.json`));
  } catch { /* not converted */ }
  const missing = !exists(venvPython)
    ? `${venvPython} is missing: run docker/python/install.sh`
    : twin.needs && !exists(twin.needs)
    ? `${twin.needs} is missing`
    : !hasMistakes
    ? `${source} is not converted with reference mistakes: run \`embbench convert ${twin.model}\``
    : "";
  Deno.test({
    name:
      `runConformance() fails docker/python's onnxruntime server with ${twin.model}, ${twin.how}, naming ` +
      `the mistake${missing ? ` (ignored: ${missing})` : ""}`,
    ignore: missing !== "",
    async fn() {
      const dir = Deno.makeTempDirSync({ prefix: `embbench-broken-${twin.model}-` });
      try {
        await new Deno.Command("cp", { args: ["-r", `${source}/.`, dir] }).output();
        await twin.breakIt(dir);
        const server = startPythonServer(dir, 16);
        let checks: ConformanceCheck[];
        try {
          ok(
            (await observeHealthStartup(server.baseUrl, 60_000)).ok,
            "the broken twin's server did not start",
          );
          checks = await runConformance({
            baseUrl: server.baseUrl,
            modelDir: dir,
            maxBatch: 16,
            maxBodyBytes: 2 * 1024 * 1024,
            busyLoadMs: 200,
          });
        } finally {
          await server.stop();
        }
        const check = checks.find((c) => c.name === (twin.check ?? "embeddings match the reference"))!;
        ok(!check.ok, check.detail);
        match(check.detail, twin.mistake);
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}

Deno.test("checkBatchedRows() passes a batching server and fails one that does not batch", async () => {
  const facts = { sampleTexts: ["one two", "three four", "five six"], texts: ["a b c", "d e f g", "h"] };
  const batched = await startTestServerProcess({ SERVING: "batched", SERVICE_MS: "30" });
  try {
    const c = await checkBatchedRows(batched.baseUrl, facts, 10_000);
    ok(c.ok, c.detail);
    ok(c.metrics!.inferences! < c.metrics!.requests!, `inferences ${c.metrics!.inferences} < requests`);
    equal(c.metrics!.worstAbsDiff, 0, "the test server's rows do not depend on their batch");
  } finally {
    await batched.stop();
  }
  const sequential = await startTestServerProcess({ SERVICE_MS: "5", WORKERS: "1" });
  try {
    const c = await checkBatchedRows(sequential.baseUrl, facts, 10_000);
    ok(!c.ok);
    match(c.detail, /expected mode "batched"/);
  } finally {
    await sequential.stop();
  }
});

Deno.test("ortGraphCheck() holds an ONNX Runtime frontend to convert's fused graph", () => {
  const fused = { ortGraph: "onnx/model_fused.onnx", fusedOps: { Attention: 6, SkipLayerNormalization: 12 } };
  const info = (file: unknown) => ({ build: { model_file: file } });
  deepStrictEqual(ortGraphCheck(info("onnx/model_fused.onnx"), fused), {
    detail: "loads onnx/model_fused.onnx; fused ops Attention 6, SkipLayerNormalization 12",
  });
  deepStrictEqual(ortGraphCheck(info("onnx/model.onnx"), fused), {
    problem:
      'build.model_file is "onnx/model.onnx": expected "onnx/model_fused.onnx" (embbench_model.json\'s ort_graph)',
  });
  deepStrictEqual(ortGraphCheck({}, fused), {
    problem:
      'build.model_file is undefined: expected "onnx/model_fused.onnx" (embbench_model.json\'s ort_graph)',
  });
  // A graph the optimizer left without fused attention is not the fused graph the contract promises.
  deepStrictEqual(
    ortGraphCheck(info("onnx/model_fused.onnx"), { ...fused, fusedOps: { SkipLayerNormalization: 12 } }),
    {
      problem:
        "onnx/model_fused.onnx has no Attention node (manifest.json ort_graph.fused_ops: SkipLayerNormalization 12)",
    },
  );
  // No fused graph (a decoder): the plain graph, and convert's reason.
  const plain = { fusedOps: {}, reason: "encoders only" };
  deepStrictEqual(ortGraphCheck(info("onnx/model.onnx"), plain), {
    detail: "no fused graph (encoders only): loads onnx/model.onnx",
  });
  ok("problem" in ortGraphCheck(info("onnx/model_fused.onnx"), plain));
  deepStrictEqual(ortGraphCheck(info("x"), "cannot read"), { problem: "cannot read" });
});
