/**
 * Renders a run folder as one static HTML file (Chart.js inlined, no network needed to view it).
 * It only presents what the collectors measured: no figure is computed here beyond unit changes.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { CellResult, RunInfo } from "../lib/results.ts";

const esc = (s: unknown) =>
  String(s ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );

const num = (v: number | null | undefined, digits = 1) =>
  v === undefined || v === null || Number.isNaN(v)
    ? "–"
    : v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

const mib = (
  bytes: number | null | undefined,
) => (bytes === undefined || bytes === null ? undefined : bytes / 2 ** 20);

/** Chart.js's UMD bundle from the pinned npm package. */
export async function chartJsSource(): Promise<string> {
  const require = createRequire(import.meta.url);
  return await Deno.readTextFile(join(dirname(require.resolve("chart.js")), "chart.umd.min.js"));
}

/** A chart the page draws: Chart.js configuration only. */
interface ChartSpec {
  id: string;
  title: string;
  config: Record<string, unknown>;
}

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

function sweepCharts(cells: CellResult[]): ChartSpec[] {
  const charts: ChartSpec[] = [];
  const sweep = cells.filter((c) => c.scenario === "sweep" && c.status === "ok");
  const keys = [...new Set(sweep.map((c) => `${c.model}\0${c.sequenceLength}`))];
  for (const key of keys) {
    const [model, seq] = key.split("\0");
    const group = sweep.filter((c) => c.model === model && String(c.sequenceLength) === seq);
    const frameworks = [...new Set(group.map((c) => c.framework))];
    const levels = [...new Set(group.map((c) => c.concurrency))].sort((a, b) => a - b);
    const dataset = (metric: (c: CellResult) => number | undefined) =>
      frameworks.map((f, i) => ({
        label: f,
        borderColor: PALETTE[i % PALETTE.length],
        backgroundColor: PALETTE[i % PALETTE.length],
        data: levels.map((l) => metric(group.find((c) => c.framework === f && c.concurrency === l)!) ?? null),
      }));
    const axes = (y: string) => ({
      scales: {
        x: { title: { display: true, text: "concurrency" } },
        y: { title: { display: true, text: y } },
      },
    });
    charts.push({
      id: `sweep-tput-${charts.length}`,
      title: `${model}, ${seq} tokens: throughput vs concurrency`,
      config: {
        type: "line",
        data: { labels: levels, datasets: dataset((c) => c?.oha?.throughputRps) },
        options: axes("successful requests / s"),
      },
    });
    charts.push({
      id: `sweep-p99-${charts.length}`,
      title: `${model}, ${seq} tokens: p99 latency vs concurrency`,
      config: {
        type: "line",
        data: { labels: levels, datasets: dataset((c) => c?.oha?.latencyMs.p99) },
        options: axes("p99 latency (ms)"),
      },
    });
  }
  return charts;
}

function scenarioCharts(cells: CellResult[]): ChartSpec[] {
  const ok = cells.filter((c) => c.scenario !== "sweep" && c.status === "ok");
  const charts: ChartSpec[] = [];
  for (const model of [...new Set(ok.map((c) => c.model))]) {
    const group = ok.filter((c) => c.model === model);
    const frameworks = [...new Set(group.map((c) => c.framework))];
    const labels = [...new Set(group.map((c) => `${c.scenario} / ${c.sequenceLength}`))];
    const bars = (metric: (c: CellResult) => number | undefined) =>
      frameworks.map((f, i) => ({
        label: f,
        backgroundColor: PALETTE[i % PALETTE.length],
        data: labels.map((l) => {
          const c = group.find((c) => c.framework === f && `${c.scenario} / ${c.sequenceLength}` === l);
          return c ? metric(c) ?? null : null;
        }),
      }));
    charts.push({
      id: `scen-p50-${model}`,
      title: `${model}: p50 latency per scenario / sequence length (ms)`,
      config: { type: "bar", data: { labels, datasets: bars((c) => c.oha?.latencyMs.p50) } },
    });
    charts.push({
      id: `scen-texts-${model}`,
      title: `${model}: texts per second per scenario / sequence length`,
      config: { type: "bar", data: { labels, datasets: bars((c) => c.textsPerSecond) } },
    });
    charts.push({
      id: `scen-rss-${model}`,
      title: `${model}: peak RSS per scenario / sequence length (MiB)`,
      config: { type: "bar", data: { labels, datasets: bars((c) => mib(c.resources?.rssBytesPeak)) } },
    });
  }
  return charts;
}

