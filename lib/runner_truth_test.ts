/**
 * The harness against known answers: the test server (docker/testserver) is given a fixed service
 * time, a known slow fraction and one worker, so its p50, p99 and capacity are known in advance;
 * a run must recover them, and two runs of the same image must not be called different.
 */
import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { parseYaml, validateSources } from "./config/config.ts";
import { DockerEngine } from "./engine/docker.ts";
import { captureEnvironment } from "./env.ts";
import { readCells } from "./results/results.ts";
import { runBenchmark } from "./runner.ts";
import { dockerAvailable, ensureTestImage, REQUIRE_DOCKER, startTestServer } from "./testing.ts";
import { runWindow } from "./load/window.ts";
import { loadRun } from "../tasks/report.ts";
import { buildComparison } from "../report/compare.ts";

const SERVICE_MS = 20;
const SLOW_EVERY = 50;
const SLOW_FACTOR = 10;
/** One worker: capacity is one over the mean service time. */
const MEAN_SERVICE_MS = SERVICE_MS * (1 - 1 / SLOW_EVERY) + SERVICE_MS * SLOW_FACTOR / SLOW_EVERY;
const CAPACITY_RPS = 1000 / MEAN_SERVICE_MS;

const MODELS = `models:
  fake:
    name: "Known-answer fixture"
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

// The slow requests make window throughput vary by design: a 2 s window at capacity holds about 85
// answers, about 1.7 of them slow (Poisson, sd 1.3, each 180 ms longer), so window rates spread by
// about ±12 % and three windows' range by about 25 %; steady_tolerance allows for that.
const CONFIG = `active_models: [fake]
frameworks: [torch]
scenarios:
  - { name: single_query, concurrency: 1, num_requests: 1100, batch_size: 1 }
