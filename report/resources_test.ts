import { deepStrictEqual, equal, ok } from "node:assert/strict";
import type { RunInfo } from "../lib/results/results.ts";
import type { ColdStartSummary } from "../lib/server/startup.ts";
import { blocksToMarkdown, type Cell } from "./document.ts";
import { buildReport, resourceTable } from "./report.ts";
import {
  busyText,
  costSentence,
  cpuSection,
  levelRows,
  memoryRows,
  money,
  pageCacheSentence,
  phaseRows,
  preferredCell,
  resourceCells,
  startupRows,
} from "./resources.ts";
import { resources, syntheticCells, syntheticRun } from "./testkit.ts";

const text = (c: Cell | undefined) => (typeof c === "string" ? c : c?.text);
const phases = (ms: Record<string, number>, meanBatch?: number, requests = 100) => ({
  requests,
  ms: { parse: 0, tokenize: 0, queue: 0, inference: 0, serialize: 0, request: 0, ...ms },
  ...(meanBatch !== undefined ? { meanBatch } : {}),
});

Deno.test("preferredCell() takes the cell with more requests, the named scenario on a tie", () => {
  const { cells } = syntheticCells([
    { framework: "candle", requests: 1000 },
    { framework: "candle", scenario: "sweep", requests: 2000 },
  ]);
  equal(preferredCell(cells)!.scenario, "sweep");
  const tie = syntheticCells([
    { framework: "candle", scenario: "sweep", requests: 1000 },
    { framework: "candle", requests: 1000 },
  ]);
  equal(preferredCell(tie.cells)!.scenario, "single_query");
});

Deno.test("phaseRows(): the split at the lowest and highest load, and why a row has none", () => {
  const { cells } = syntheticCells([
    {
      framework: "onnx-cpp",
      p50: 5,
      resources: resources({
        phases: {
          ...phases({ parse: 0.1, tokenize: 0.4, queue: 0, inference: 3, serialize: 0.2, request: 3.9 }, 1),
          httpMs: 1.1,
        },
      }),
    },
    {
      framework: "onnx-cpp",
      scenario: "sweep",
      c: 16,
      p50: 40,
      resources: resources({
        // A counter the server lacks arrives as null (NaN in JSON): it is left out, not summed as 0.
        phases: {
          ...phases({ parse: 0.1, tokenize: 0.5, queue: 30, inference: 3.2, request: 34 }, 1),
          ms: {
            parse: 0.1,
            tokenize: 0.5,
            queue: 30,
            inference: 3.2,
            serialize: null as unknown as number,
            request: 34,
          },
          httpMs: 6,
        },
      }),
    },
    { framework: "candle", p50: 6 },
    { framework: "candle", scenario: "sweep", c: 16, status: "failed" },
    // Batch 8 and open-loop cells are not in the split.
    { framework: "candle", scenario: "batch_processing", batch: 8, p50: 20 },
    { framework: "candle", scenario: "rate", c: 64, rateFraction: 0.5 },
  ]);
  const rows = phaseRows(cells, 32);
  deepStrictEqual(rows.map((r) => `${r.framework} c=${r.concurrency}`), [
    "onnx-cpp c=1",
    "onnx-cpp c=16",
    "candle c=1",
    "candle c=16",
  ]);
  const [c1, c16, noMetrics, failed] = rows;
  equal(c1!.ms!.inference, 3);
  ok(Math.abs(c1!.ms!.other! - 0.2) < 1e-9, "request − the five phases");
  equal(c1!.ms!.http, 1.1);
  equal(c1!.meanBatch, 1);
  equal(c1!.serverMs, 3.9);
  equal(c16!.ms!.serialize, undefined);
  ok(Math.abs(c16!.ms!.other! - 0.2) < 1e-9);
  equal(c16!.ms!.queue, 30);
  ok(noMetrics!.missing!.startsWith("no phase counters"));
  equal(noMetrics!.ms, undefined);
  equal(failed!.missing, "no ok batch-1 cell at c=16");
  // Rendered: a row per framework and load, the missing ones say why.
  const run = syntheticRun();
  const md = blocksToMarkdown({ title: "t", subtitle: "s", blocks: buildReport(run, cells).blocks });
  ok(md.includes("\n## Where the time goes\n"));
  ok(
    md.includes("| ONNX Runtime (C++) | 32 | 1 | 0.00 | 0.10 | 0.40 | 3.00 | 0.20 | 0.20 | 1.10 | 3.90 |"),
    md,
  );
  ok(md.includes("| Candle (Rust) | 32 | 16 | no ok batch-1 cell at c=16 | – |"));
  ok(md.includes("| Candle (Rust) | 32 | 1 | no phase counters"));
});

Deno.test("levelRows(): only the lowest level when a framework measured one load", () => {
  const { cells } = syntheticCells([{ framework: "candle" }]);
  deepStrictEqual(levelRows(cells, 32).map((r) => r.concurrency), [1]);
  deepStrictEqual(levelRows(cells, 128), []);
});

