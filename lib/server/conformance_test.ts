import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  changeLastWord,
  checkKeepAlive,
  compareEmbeddings,
  type ConformanceCheck,
  MAX_ABS_DIFF,
  observeHealthStartup,
  runConformance,
} from "./conformance.ts";
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
): Promise<{ baseUrl: string; stop(): Promise<void> }> {
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
  for (let i = 0; i < 250; i++) {
    try {
      const r = await fetch(`${baseUrl}/health`);
      await r.body?.cancel();
      if (r.status === 200) return { baseUrl, stop };
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 20));
  }
  await stop();
  throw new Error(`docker/testserver/server.py did not answer /health on port ${port} within 5 s`);
}

/** Runs the whole suite and returns the named check. */
async function checkNamed(baseUrl: string, modelDir: string, name: string): Promise<ConformanceCheck> {
  const checks = await runConformance({ baseUrl, modelDir, maxBatch: 64, maxBodyBytes: 2 * 1024 * 1024 });
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

/**
 * The real proof: docker/python's server (ONNX Runtime backend, from .venv-server) with each
 * converted model passes the whole suite. EMBBENCH_TEST_MODEL_DIRS (comma-separated) adds folders.
 */
const modelDirs = [
  `${repo}models/tiny-xlmr`,
  `${repo}models/minilm`,
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
      const port = freePort();
      const maxBatch = 16;
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
      let checks: ConformanceCheck[] = [];
      try {
        const baseUrl = `http://127.0.0.1:${port}`;
        checks = [
          await observeHealthStartup(baseUrl, 60_000),
          ...await runConformance({
            baseUrl,
            modelDir,
            maxBatch,
            maxBodyBytes: 2 * 1024 * 1024,
            threads: 1,
            maxInflight: 2,
          }),
        ];
      } finally {
        child.kill("SIGTERM");
      }
      const out = await child.output();
      const failed = failures(checks);
      deepStrictEqual(failed, [], `server log:\n${new TextDecoder().decode(out.stderr)}`);
      ok(checks.filter((c) => c.name.startsWith("rejects ")).length >= 12);
      // SIGTERM shuts down cleanly; uvicorn then re-raises the signal, so either outcome is clean.
      ok(out.code === 0 || out.signal === "SIGTERM", `exit ${out.code} ${out.signal}`);
      if (Deno.env.get("EMBBENCH_TEST_VERBOSE")) {
        for (const c of checks) console.log(`${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
      }
    },
  });
}
