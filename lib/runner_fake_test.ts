/** Runner behaviour that needs no Docker: a fake engine whose containers never become healthy. */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { parseYaml, validateSources } from "./config/config.ts";
import type { ContainerEngine, ContainerSpec, ContainerState, RawStats } from "./engine/docker.ts";
import type { Environment } from "./env.ts";
import { readCells, readRun } from "./results/results.ts";
import { runBenchmark, stopLeftoverLoad } from "./runner.ts";

/** Records calls; every container it starts has already exited with code 139. */
class CrashingEngine implements ContainerEngine {
  started: ContainerSpec[] = [];
  removed: string[] = [];
  serverVersion() {
    return Promise.resolve("fake");
  }
  imageId(tag: string) {
    return Promise.resolve(`sha256:${tag}`);
  }
  start(spec: ContainerSpec) {
    this.started.push(spec);
    return Promise.resolve(`c${this.started.length}`);
  }
  state(_id: string): Promise<ContainerState> {
    return Promise.resolve({ running: false, exitCode: 139, oomKilled: false, status: "exited" });
  }
  logs(_id: string, _tail: number) {
    return Promise.resolve("Segmentation fault (core dumped)");
  }
  statsOnce(_id: string): Promise<RawStats> {
    return Promise.reject(new Error("no stats from a fake"));
  }
  exec(_id: string, _cmd: string[]): Promise<string> {
    return Promise.reject(new Error("no exec in a fake"));
  }
  remove(id: string) {
    this.removed.push(id);
    return Promise.resolve();
  }
  findByLabel() {
    return Promise.resolve([]);
  }
}

const MODELS = `models:
  m:
    name: "M"
    type: text_embedding
    architecture: bert
    source: embedded
    max_seq_length: 128
    embedding_dim: 8
    multilingual: false
    attention: bidirectional
    pooling: mean
    normalize: true
    dense: []
    prompts: {}
    dimensions: [8]
`;
const CONFIG = `active_models: [m]
frameworks: [torch, candle]
serving: [sequential, batched]
scenarios:
  - { name: single_query, concurrency: 1, num_requests: 10, batch_size: 1 }
  - { name: batch_processing, concurrency: 1, num_requests: 10, batch_size: 8 }
input: { sequence_lengths: [32, 64], warmup_requests: 1 }
cpus: { server: "0", loadgen: "1" }
container: { memory_limit: "1g", max_batch: 64, max_inflight: 1, health_timeout_s: 30 }
max_error_rate: 0.01
measurement: { window_s: 1, steady_windows: 2, steady_tolerance: 0.5, max_s: 2, passes: 2, timeout_s: 30, cold_starts: 0, gemm_seconds: 0 }
`;

Deno.test("runBenchmark() fails every cell of a framework whose container crashes at start, once, and goes on", async () => {
  const { models, config } = validateSources(
    parseYaml("models.yaml", MODELS),
    parseYaml("config.yaml", CONFIG),
  );
  const engine = new CrashingEngine();
  const dir = await Deno.makeTempDir();
  const summary = await runBenchmark({
    engine,
    config,
    models,
    runDir: join(dir, "run"),
    runId: "fake",
    quick: false,
    frameworks: ["torch", "candle"],
    images: {},
    modelsDir: join(dir, "models"),
    cpus: { server: "0", loadgen: "1" },
    environment: {} as Environment,
    signal: new AbortController().signal,
  });
  deepStrictEqual([summary.ok, summary.failed], [0, 16]);
  equal(engine.started.length, 4, "one start attempt per framework and serving mode, not one per cell");
  deepStrictEqual(engine.started.map((s) => [s.image, s.cpuset, s.env.NUM_THREADS, s.env.SERVING]), [
    ["embbench/torch:latest", "0", "1", "sequential"],
    ["embbench/torch:latest", "0", "1", "batched"],
    ["embbench/candle:latest", "0", "1", "sequential"],
    ["embbench/candle:latest", "0", "1", "batched"],
  ]);
  deepStrictEqual(engine.removed, ["c1", "c2", "c3", "c4"], "each crashed container is removed");
  const cells = await readCells(join(dir, "run"));
  equal(cells.size, 16);
  ok(cells.has("m__candle+batched__single_query__seq32"), "batched cells carry the mode in their id");
  for (const c of cells.values()) {
    equal(c.status, "failed");
    ok(c.failure?.includes("did not start: container exited with code 139"), c.failure);
    ok(c.failure?.includes("Segmentation fault"), "the container's last log lines are kept");
  }
  const info = await readRun(join(dir, "run"));
  ok(info.endedAt);
  equal(info.verifyGate, false, "a run without a verify gate says so");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("stopLeftoverLoad() stops a killed run's load generator that still writes into its logs", async () => {
  const dir = await Deno.makeTempDir();
  const ohaDir = join(dir, "logs", "oha");
  // Stands in for an orphaned oha: its command line names a file under the run's oha folder.
  const orphan = new Deno.Command("sh", { args: ["-c", "sleep 30", "oha", `${ohaDir}/c.p1.w1.json`] })
    .spawn();
  equal(await stopLeftoverLoad(ohaDir), 1);
  equal((await orphan.status).signal, "SIGKILL");
  equal(await stopLeftoverLoad(ohaDir), 0, "nothing left the second time");
  await Deno.remove(dir, { recursive: true });
});