concurrency_sweep: { levels: [4], num_requests: 400, batch_size: 1 }
input: { sequence_lengths: [32], warmup_requests: 20 }
cpus: { server: "0", loadgen: "1" }
container: { memory_limit: "256m", max_batch: 64, max_inflight: 1, health_timeout_s: 60 }
measurement: { window_s: 2, steady_windows: 3, steady_tolerance: 0.3, max_s: 30, passes: 2, timeout_s: 30, cold_starts: 0, gemm_seconds: 0 }
open_loop: { fractions: [0.5], connections: 8, num_requests: 200, p99_target_ms: { "32": 400 } }
`;

async function fixtureModels(dir: string): Promise<string> {
  const modelsDir = join(dir, "models");
  await Deno.mkdir(join(modelsDir, "fake", "payloads"), { recursive: true });
  const body = (k: number) => JSON.stringify({ inputs: [`text ${k}`] });
  await Deno.writeTextFile(join(modelsDir, "fake", "payloads", "seq32_b1.json"), body(0));
  await Deno.writeTextFile(
    join(modelsDir, "fake", "payloads", "seq32_b1.jsonl"),
    Array.from({ length: 16 }, (_, k) => body(k)).join("\n") + "\n",
  );
  return modelsDir;
}

async function knownRun(dir: string, modelsDir: string, name: string, image: string): Promise<string> {
  const { models, config } = validateSources(
    parseYaml("models.yaml", MODELS),
    parseYaml("config.yaml", CONFIG),
  );
  const runDir = join(dir, name);
  const summary = await runBenchmark({
    engine: new DockerEngine(),
    config,
    models,
    runDir,
    runId: `truth-${name}`,
    quick: false,
    frameworks: ["torch"],
    images: { torch: image },
    modelsDir,
    cpus: { server: "0", loadgen: "1" },
    environment: await captureEnvironment(),
    signal: new AbortController().signal,
    serverEnv: {
      SERVICE_MS: String(SERVICE_MS),
      SLOW_EVERY: String(SLOW_EVERY),
      SLOW_FACTOR: String(SLOW_FACTOR),
      WORKERS: "1",
    },
  });
  equal(summary.failed, 0);
  return runDir;
}

/**
 * What a request costs beyond its service time (HTTP in the test server, its worker gate and sleep,
 * loopback, oha): the median latency of the same server with a 1 ms service time, minus that 1 ms.
 */
async function roundTripMs(dir: string, modelsDir: string): Promise<number> {
  const engine = new DockerEngine();
  const server = await startTestServer({ SERVICE_MS: "1", WORKERS: "1" });
  try {
    const w = await runWindow({
      oha: {
        url: `${server.baseUrl}/embed`,
        bodyFile: join(modelsDir, "fake", "payloads", "seq32_b1.jsonl"),
        bodyLines: true,
        concurrency: 1,
        cpus: "1",
      },
      durationS: 2,
      loadgenCpus: 1,
      outFile: join(dir, "rtt.json"),
      dbFile: join(dir, "rtt.db"),
    }, 1);
    const lat = w.records.filter((_, i) => w.measured[i]).map((r) => r.latencyMs).sort((a, b) => a - b);
    return lat[Math.floor(lat.length / 2)]! - 1;
  } finally {
    await engine.remove(server.containerId);
  }
}

const within = (value: number, truth: number, tolerance: number, what: string) =>
  ok(Math.abs(value - truth) / truth <= tolerance, `${what}: ${value.toFixed(2)}, known ${truth.toFixed(2)}`);

Deno.test({
  name:
    "a run recovers the test server's known p50, p99 and capacity within 5 %, and two runs of it do not differ",
  ignore: !REQUIRE_DOCKER && !(await dockerAvailable()),
  async fn() {
    const image = await ensureTestImage();
    const dir = await Deno.makeTempDir({ prefix: "embbench-truth-" });
    const modelsDir = await fixtureModels(dir);
    const rtt = await roundTripMs(dir, modelsDir);
    ok(rtt < 3, `the test server's round trip is ${rtt.toFixed(2)} ms`);
    const first = await knownRun(dir, modelsDir, "a", image);
    const cells = await readCells(first);

    const single = cells.get("fake__torch__single_query__seq32")!;
    ok(single.counts!.successful >= 1100, `${single.counts!.successful} requests measured`);
    const p = single.latencyMs!.percentiles;
    // At concurrency 1 a request's latency is its service time plus the round trip.
    within(p.p50.value!, SERVICE_MS + rtt, 0.05, "p50 ms");
    within(p.p99.value!, SERVICE_MS * SLOW_FACTOR + rtt, 0.05, "p99 ms");
    ok(p.p50.lower! <= p.p50.value! && p.p50.value! <= p.p50.upper!, "the interval holds the estimate");
    equal(p.p999.value, undefined, "p99.9 needs 10,000 requests");
    equal(p.p999.needs, 10000);

    const loaded = cells.get("fake__torch__sweep__seq32__c4")!;
    within(loaded.throughputRps!, CAPACITY_RPS, 0.05, "capacity req/s at concurrency 4");
    ok(loaded.steady, "a server at capacity is steady");
    equal(loaded.connections!.keepAliveDropped, false);

    const rate = cells.get("fake__torch__rate__seq32__f50")!;
    within(rate.openLoop!.offeredRps, rate.openLoop!.capacityRps * 0.5, 1e-9, "offered rate");
    within(
      rate.throughputRps!,
      rate.openLoop!.offeredRps,
      0.05,
      "open-loop throughput matches the offered rate",
    );

    // The same image again: at least 95 % of the comparison's verdicts must find no difference.
    const second = await knownRun(dir, modelsDir, "b", image);
    const [a, b] = await Promise.all([loadRun(first), loadRun(second)]);
    const doc = buildComparison(
      { run: a.run, cells: [...a.cells.values()], samples: a.samples },
      { run: b.run, cells: [...b.cells.values()], samples: b.samples },
    );
    const table = doc.blocks.find((x) => x.kind === "table")!;
    ok(table.kind === "table");
    const verdicts = table.rows.flatMap((r) => r).filter((c) =>
      typeof c === "object" && c.title?.includes("significant")
    );
    const significant = verdicts.filter((c) => typeof c === "object" && c.title?.startsWith("significant"));
    // Tested at least: single_query's p50, p99 and throughput, the sweep cell's p50 and throughput (its
    // p99 needs 1,000 requests). The open-loop cell is not compared when the two runs' offered rates differ.
    ok(verdicts.length >= 5, `${verdicts.length} tested changes`);
    ok(
      significant.length <= verdicts.length * 0.05,
      `${significant.length} of ${verdicts.length} verdicts call identical runs different`,
    );
    await Deno.remove(dir, { recursive: true });
  },
});
