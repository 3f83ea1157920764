/**
 * Synthetic runs and cells for the report's unit tests: small, hand-made CellResult and RunInfo
 * objects whose figures the tests know, so each section can be checked without a recorded run.
 */
import { BenchmarkConfigSchema } from "../lib/config/config.ts";
import type { CellResult, RunInfo } from "../lib/results/results.ts";
import { summarize } from "../lib/stats/quantiles.ts";
import { mulberry32 } from "../lib/stats/random.ts";
import type { CellResources } from "../lib/stats/resources.ts";
import type { CellSample } from "../lib/stats/verdicts.ts";

/** A run.json with a 4-CPU server cpuset on an 8-CPU host, priced at 1 EUR an hour. */
export function syntheticRun(over: Partial<RunInfo> = {}): RunInfo {
  const config = BenchmarkConfigSchema.parse({
    active_models: ["m"],
    frameworks: ["onnx-cpp", "candle"],
    scenarios: [
      { name: "single_query", concurrency: 1, num_requests: 2000, batch_size: 1 },
      { name: "batch_processing", concurrency: 1, num_requests: 500, batch_size: 8 },
    ],
    concurrency_sweep: { levels: [1, 4, 16], num_requests: 2000, batch_size: 1 },
    input: { sequence_lengths: [32, 128], warmup_requests: 10 },
    cpus: { server: "0-3", loadgen: "4-5" },
    container: {
      memory_limit: "4g",
      max_batch: 64,
      max_inflight: 1,
      health_timeout_s: 60,
      threads: "physical",
    },
    measurement: {
      window_s: 1,
      steady_windows: 3,
      steady_tolerance: 0.2,
      max_s: 4,
      passes: 2,
      timeout_s: 30,
      cold_starts: 3,
      gemm_seconds: 1,
    },
    cost: { price_per_hour: 1, currency: "EUR", instance: "test.large", source: "made up for the test" },
  });
  return {
    version: 3,
    runId: "2026-12-02T00-00-00Z",
    quick: false,
    config,
    models: {},
    cpus: { server: "0-3", loadgen: "4-5" },
    environment: {
      cpu: {
        model: "Test CPU",
        flags: ["avx2"],
        simdFlags: ["avx2"],
        logicalCpus: 8,
        physicalCores: 4,
        threadsPerCore: 2,
        siblings: {},
      },
      memoryBytes: 16 * 2 ** 30,
      kernel: "6.1",
      os: "Linux",
      hostname: "test",
      tools: { deno: "2", docker: "27", dockerServer: "27", oha: "1.4" },
      git: { commit: "abc", dirty: false },
      cgroupVersion: 2,
    },
    verifyGate: true,
    frameworks: {
      "onnx-cpp": { image: "embbench/onnx-cpp", info: { threads: 2, dtype: "float32" } },
      candle: { image: "embbench/candle", info: { threads: 2, dtype: "float32" } },
    },
    startedAt: "2026-12-02T00:00:00Z",
    endedAt: "2026-12-02T01:00:00Z",
    ...over,
  };
}

/** What a synthetic cell is made of; its latencies are drawn around p50 (±10 %), seeded by its id. */
export interface CellSpec {
  framework: string;
  model?: string;
  scenario?: string;
  seq?: number;
  batch?: number;
  c?: number;
  status?: "ok" | "failed";
  /** Median latency, ms (and 1000 / p50 × c requests per second, unless rps is given). */
  p50?: number;
  rps?: number;
  requests?: number;
  resources?: CellResources;
  startup?: CellResult["startup"];
  loadTimeMs?: number;
  rateFraction?: number;
}

function seedOf(id: string): number {
  let h = 7;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h;
}

