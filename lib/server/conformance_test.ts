import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
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
