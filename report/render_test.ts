import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { REPO_ROOT } from "../lib/context.ts";
import { FRAMEWORKS } from "../lib/frameworks.ts";
import type { CellResult } from "../lib/results/results.ts";
import { type LoadedRun, loadRun } from "../tasks/report.ts";
import { checkPage, skipBrowserTests } from "./browser.ts";
import { buildReport } from "./report.ts";
import { percentile } from "./summary.ts";
import { renderReport } from "./render.ts";

/** A real run (report/testdata/make_fixture.sh): tiny-xlmr, 6 frameworks, 2 sequence lengths, PyTorch OOM-killed. */
export const FIXTURE = new URL("./testdata/fixture-run", import.meta.url).pathname;
const GOLDEN = new URL("./testdata/fixture-report.md", import.meta.url).pathname;

interface ChartJson {
  id: string;
  config: {
    type: string;
    data: {
      labels?: unknown[];
      datasets: { label: string; borderColor: string; data: (number | null | { x: number; y: number })[] }[];
    };
  };
}

/** The fixture and its rendered report, read once when a test needs them. */
let rendered:
  | Promise<{ fixture: LoadedRun; cells: CellResult[]; html: string; markdown: string; charts: ChartJson[] }>
  | undefined;
const load = () =>
  rendered ??= (async () => {
    const fixture = await loadRun(FIXTURE);
    const cells = [...fixture.cells.values()];
    const { html, markdown } = await renderReport(fixture.run, cells, fixture.samples);
    const charts = JSON.parse(/of (\[.*\])\) \{/.exec(html)![1]!) as ChartJson[];
    return { fixture, cells, html, markdown, charts };
  })();

Deno.test("the fixture is the real run it claims to be", async () => {
  const { fixture, cells } = await load();
  // 6 frameworks × 2 sequence lengths × (2 scenarios + 3 sweep levels + 2 open-loop rates)
  equal(cells.length, 84);
  const failed = cells.filter((c) => c.status === "failed");
  equal(failed.length, 14);
  ok(failed.every((c) => c.framework === "torch" && /OOM killed/.test(c.failure!)), failed[0]?.failure);
  for (const c of cells.filter((c) => c.status === "ok")) {
    equal(c.counts!.passes, 2, c.id);
    equal(c.passes!.length, 2, c.id);
    equal(c.latencyMs!.n, c.counts!.successful, c.id);
    equal(fixture.samples.get(c.id)!.latencies.length, c.counts!.successful, `${c.id}: its request log`);
  }
  equal(cells.filter((c) => c.status === "ok" && c.openLoop).length, 20);
});

Deno.test("the report holds every section, and one summary row per scenario and sequence length", async () => {
  const { fixture, cells, html, markdown } = await load();
  ok(!/\{\{\s*\w+\s*\}\}/.test(html), "no placeholder left");
  for (
    const h of [
      "Summary",
      "Recommendations",
      "Charts: tiny-xlmr",
      "Server CPU",
      "Memory",
      "Start-up",
      "Where the time goes",
      "Efficiency",
      "Cost",
      "Every cell",
      "Failed cells",
      "Environment",
      "Methodology",
    ]
  ) {
    ok(html.includes(`>${h}</h2>`), `section ${h}`);
    ok(markdown.includes(`\n## ${h}\n`), `markdown section ${h}`);
  }
  ok(markdown.includes("\n### tiny-xlmr: latency under a fixed arrival rate\n"));
  const summary = buildReport(fixture.run, cells, fixture.samples).blocks.find((b) => b.kind === "table")!;
  ok(summary.kind === "table");
  deepStrictEqual(
    summary.rows.map((r) => `${r[1]}/${r[2]}`),
    [
      "32/single_query",
      "32/batch_processing",
      "32/sweep",
      "128/single_query",
      "128/batch_processing",
      "128/sweep",
    ],
  );
  // Every verdict names a leader, a margin and a test's outcome (or why there is none).
  for (const r of summary.rows) {
    for (const v of r.slice(5)) {
      const text = typeof v === "string" ? v : v.text;
      ok(
        /; [\d.]+ % (lower|higher) than .*; (significant|not significant|not tested)/.test(text),
        text,
      );
    }
  }
});