/** A cell and its per-request sample (for the tests of leads). */
export function syntheticCell(s: CellSpec): { cell: CellResult; sample?: CellSample } {
  const model = s.model ?? "m";
  const scenario = s.scenario ?? "single_query";
  const seq = s.seq ?? 32;
  const batch = s.batch ?? 1;
  const c = s.c ?? 1;
  const id = `${model}__${s.framework}__${scenario}__seq${seq}${
    s.rateFraction !== undefined
      ? `__f${Math.round(s.rateFraction * 100)}`
      : scenario === "sweep"
      ? `__c${c}`
      : ""
  }`;
  const base = {
    id,
    model,
    framework: s.framework,
    scenario,
    sequenceLength: seq,
    batchSize: batch,
    concurrency: c,
    numRequests: s.requests ?? 2000,
    ...(s.rateFraction !== undefined ? { rateFraction: s.rateFraction } : {}),
    version: 3 as const,
    startedAt: "2026-12-02T00:00:00Z",
    endedAt: "2026-12-02T00:01:00Z",
    ...(s.resources ? { resources: s.resources } : {}),
    ...(s.startup ? { startup: s.startup } : {}),
    ...(s.loadTimeMs !== undefined ? { loadTimeMs: s.loadTimeMs } : {}),
  };
  if (s.status === "failed") return { cell: { ...base, status: "failed", failure: "container exited" } };
  const p50 = s.p50 ?? 10;
  const n = s.requests ?? 2000;
  const random = mulberry32(seedOf(id));
  const latencies = Array.from({ length: n }, () => p50 * (0.9 + 0.2 * random()));
  const rps = s.rps ?? (1000 / p50) * c;
  const windowRps = Array.from({ length: 6 }, () => rps * (0.98 + 0.04 * random()));
  const summary = summarize(latencies);
  const cell: CellResult = {
    ...base,
    status: "ok",
    latencyMs: summary,
    throughputRps: rps,
    textsPerSecond: rps * batch,
    counts: {
      measured: n,
      successful: n,
      failedStatus: 0,
      warmupFailed: 0,
      errors: {},
      openers: c,
      failedAtTimeout: 0,
      windows: 6,
      passes: 2,
    },
    errorRate: 0,
    steady: true,
    windowRps,
  };
  const half = (k: number) => latencies.filter((_, i) => i % 2 === k).sort((a, b) => a - b);
  const pass = (k: number) => {
    const v = half(k);
    return { p50: v[Math.floor(v.length / 2)]!, p99: v[Math.floor(v.length * 0.99)]!, throughput: rps };
  };
  return { cell, sample: { latencies, windowRps, passes: [pass(0), pass(1)] } };
}

/** Cells and their samples, keyed by cell id. */
export function syntheticCells(specs: CellSpec[]): { cells: CellResult[]; samples: Map<string, CellSample> } {
  const made = specs.map(syntheticCell);
  return {
    cells: made.map((m) => m.cell),
    samples: new Map(made.filter((m) => m.sample).map((m) => [m.cell.id, m.sample!])),
  };
}

const MIB = 2 ** 20;

/** Resources of a cell with round figures: CPU ms per request, PSS MiB (a quarter anonymous), cost. */
export function resources(o: {
  cpuMs?: number;
  busy?: number;
  peak?: number;
  pssMiB?: number;
  loadPeakMiB?: number;
  cost?: number;
  gflops?: number;
  percentOfPeak?: number;
  phases?: CellResources["phases"];
  steal?: number;
}): CellResources {
  const out: CellResources = {};
  if (o.cpuMs !== undefined) {
    const busy = o.busy ?? 1;
    out.cpu = {
      secondsPerRequest: o.cpuMs / 1000,
      secondsPer1kTokens: o.cpuMs / 1000 / 0.032,
      busyCores: busy,
      busyCoresPeak: o.peak ?? busy,
      utilizationPercent: (busy / 4) * 100,
      cpusetCpus: 4,
      ...(o.steal !== undefined ? { stealPercent: o.steal } : {}),
    };
  }
  if (o.pssMiB !== undefined || o.loadPeakMiB !== undefined) {
    out.memory = {
      ...(o.loadPeakMiB !== undefined
        ? { loadPeakBytes: o.loadPeakMiB * MIB, peakBytes: o.loadPeakMiB * MIB }
        : {}),
      ...(o.pssMiB !== undefined
        ? {
          pssBytes: o.pssMiB * MIB,
          anonBytes: (o.pssMiB / 4) * MIB,
          fileBytes: (o.pssMiB * 3 / 4) * MIB,
          rssBytes: o.pssMiB * 1.1 * MIB,
        }
        : {}),
    };
  }
  if (o.gflops !== undefined) {
    out.efficiency = {
      flopsPerRequest: 1e9,
      gflops: o.gflops,
      ...(o.percentOfPeak !== undefined ? { peakGflops: 100, percentOfPeak: o.percentOfPeak } : {}),
    };
  }
  if (o.phases) out.phases = o.phases;
  if (o.cost !== undefined) out.costPerMillion = o.cost;
  return out;
}