Deno.test("startupRows(): phase medians over the cells, the rest to healthy, and the cold starts", () => {
  const startup = (model: number, healthy: number) => ({
    containerMs: 300,
    runtimeMs: 500,
    modelLoadMs: model,
    warmupMs: 50,
    healthyMs: healthy,
  });
  const { cells } = syntheticCells([
    { framework: "onnx-cpp", startup: startup(1000, 1900), loadTimeMs: 1900 },
    { framework: "onnx-cpp", seq: 128, startup: startup(1200, 2100), loadTimeMs: 2100 },
    { framework: "onnx-cpp", scenario: "sweep", c: 4, startup: startup(1100, 2000), loadTimeMs: 2000 },
    // An older cell: only its load time.
    { framework: "candle", loadTimeMs: 800 },
  ]);
  const cold: ColdStartSummary = {
    framework: "onnx-cpp",
    model: "m",
    starts: [],
    median: {
      containerMs: 310,
      runtimeMs: 480,
      modelLoadMs: 1500,
      healthyMs: 2400,
      firstRequestMs: 45,
      secondRequestMs: 5,
    },
  };
  const run = syntheticRun({ coldStarts: { m: { "onnx-cpp": cold } } });
  const rows = startupRows("m", cells, run);
  deepStrictEqual(rows.map((r) => r.framework), ["onnx-cpp", "candle"]);
  const [cpp, candle] = rows;
  equal(cpp!.modelLoadMs, 1100);
  equal(cpp!.healthyMs, 2000);
  equal(cpp!.restMs, 2000 - 300 - 500 - 1100 - 50);
  equal(cpp!.cells, 3);
  equal(cpp!.cold!.firstRequestMs, 45);
  equal(candle!.healthyMs, 800);
  equal(candle!.modelLoadMs, undefined);
  equal(candle!.restMs, undefined);
  equal(candle!.cold, undefined);
  const md = blocksToMarkdown({ title: "t", subtitle: "s", blocks: buildReport(run, cells).blocks });
  ok(md.includes("| ONNX Runtime (C++) | 300 | 500 | 1,100 | 50 | 50 | 2,000 | 3 |"), md);
  ok(md.includes("| Candle (Rust) | – | – | – | – | – | 800 | 1 |"));
  ok(md.includes("| ONNX Runtime (C++) | 0 | 310 | 480 | 1,500 | 2,400 | 45.0 | 5.0 | 40.0 |"));
  ok(md.includes("| Candle (Rust) | not measured | – |"));
  ok(
    md.includes(
      "**m: start-up phases (warm-up included)** (a chart in report.html; its figures are in the table below)",
    ),
  );
});

Deno.test("a cell without resources reads – in every resource column", () => {
  const run = syntheticRun();
  const { cells } = syntheticCells([{ framework: "candle" }, { framework: "onnx-cpp", status: "failed" }]);
  for (const c of cells) deepStrictEqual(resourceCells(c).map(text), Array(11).fill("–"));
  const table = resourceTable(cells, run);
  ok(table.kind === "table");
  equal(table.columns.length, 7 + 11);
  ok(table.columns.includes("EUR per 1M"));
  // And the whole report renders without a figure: no NaN, no "undefined", every section there.
  const doc = buildReport(run, cells);
  const md = blocksToMarkdown(doc);
  ok(!/NaN|undefined|Infinity/.test(md), md.match(/.*(NaN|undefined|Infinity).*/)?.[0]);
  for (
    const h of [
      "Recommendations",
      "Server CPU",
      "Memory",
      "Start-up",
      "Where the time goes",
      "Efficiency",
      "Cost",
    ]
  ) {
    ok(md.includes(`\n## ${h}\n`), h);
  }
  ok(md.includes("No recommendation for: m: only Candle (Rust) has ok cells"));
});

Deno.test("a cell with resources shows them with their units", () => {
  const { cells } = syntheticCells([{
    framework: "candle",
    loadTimeMs: 1234,
    resources: resources({
      cpuMs: 12.345,
      busy: 2.5,
      peak: 4.2,
      pssMiB: 800,
      loadPeakMiB: 1500,
      gflops: 41.25,
      percentOfPeak: 41.25,
      cost: 0.01234,
      phases: phases({ inference: 1 }, 1),
    }),
  }]);
  deepStrictEqual(resourceCells(cells[0]!).map(text), [
    "12.35",
    "385.78",
    "63",
    "2.50 / 4.00",
    "800 (200 + 600)",
    "1,500",
    "41.3",
    "41.3",
    "0.012",
    "1.00",
    "1,234",
  ]);
});

Deno.test("busy cores never read above the cpuset's CPUs", () => {
  equal(busyText(3.2, 4), "3.20");
  equal(busyText(3.2, 4, true), "3.20 of 4");
  const capped = busyText(4.03, 4) as { text: string; title: string };
  equal(capped.text, "4.00");
  ok(capped.title.includes("measured 4.030"));
  equal(busyText(undefined, 4), "–");
});

