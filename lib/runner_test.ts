/**
 * End-to-end tests of the run lifecycle against the real Docker engine, with the contract-shaped
 * test server image (docker/testserver) standing in for a framework.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseYaml, validateSources } from "./config/config.ts";
import { DockerEngine } from "./engine/docker.ts";
import { captureEnvironment } from "./env.ts";
import { readCellRequests } from "./load/requests.ts";
import { readCells, readPassRecords, readRun } from "./results/results.ts";
import { runBenchmark } from "./runner.ts";
import { RUN_LABEL } from "./server/server.ts";
import { dockerAvailable, ensureTestImage, REQUIRE_DOCKER, TEST_IMAGE } from "./testing.ts";

const MODELS = `models:
  fake:
    name: "Hash fixture"
    type: text_embedding
    architecture: bert
    source: embedded
    max_seq_length: 512
    embedding_dim: 8
    multilingual: false
    attention: bidirectional
    pooling: mean
    normalize: true
    dense: []
    prompts: {}
    dimensions: [8]
`;

function configYaml(requests: number, levels: number[]): string {
  return `active_models: [fake]
frameworks: [torch]
scenarios:
  - name: single_query
    concurrency: 1
    num_requests: ${requests}
    batch_size: 1
  - name: batch_processing
    concurrency: 2
    num_requests: ${requests}
    batch_size: 4
concurrency_sweep:
  levels: [${levels.join(", ")}]
  num_requests: ${requests}
  batch_size: 1
input:
  sequence_lengths: [32, 128]
  warmup_requests: 3
cpus:
  server: "0"
  loadgen: "1"
container:
  memory_limit: "512m"
  max_batch: 64
  max_inflight: 1
  health_timeout_s: 60
measurement:
  window_s: 1
  steady_windows: 2
  steady_tolerance: 0.5
  max_s: 2
  passes: 2
  timeout_s: 30
  cold_starts: 0
  gemm_seconds: 0
`;
}

async function fixture(requests: number, levels: number[]) {
  const dir = await Deno.makeTempDir({ prefix: "embbench-run-test-" });
  const modelsDir = join(dir, "models");
  await Deno.mkdir(join(modelsDir, "fake", "payloads"), { recursive: true });
  for (const seq of [32, 128]) {
    for (const b of [1, 4]) {
      const body = (k: number) =>
        JSON.stringify({
          inputs: Array.from({ length: b }, (_, row) =>
            Array.from({ length: seq - 2 }, (_, i) => `w${k}x${row}x${i}`).join(" ")),
        });
      await Deno.writeTextFile(join(modelsDir, "fake", "payloads", `seq${seq}_b${b}.json`), body(0));
      await Deno.writeTextFile(
        join(modelsDir, "fake", "payloads", `seq${seq}_b${b}.jsonl`),
        Array.from({ length: 8 }, (_, k) => body(k)).join("\n") + "\n",
      );
    }
  }
  await Deno.writeTextFile(join(dir, "models.yaml"), MODELS);
  await Deno.writeTextFile(join(dir, "config.yaml"), configYaml(requests, levels));
  return { dir, modelsDir };
}

/** The CLI's arguments for `run` on a fixture, the test server standing in for torch. */
function runArgs(dir: string, modelsDir: string, ...extra: string[]): string[] {
  const main = fileURLToPath(new URL("../main.ts", import.meta.url));
  return [
    "run",
    "--allow-all",
    "--quiet",
    main,
    "--models",
    join(dir, "models.yaml"),
    "--config",
    join(dir, "config.yaml"),
    "--results",
    join(dir, "results"),
    "run",
    "--image",
    `torch=${TEST_IMAGE}`,
    "--models-dir",
    modelsDir,
    ...extra,
  ];
}

const needsDocker = !REQUIRE_DOCKER && !(await dockerAvailable());

