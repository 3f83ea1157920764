import { equal, ok } from "node:assert/strict";
import { renderReport } from "./render.ts";
import type { CellResult, RunInfo } from "../lib/results.ts";
import type { OhaSummary } from "../lib/oha.ts";

const oha = (rps: number, p50: number): OhaSummary => ({
  durationS: 1,
  responses: rps,
  successful: rps,
  failedStatus: 0,
  errors: {},
  errorCount: 0,
  cutAtDeadline: 0,
  errorRate: 0,
  throughputRps: rps,
  ohaRequestsPerSec: rps,
  latencyMs: { mean: p50, min: p50, max: p50 * 2, p50, p90: p50, p95: p50, p99: p50 * 1.5, p999: p50 * 2 },
  statusCodes: { "200": rps },
});

function cell(framework: string, scenario: string, concurrency: number, o?: OhaSummary): CellResult {
  return {
    version: 1,
    id: `m__${framework}__${scenario}__seq32${scenario === "sweep" ? `__c${concurrency}` : ""}`,
    model: "m",
    framework,
    scenario,
    sequenceLength: 32,
    batchSize: 1,
    concurrency,
    numRequests: 10,
    status: o ? "ok" : "failed",
    failure: o ? undefined : "container exited with code 137 (OOM killed) during the cell",
    startedAt: "2026-01-01T00:00:00Z",
    endedAt: "2026-01-01T00:00:01Z",
    oha: o,
    textsPerSecond: o?.throughputRps,
  };
}

Deno.test("renderReport() fills every placeholder, charts the sweep and marks failed cells", async () => {
  const run = {
    version: 1,
    runId: "2026-01-01T00-00-00Z",
    quick: true,
    config: { active_models: ["m"] },
    models: {},
    cpus: { server: "0", loadgen: "1" },
    environment: {
      cpu: {
        model: "Test CPU",
        flags: [],
        simdFlags: ["avx2"],
        logicalCpus: 2,
        physicalCores: 2,
        threadsPerCore: 1,
        siblings: {},
      },
      memoryBytes: 2 ** 30,
      kernel: "6.1",
      os: "Debian",
      hostname: "h",
      tools: { deno: "2.9.6", docker: "28", dockerServer: "20.10", oha: "1.16.0" },
      git: { commit: "abc", dirty: false },
      cgroupVersion: 1,
    },
    frameworks: {
      torch: { image: "embbench/torch:latest", info: { framework_version: "2.8.0", threads: 1 } },
    },
    startedAt: "2026-01-01T00:00:00Z",
    endedAt: "2026-01-01T00:01:00Z",
  } as unknown as RunInfo;
  const html = await renderReport(run, [
    cell("torch", "single_query", 1, oha(100, 5)),
    cell("torch", "sweep", 1, oha(100, 5)),
    cell("torch", "sweep", 4, oha(300, 9)),
    cell("candle", "single_query", 1),
  ]);
  ok(!/\{\{\s*\w+\s*\}\}/.test(html), "no placeholder left");
  ok(html.includes("not a benchmark result"), "a quick run says so");
  ok(html.includes('<tr class="failed">') && html.includes("OOM killed"));
  ok(html.includes("Test CPU") && html.includes("avx2"));
  ok(html.includes("m, 32 tokens: throughput vs concurrency"));
  const data = JSON.parse(/of (\[.*\]\)) new Chart/.exec(html)?.[1]?.slice(0, -1) ?? "[]");
  const sweep = data.find((c: { id: string }) => c.id.startsWith("sweep-tput"));
  equal(JSON.stringify(sweep.config.data.labels), "[1,4]");
  equal(JSON.stringify(sweep.config.data.datasets[0].data), "[100,300]");
  ok(html.includes("new Chart"), "Chart.js is inlined and used");
});