Deno.test("the CPU section: per model and length, at the lowest and highest load, steal when present", () => {
  const run = syntheticRun();
  const { cells } = syntheticCells([
    { framework: "candle", resources: resources({ cpuMs: 10, busy: 0.9, peak: 1 }) },
    {
      framework: "candle",
      scenario: "sweep",
      c: 16,
      resources: resources({ cpuMs: 12, busy: 3.9, peak: 4.1, steal: 1.5 }),
    },
    { framework: "onnx-cpp", resources: resources({ cpuMs: 8, busy: 0.8 }) },
    { framework: "onnx-cpp", scenario: "sweep", c: 16 },
  ]);
  const md = blocksToMarkdown({ title: "t", subtitle: "s", blocks: cpuSection(run, cells) });
  ok(
    md.includes(
      "| framework | scenario | seq | c | CPU ms / request | CPU ms / 1,000 tokens | busy cores, mean | busy cores, busiest window (of 4) | CPU % of cpuset | steal % of host CPU |",
    ),
    md,
  );
  ok(md.includes("| Candle (Rust) | sweep | 32 | 16 | 12.00 | 375.00 | 3.90 | 4.00 | 98 | 1.50 |"), md);
  ok(md.includes("| ONNX Runtime (C++) | sweep | 32 | 16 | – | – | – | – | – | – |"));
  ok(md.includes("1 ok cell(s) have no CPU figures"));
  ok(md.includes("1 cell(s) measured more busy cores than the cpuset has CPUs"));
  ok(md.includes("at most 1.50 % of all host CPU time"));
});

Deno.test("memoryRows(): the load peak and the steady state of the cell with the highest PSS", () => {
  const { cells } = syntheticCells([
    { framework: "candle", resources: resources({ pssMiB: 400, loadPeakMiB: 900 }) },
    { framework: "candle", seq: 128, resources: resources({ pssMiB: 600, loadPeakMiB: 950 }) },
    { framework: "onnx-cpp" },
  ]);
  const rows = memoryRows(cells);
  deepStrictEqual(rows.map((r) => [r.framework, r.cells]), [["onnx-cpp", 0], ["candle", 2]]);
  const candle = rows[1]!;
  equal(candle.loadPeakMiB, 950);
  equal(candle.pssMiB, 600);
  equal(candle.anonMiB, 150);
  equal(candle.fileMiB, 450);
  equal(candle.cellId, "m__candle__single_query__seq128");
});

Deno.test("cost and page cache sentences say what was done", () => {
  const run = syntheticRun();
  const s = costSentence(run);
  ok(s.includes("1.000 EUR per hour for test.large (made up for the test)"), s);
  ok(s.includes("pro-rated by the server cpuset's share of the host's CPUs (4 of 8 logical CPUs"));
  equal(money(12.345), "12.35");
  equal(money(0.12345), "0.123");
  equal(money(0.0012345), "0.0012");
  equal(money(1234.5), "1,235");
  equal(money(undefined), "–");
  ok(pageCacheSentence(run).includes("was not recorded"));
  ok(
    pageCacheSentence({ ...run, pageCache: "evicted" } as RunInfo).startsWith(
      "Before each container started",
    ),
  );
  ok(
    pageCacheSentence({ ...run, pageCache: "not fully evicted before candle started with m: 3.0 MiB stayed" })
      .includes("but were not always: not fully evicted"),
  );
});

Deno.test("the environment names the GEMM peak and every library's figure", () => {
  const run = syntheticRun({
    pageCache: "evicted",
    gemmPeak: {
      gflops: 512.5,
      library: "onnxruntime (embbench/onnxruntime)",
      cpus: "0-3",
      threads: 2,
      results: [
        { image: "embbench/onnxruntime", library: "onnxruntime", version: "1.21", size: 2048, gflops: 512.5 },
        {
          image: "embbench/torch",
          library: "torch",
          size: 2048,
          gflops: null as unknown as number,
          error: "import failed",
        },
      ],
      problems: ["openvino (embbench/openvino): exited with code 1"],
    },
  });
  const md = blocksToMarkdown(buildReport(run, []));
  ok(
    md.includes(
      "| fp32 GEMM peak | 512.5 GFLOP/s on the server cpuset (CPUs 0-3, 2 threads), reached by onnxruntime (embbench/onnxruntime)",
    ),
    md,
  );
  ok(md.includes("| embbench/onnxruntime | onnxruntime | 1.21 | 2048 × 2048 | 512.5 |  |"));
  ok(md.includes("| embbench/torch | torch | ? | 2048 × 2048 | – | import failed |"));
  ok(md.includes("- Not measured: openvino (embbench/openvino): exited with code 1"));
  ok(md.includes("| page cache | Before each container started, the model's files were evicted"));
  ok(
    md.includes(
      '| NUM_THREADS | "physical": one inference thread per physical core of the server cpuset; reported by the servers (/info threads): ONNX Runtime (C++) 2, Candle (Rust) 2 |',
    ),
  );
  ok(md.includes("| price | 1.000 EUR per hour, test.large (made up for the test) |"));
  // The methodology no longer claims sampling or RSS it does not do.
  ok(!/every 250 ms|RSS is anonymous|CPU % is of one CPU|peak RSS/.test(md));
  ok(md.includes("read right before oha is spawned and right after it exits"));
});