Deno.test({
  name: "runBenchmark() runs every cell's lifecycle with stats and leaves no container",
  ignore: needsDocker,
  async fn() {
    await ensureTestImage();
    const { dir, modelsDir } = await fixture(60, [1, 2]);
    const loaded = validateSources(
      parseYaml("models.yaml", MODELS),
      parseYaml("config.yaml", configYaml(60, [1, 2])),
    );
    const real = new DockerEngine();
    const engine = Object.assign(Object.create(real), {
      started: 0,
      start(spec: Parameters<DockerEngine["start"]>[0]) {
        this.started++;
        return real.start(spec);
      },
    }) as DockerEngine & { started: number };
    const runDir = join(dir, "results", "r1");
    const summary = await runBenchmark({
      engine,
      config: loaded.config,
      models: loaded.models,
      runDir,
      runId: "test-lifecycle",
      quick: false,
      frameworks: ["torch"],
      images: { torch: TEST_IMAGE },
      modelsDir,
      cpus: { server: "0", loadgen: "1" },
      environment: await captureEnvironment(),
      signal: new AbortController().signal,
    });
    equal(summary.failed, 0);
    equal(summary.ok, 8, "2 sequence lengths × (2 scenarios + 2 sweep levels)");
    const cells = await readCells(runDir);
    equal(cells.size, 8);
    const c = cells.get("fake__torch__batch_processing__seq128")!;
    equal(c.status, "ok");
    equal(c.batchSize, 4);
    equal(c.counts!.passes, 2, "two passes, each in its own container");
    equal(c.passes!.length, 2);
    ok(c.counts!.windows >= 4, "at least steady_windows windows per pass");
    ok(c.counts!.successful >= 60, `${c.counts!.successful} measured requests, num_requests 60 at least`);
    equal(c.latencyMs!.n, c.counts!.successful);
    ok(c.textsPerSecond! > 0 && Math.abs(c.textsPerSecond! - c.throughputRps! * 4) < 1e-9);
    ok(c.loadTimeMs! > 0 && c.startup!.runtimeMs! >= 0 && c.startup!.modelLoadMs! >= 0);
    ok(c.resources!.cpu!.secondsPerRequest > 0 && c.resources!.cpu!.utilizationPercent <= 100);
    ok(c.resources!.memory!.pssBytes! > 0, "steady memory read from smaps_rollup");
    ok(c.resources!.phases!.requests > 0, "phase counters read from /metrics");
    equal(c.connections!.keepAliveDropped, false);
    ok(c.loadgen!.busyMax! >= 0);
    const logged = await readCellRequests(join(runDir, "logs"), c.id);
    equal(logged.filter((r) => r.measured && r.status === 200).length, c.counts!.successful);
    equal(engine.started, 2, "one container per pass");
    ok(cells.has("fake__torch__sweep__seq32__c2"));
    const run = await readRun(runDir);
    ok(run.endedAt, "a completed run has an end time");
    equal(run.frameworks.torch?.info?.framework, "testserver");
    ok(run.environment.cpu.logicalCpus >= 1);
    deepStrictEqual(await engine.findByLabel(RUN_LABEL, "test-lifecycle"), []);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "a run killed mid-way is completed by --resume: no cell lost or duplicated, no container left",
  ignore: needsDocker,
  async fn() {
    await ensureTestImage();
    const { dir, modelsDir } = await fixture(1500, [1, 2, 4]);
    const results = join(dir, "results");
    const args = runArgs(dir, modelsDir, "--skip-verify");
    const child = new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "piped" }).spawn();
    // Kill it hard once some passes are complete: no chance to clean up.
    let runDir = "";
    let before = new Map<string, string>();
    for (let i = 0; i < 900; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        for (const e of Deno.readDirSync(results)) {
          if (e.isDirectory && e.name !== "logs") runDir = join(results, e.name);
        }
      } catch { /* results folder not made yet */ }
      if (!runDir) continue;
      const passes = [...(await readPassRecords(runDir)).values()].flatMap((m) => [...m.values()]);
      if (passes.length >= 3) {
        child.kill("SIGKILL");
        before = new Map(passes.map((p) => [`${p.cellId}.p${p.pass}`, p.endedAt]));
        break;
      }
    }
    await child.status;
    await child.stderr.cancel();
    ok(runDir, "the run started");
    ok(before.size >= 3 && before.size < 20, `killed mid-run after ${before.size} passes`);
    const runId = (await readRun(runDir)).runId;
    const resumed = await new Deno.Command(Deno.execPath(), {
      args: [...args, "--resume", runDir],
      stdout: "null",
      stderr: "piped",
    }).output();
    equal(resumed.code, 0, new TextDecoder().decode(resumed.stderr));
    const after = await readCells(runDir);
    equal(after.size, 10, "2 sequence lengths × (2 scenarios + 3 sweep levels)");
    const passesAfter = await readPassRecords(runDir);
    for (const [key, endedAt] of before) {
      const [id, pass] = key.split(".p") as [string, string];
      equal(passesAfter.get(id)?.get(Number(pass))?.endedAt, endedAt, `${key} kept as it was`);
    }
    for (const c of after.values()) equal(c.counts?.passes, 2, `${c.id} pools both passes`);
    const files = [...Deno.readDirSync(join(runDir, "cells"))].map((e) => e.name);
    equal(files.length, 10, `one file per cell, no temporary files: ${files}`);
    ok([...after.values()].every((c) => c.status === "ok"));
    ok((await readRun(runDir)).endedAt);
    deepStrictEqual(await new DockerEngine().findByLabel(RUN_LABEL, runId), []);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "SIGTERM stops a run, removes its containers and keeps every finished cell",
  ignore: needsDocker,
  async fn() {
    await ensureTestImage();
    const { dir, modelsDir } = await fixture(1500, [1, 2, 4]);
    const results = join(dir, "results");
    const child = new Deno.Command(Deno.execPath(), {
      args: runArgs(dir, modelsDir, "--skip-verify"),
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let runDir = "";
    for (let i = 0; i < 900 && !runDir; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        for (const e of Deno.readDirSync(results)) {
          if (e.isDirectory && (await readPassRecords(join(results, e.name))).size >= 2) {
            runDir = join(results, e.name);
          }
        }
      } catch { /* not made yet */ }
    }
    ok(runDir, "the run got going");
    child.kill("SIGTERM");
    const status = await child.status;
    const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
    equal(status.code, 1, stderr);
    ok(stderr.includes("resume with"), stderr);
    const run = await readRun(runDir);
    ok(run.interrupted, "run.json says it was interrupted");
    equal(run.endedAt, undefined);
    deepStrictEqual(await new DockerEngine().findByLabel(RUN_LABEL, run.runId), []);
    const cells = await readCells(runDir);
    ok(cells.size < 10, `${cells.size} cells complete`);
    ok([...cells.values()].every((c) => c.status === "ok"), "no cell recorded as failed because of the stop");
    const passes = [...(await readPassRecords(runDir)).values()].flatMap((m) => [...m.values()]);
    ok(passes.length >= 2, `${passes.length} passes kept`);
    ok(passes.every((p) => p.status === "ok"), "no pass recorded as failed because of the stop");
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "run refuses a framework that fails verify and records why in its cells",
  ignore: needsDocker,
  async fn() {
    await ensureTestImage();
    const { dir, modelsDir } = await fixture(20, [1]);
    // A converted-model folder the test server cannot match: its hash "embeddings" are not the reference.
    const model = join(modelsDir, "fake");
    await Deno.writeTextFile(
      join(model, "embbench_model.json"),
      JSON.stringify({
        name: "fake",
        architecture: "bert",
        pooling: "mean",
        normalize: true,
        max_seq_length: 512,
        embedding_dim: 8,
      }),
    );
    await Deno.writeTextFile(join(model, "manifest.json"), "{}");
    await Deno.mkdir(join(model, "reference"));
    await Deno.writeTextFile(
      join(model, "reference", "embeddings.json"),
      JSON.stringify({
        model: "fake",
        texts: ["a"],
        embeddings: [[1, 0, 0, 0, 0, 0, 0, 0]],
        token_counts: [3],
      }),
    );
    const results = join(dir, "results");
    const out = await new Deno.Command(Deno.execPath(), {
      args: runArgs(dir, modelsDir),
      stdout: "null",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    equal(out.code, 1, stderr);
    const runDir = [...Deno.readDirSync(results)].find((e) =>
      e.isDirectory && !["logs", "verify"].includes(e.name)
    )!;
    const cells = [...(await readCells(join(results, runDir.name))).values()];
    equal(cells.length, 6);
    for (const c of cells) {
      equal(c.status, "failed");
      ok(c.failure?.startsWith("pass 1: torch failed verify with fake ("), c.failure);
      ok(c.failure?.endsWith("not benchmarked; fix it or pass --skip-verify"), c.failure);
      equal(c.latencyMs, undefined, "nothing was measured");
    }
    const record = JSON.parse(await Deno.readTextFile(join(results, "verify", "torch__fake.json")));
    equal(record.ok, false);
    await Deno.remove(dir, { recursive: true });
  },
});