function cellTable(cells: CellResult[]): string {
  const head = [
    "model",
    "framework",
    "scenario",
    "seq",
    "batch",
    "c",
    "status",
    "req/s",
    "texts/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "p99.9 ms",
    "errors",
    "CPU % mean",
    "RSS MiB peak",
    "load ms",
    "cold ms",
  ];
  const rows = cells.map((c) =>
    `<tr class="${c.status}"><td>${esc(c.model)}</td><td>${esc(c.framework)}</td><td>${
      esc(c.scenario)
    }</td><td>${c.sequenceLength}</td><td>${c.batchSize}</td><td>${c.concurrency}</td><td title="${
      esc(c.failure)
    }">${c.status === "ok" ? "ok" : `failed: ${esc(c.failure?.slice(0, 80))}`}</td><td>${
      num(c.oha?.throughputRps)
    }</td><td>${num(c.textsPerSecond)}</td><td>${num(c.oha?.latencyMs.p50, 2)}</td><td>${
      num(c.oha?.latencyMs.p95, 2)
    }</td><td>${num(c.oha?.latencyMs.p99, 2)}</td><td>${num(c.oha?.latencyMs.p999, 2)}</td><td>${
      c.oha ? `${num(c.oha.errorRate * 100, 2)} %` : "–"
    }</td><td>${num(c.resources?.cpuPercentMean, 0)}</td><td>${
      num(mib(c.resources?.rssBytesPeak), 0)
    }</td><td>${num(c.loadTimeMs, 0)}</td><td>${num(c.firstRequestMs, 1)}</td></tr>`
  );
  return `<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join("")}</tr></thead><tbody>${
    rows.join("\n")
  }</tbody></table>`;
}

function environment(run: RunInfo): string {
  const e = run.environment;
  const rows: [string, string][] = [
    [
      "CPU",
      `${e.cpu.model} (${e.cpu.logicalCpus} logical, ${e.cpu.physicalCores} physical, ${e.cpu.threadsPerCore} per core)`,
    ],
    ["SIMD", e.cpu.simdFlags.join(" ") || "none"],
    ["server / loadgen CPUs", `${run.cpus.server} / ${run.cpus.loadgen}`],
    ["memory", `${num(e.memoryBytes / 2 ** 30, 1)} GiB`],
    ["OS, kernel", `${e.os}, ${e.kernel}`],
    ["Docker", `${e.tools.dockerServer ?? "?"} (client ${e.tools.docker ?? "?"})`],
    ["oha, Deno", `${e.tools.oha ?? "?"}, ${e.tools.deno}`],
    ["git", `${e.git.commit ?? "?"}${e.git.dirty ? " (with uncommitted changes)" : ""}`],
    ["started, ended", `${run.startedAt}, ${run.endedAt ?? run.interrupted ?? "in progress"}`],
  ];
  for (const [f, v] of Object.entries(run.frameworks)) {
    const i = v.info ?? {};
    rows.push([
      `framework ${f}`,
      `${esc(i.framework_version ?? "?")}; threads ${esc(i.threads ?? "?")}; cpus ${
        esc(i.cpus ?? "?")
      }; image ${esc(v.imageId?.slice(7, 19) ?? v.image)}; ${esc(JSON.stringify(i.build ?? {}))}`,
    ]);
  }
  return `<table class="env">${
    rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${k.startsWith("framework") ? v : esc(v)}</td></tr>`)
      .join("")
  }</table>`;
}

/** The whole page. */
export async function renderReport(run: RunInfo, cells: CellResult[]): Promise<string> {
  const order = (c: CellResult) =>
    `${c.model}|${c.sequenceLength.toString().padStart(6, "0")}|${c.scenario}|${
      c.concurrency.toString().padStart(4, "0")
    }|${c.framework}`;
  cells = [...cells].sort((a, b) => order(a).localeCompare(order(b)));
  const charts = [...scenarioCharts(cells), ...sweepCharts(cells)];
  const failed = cells.filter((c) => c.status === "failed").length;
  const template = await Deno.readTextFile(new URL("./template.html", import.meta.url));
  const fill: Record<string, string> = {
    TITLE: `embbench run ${esc(run.runId)}`,
    SUMMARY: `${cells.length} cells, ${cells.length - failed} ok, ${failed} failed${
      run.quick ? " — a --quick run: small model, short cells, not a benchmark result" : ""
    }`,
    ENVIRONMENT: environment(run),
    CHARTS: charts.map((c) =>
      `<figure><figcaption>${esc(c.title)}</figcaption><canvas id="${c.id}"></canvas></figure>`
    ).join("\n"),
    TABLE: cellTable(cells),
    CONFIG: esc(JSON.stringify(run.config, null, 2)),
    CHART_JS: (await chartJsSource()).replaceAll("</script", "<\\/script"),
    CHART_DATA: JSON.stringify(charts.map((c) => ({ id: c.id, config: c.config }))).replaceAll("</", "<\\/"),
  };
  return template.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => fill[k] ?? "");
}
