/**
 * The harness's secondary figures against known answers: the test server (docker/testserver) burns
 * a known CPU time per request, holds known anonymous and file-backed memory, peaks by a known
 * amount while loading, and stamps known start-up phases. A run must recover each within 10 %.
 */
import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { parseYaml, validateSources } from "./config/config.ts";
import { DockerEngine } from "./engine/docker.ts";
import { captureEnvironment } from "./env.ts";
import { readCells, readRun } from "./results/results.ts";
import { runBenchmark } from "./runner.ts";
import { dockerAvailable, ensureTestImage, REQUIRE_DOCKER } from "./testing.ts";

const BURN_MS = 40;
const ANON_MB = 400;
const LOAD_PEAK_MB = 300;
const FILE_MB = 200;
// Long enough that the interpreter's own start (about 0.1 s, also in the runtime phase) stays under 5 %.
const IMPORT_MS = 3000;
const LOAD_DELAY_MS = 2000;
const WARMUP_MS = 500;
const MIB = 2 ** 20;

const MODELS = `models:
  fake:
    name: "Known-resources fixture"
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

const CONFIG = `active_models: [fake]
frameworks: [torch]
scenarios:
  - { name: single_query, concurrency: 1, num_requests: 100, batch_size: 1 }
input: { sequence_lengths: [32], warmup_requests: 5 }
cpus: { server: "0", loadgen: "1" }
container: { memory_limit: "2g", max_batch: 64, max_inflight: 1, health_timeout_s: 60 }
measurement: { window_s: 2, steady_windows: 2, steady_tolerance: 0.3, max_s: 8, passes: 2, timeout_s: 30, cold_starts: 1, gemm_seconds: 0 }
`;

const within = (got: number | undefined, want: number, what: string, tol = 0.1) =>
  ok(
    got !== undefined && Math.abs(got - want) <= tol * want,
    `${what}: ${got?.toFixed(3)}, expected ${want} ± ${tol * 100} %`,
  );

Deno.test({
  name: "a run recovers known CPU per request, memory and start-up phases within 10 %",
  ignore: !REQUIRE_DOCKER && !(await dockerAvailable()),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const image = await ensureTestImage();
    const dir = await Deno.makeTempDir({ prefix: "embbench-resources-" });
    try {
      const modelsDir = join(dir, "models");
      const model = join(modelsDir, "fake");
      await Deno.mkdir(join(model, "payloads"), { recursive: true });
      const body = (k: number) => JSON.stringify({ inputs: [`text ${k}`] });
      await Deno.writeTextFile(
        join(model, "payloads", "seq32_b1.jsonl"),
        [0, 1, 2, 3].map(body).join("\n") + "\n",
      );
      // The "weights" the server maps: random bytes, so no page is shared or zero-filled.
      const weights = await Deno.open(join(model, "weights.bin"), { write: true, create: true });
      const chunk = new Uint8Array(MIB);
      for (let i = 0; i < FILE_MB; i++) {
        crypto.getRandomValues(chunk.subarray(0, 65536));
        await weights.write(chunk);
      }
      weights.close();
      await new Deno.Command("sync").output();

      const { models, config } = validateSources(
        parseYaml("models.yaml", MODELS),
        parseYaml("config.yaml", CONFIG),
      );
      const runDir = join(dir, "run");
      const summary = await runBenchmark({
        engine: new DockerEngine(),
        config,
        models,
        runDir,
        runId: "resources",
        quick: false,
        frameworks: ["torch"],
        images: { torch: image },
        modelsDir,
        cpus: { server: "0", loadgen: "1" },
        environment: await captureEnvironment(),
        signal: new AbortController().signal,
        serverEnv: {
          BURN_MS: String(BURN_MS),
          WORKERS: "1",
          ANON_MB: String(ANON_MB),
          LOAD_PEAK_MB: String(LOAD_PEAK_MB),
          FILE_MB: String(FILE_MB),
          FILE_PATH: "/model/weights.bin",
          IMPORT_MS: String(IMPORT_MS),
          LOAD_DELAY_MS: String(LOAD_DELAY_MS),
          WARMUP_MS: String(WARMUP_MS),
        },
      });
      equal(summary.failed, 0);
      const cells = [...(await readCells(runDir)).values()];
      equal(cells.length, 1);
      const cell = cells[0]!;
      const r = cell.resources!;

      // CPU: one request burns BURN_MS of CPU, one at a time on a one-CPU cpuset.
      within(r.cpu?.secondsPerRequest, BURN_MS / 1000, "CPU seconds per request");
      ok(r.cpu!.utilizationPercent <= 100 && r.cpu!.busyCoresPeak <= 1.05, `CPU ${JSON.stringify(r.cpu)}`);
      // Busy cores is CPU per request times requests per second (on a crowded host the burn takes
      // longer in wall time, so this, not 1.0, is what the figure must agree with).
      within(
        r.cpu?.busyCores,
        r.cpu!.secondsPerRequest * cell.throughputRps!,
        "busy cores = CPU/request × req/s",
        0.15,
      );

      // Memory: the anonymous and mapped amounts the server holds, the load-time peak on top.
      within(r.memory!.anonBytes! / MIB, ANON_MB, "steady anonymous MiB");
      within(r.memory!.fileBytes! / MIB, FILE_MB, "steady file-backed MiB");
      // The load peak: anonymous + the transient peak + the weights' pages read into the page cache.
      within(r.memory!.loadPeakBytes! / MIB, ANON_MB + LOAD_PEAK_MB + FILE_MB, "load-time peak MiB");

      // Start-up phases, from the server's stamps placed on the harness's timeline.
      const st = cell.startup!;
      within(st.runtimeMs, IMPORT_MS, "runtime import ms");
      within(st.modelLoadMs, LOAD_DELAY_MS, "model load ms");
      within(st.warmupMs, WARMUP_MS, "warm-up ms");
      ok(st.containerMs! > 0 && st.containerMs! < 5000, `container start ${st.containerMs} ms`);
      within(
        st.healthyMs,
        st.containerMs! + st.runtimeMs! + st.modelLoadMs! + st.warmupMs!,
        "healthy = container + runtime + model + warm-up",
      );

      // The cold start: no warm-up phase, and its first request burns the same CPU.
      const cold = (await readRun(runDir)).coldStarts?.fake?.torch;
      ok(cold, "cold starts recorded in run.json");
      equal(cold.starts.length, 1);
      equal(cold.starts[0]!.phases.warmupMs, undefined);
      ok(cold.median.firstRequestMs >= BURN_MS, `cold first request ${cold.median.firstRequestMs} ms`);

      // Phase counters: the burn is the inference phase.
      within(r.phases?.ms.inference, BURN_MS, "inference ms per request (from /metrics)");
      ok(r.phases!.httpMs! > 0, `HTTP layer ${r.phases!.httpMs} ms`);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