Deno.test("every chart is filled from the cell files, in each framework's own colour", async () => {
  const { fixture, charts } = await load();
  const cell = (id: string) => fixture.cells.get(id)!;
  deepStrictEqual(charts.map((c) => c.id), [
    "lat-tiny-xlmr-32",
    "tput-tiny-xlmr-32",
    "lat-tiny-xlmr-128",
    "tput-tiny-xlmr-128",
    "batch-tiny-xlmr-32",
    "batch-tiny-xlmr-128",
    "rate-tiny-xlmr-32",
    "rate-tiny-xlmr-128",
    "memory-tiny-xlmr",
    "startup-tiny-xlmr",
    "cold-tiny-xlmr",
    "phases-tiny-xlmr-32",
    "phases-tiny-xlmr-128",
  ]);
  // Stacked charts: a dataset per part (memory kind, start-up phase, request phase), a bar per framework.
  const stacked = /^(memory|startup|phases)-/;
  for (const c of charts.filter((c) => stacked.test(c.id))) {
    for (const label of c.config.data.labels!) {
      ok(FRAMEWORKS.some((f) => String(label).startsWith(f.label)), `${c.id}: ${label} is a framework`);
    }
    ok(c.config.data.datasets.every((d) => d.data.some((p) => p !== null)), `${c.id} has data`);
  }
  for (const c of charts.filter((c) => !stacked.test(c.id))) {
    ok(c.config.data.datasets.length > 0, `${c.id} has datasets`);
    for (const d of c.config.data.datasets) {
      const f = FRAMEWORKS.find((f) => d.label.startsWith(f.label))!;
      ok(f, `${c.id}: ${d.label} is a framework`);
      equal(d.borderColor, f.colour, `${c.id}: ${d.label} in its colour`);
      // A tail percentile may have no point at all when no cell's sample supports it.
      if (!/ p(95|99)$/.test(d.label)) ok(d.data.some((p) => p !== null), `${c.id}: ${d.label} has data`);
    }
  }
  // Latency: p50, p95 and p99 per framework that ran (PyTorch never started), points = sweep levels.
  const lat = charts[0]!.config.data.datasets;
  equal(lat.length, 5 * 3);
  const cpp50 = lat.find((d) => d.label === "ONNX Runtime (C++) p50")!;
  deepStrictEqual(
    cpp50.data,
    [1, 2, 4].map((c) => ({ x: c, y: percentile(cell(`tiny-xlmr__onnx-cpp__sweep__seq32__c${c}`), "p50") })),
  );
  // A percentile the cell's sample cannot support is left out, not drawn.
  const cpp99 = lat.find((d) => d.label === "ONNX Runtime (C++) p99")!;
  deepStrictEqual(
    cpp99.data,
    [1, 2, 4].map((c) => ({ x: c, y: percentile(cell(`tiny-xlmr__onnx-cpp__sweep__seq32__c${c}`), "p99") }))
      .filter((p) => p.y !== undefined),
  );
  // Open loop: p50 against the offered rate.
  const rate = charts.find((c) => c.id === "rate-tiny-xlmr-32")!.config.data.datasets;
  const ovRate = rate.find((d) => d.label === "OpenVINO p50")!;
  deepStrictEqual(
    ovRate.data,
    [50, 90].map((f) => cell(`tiny-xlmr__openvino__rate__seq32__f${f}`)).map((c) => ({
      x: c.openLoop!.offeredRps,
      y: percentile(c, "p50"),
    })),
  );
  const batch = charts.find((c) => c.id === "batch-tiny-xlmr-128")!.config.data;
  deepStrictEqual(batch.labels, ["batch 1", "batch 8"]);
  deepStrictEqual(batch.datasets.find((d) => d.label === "Candle (Rust)")!.data, [
    cell("tiny-xlmr__candle__single_query__seq128").textsPerSecond,
    cell("tiny-xlmr__candle__batch_processing__seq128").textsPerSecond,
  ]);
});

Deno.test("failed cells, environment and methodology come from the run", async () => {
  const { fixture, cells, html, markdown } = await load();
  for (const c of cells.filter((c) => c.status === "failed")) {
    ok(markdown.includes(`| ${c.id} | PyTorch | pass 1: container exited with code 137 (OOM killed)`));
  }
  for (const [f, v] of Object.entries(fixture.run.frameworks)) {
    ok(html.includes(v.imageId!) && markdown.includes(v.imageId!), `image id of ${f}`);
  }
  ok(markdown.includes(fixture.run.environment.cpu.model));
  ok(markdown.includes("Passes: every cell is measured in 2 pass(es)."));
  ok(markdown.includes("windows of 1 s"));
  ok(/One Holm–Bonferroni correction covers all \d+ tested verdicts of this summary/.test(markdown));
  ok(/\d+ of 70 cells reached steady state in every pass/.test(markdown));
  ok(markdown.includes("needs ≥ 10,000 requests"), "an unsupported p99.9 says what it needs");
  ok(markdown.includes("Each one had to pass 'embbench verify'"));
  ok(markdown.includes("with a 200m memory limit"));
  ok(markdown.includes("| sweep | 1, 2, 4 | 1 | 150 per level |"));
});

Deno.test("the markdown twin matches the reviewed copy (UPDATE_GOLDEN=1 rewrites it)", async () => {
  const { markdown } = await load();
  if (Deno.env.get("UPDATE_GOLDEN") === "1") await Deno.writeTextFile(GOLDEN, markdown);
  equal(markdown, await Deno.readTextFile(GOLDEN));
  // Each of the 84 cells is one row of the every-cell table and one of its resources table.
  const rows = markdown.split("\n").filter((l) =>
    /^\| tiny-xlmr \| [^|]+ \| (single_query|batch_processing|sweep|rate \d+ %[^|]*) \| \d+ \| \d+ \| \d+ \| (ok|failed) \|/
      .test(l)
  );
  equal(rows.length, 2 * 84);
});

Deno.test({
  name: "the fixture report opens offline in Chromium with every chart drawn (screenshot kept)",
  ignore: await skipBrowserTests(),
  async fn() {
    const { fixture, html, charts } = await load();
    const dir = await Deno.makeTempDir({ prefix: "embbench-report-" });
    try {
      const page = join(dir, "report.html");
      await Deno.writeTextFile(page, html);
      const artifacts = join(REPO_ROOT, "results", "test-artifacts");
      await Deno.mkdir(artifacts, { recursive: true });
      const check = await checkPage(page, join(artifacts, "fixture-report.png"));
      deepStrictEqual(check.consoleErrors, []);
      deepStrictEqual(check.requests, []);
      deepStrictEqual(check.canvases.map((c) => c.id), charts.map((c) => c.id));
      for (const c of check.canvases) ok(c.drawn, `${c.id} drawn`);
      equal(check.title, `embbench run ${fixture.run.runId}`);
      ok((await Deno.stat(join(artifacts, "fixture-report.png"))).size > 10_000);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
