/**
 * Two runs side by side: for every cell both runs hold, each headline figure in both, its change,
 * and whether the change is significant (one test per figure on the two cells' per-request data or
 * window rates, one Holm correction over every change of the comparison). Cells only one run holds,
 * and cells whose status changed, are listed apart.
 */
import type { CellResult, RunInfo } from "../lib/results/results.ts";
import {
  type CellSample,
  decide,
  type Difference,
  FAMILY_ALPHA,
  passNoise,
  testDifference,
  type Verdict as Test,
} from "../lib/stats/verdicts.ts";
import { type Block, type Cell, finite, fmt, type ReportDocument } from "./document.ts";
import { CELL_COLUMNS, cellIdentity, sortCells } from "./report.ts";
import { frameworkStyle, type Metric, METRICS, testText } from "./summary.ts";

export interface Change {
  metric: Metric;
  a?: number;
  b?: number;
  /** (b − a) / a × 100. */
  changePercent?: number;
  /** The test of a against b after the comparison's correction; absent for untested figures. */
  test?: Test;
  /** True when the test found the change significant. */
  beyondNoise?: boolean;
  /** Whether b is better than a, for this metric's direction; undefined when equal or unknown. */
  improved?: boolean;
}

export interface CellComparison {
  id: string;
  a: CellResult;
  b: CellResult;
  changes: Change[];
}

const COMPARED = [METRICS.texts, METRICS.p50, METRICS.p99, METRICS.rss];

/** One cell's figures in both runs, untested (see testChanges). */
export function compareCell(a: CellResult, b: CellResult): CellComparison {
  const changes = COMPARED.map((metric): Change => {
    const va = a.status === "ok" ? metric.value(a) : undefined;
    const vb = b.status === "ok" ? metric.value(b) : undefined;
    if (!finite(va) || !finite(vb)) return { metric, a: va, b: vb };
    const changePercent = va === 0 ? undefined : ((vb - va) / va) * 100;
    return {
      metric,
      a: va,
      b: vb,
      changePercent,
      improved: vb === va ? undefined : metric.lowerIsBetter ? vb < va : vb > va,
    };
  });
  return { id: a.id, a, b, changes };
}

/** Tests every change of a comparison and corrects over all of them at once. */
export function testChanges(
  cells: CellComparison[],
  samplesA: Map<string, CellSample>,
  samplesB: Map<string, CellSample>,
): void {
  const pending: { ch: Change; d: Difference }[] = [];
  const noise = passNoise([...samplesA.values(), ...samplesB.values()]);
  for (const c of cells) {
    for (const ch of c.changes) {
      if (!ch.metric.tested || !finite(ch.a) || !finite(ch.b)) continue;
      const sa = samplesA.get(c.id);
      const sb = samplesB.get(c.id);
      const ra = c.a.openLoop?.offeredRps;
      const rb = c.b.openLoop?.offeredRps;
      // An open-loop cell's latency depends on its offered rate, which each run takes from its own capacity.
      const rates = ra !== undefined && rb !== undefined && Math.abs(ra - rb) > 0.01 * Math.max(ra, rb)
        ? `offered rates differ (${fmt(ra, 1)} and ${fmt(rb, 1)} req/s)`
        : undefined;
      pending.push({
        ch,
        d: rates
          ? { metric: ch.metric.tested, method: "none", untestable: rates }
          : sa && sb
          ? testDifference(ch.metric.tested, sa, sb, noise)
          : { metric: ch.metric.tested, method: "none", untestable: "no per-request data" },
      });
    }
  }
  decide(pending.map((p) => p.d)).forEach((t, i) => {
    pending[i]!.ch.test = t;
    pending[i]!.ch.beyondNoise = t.significant;
  });
}

/** How a change reads: "12.1 → 13.4 (+10.7 %)". */
export function changeText(c: Change): string {
  if (!finite(c.a) || !finite(c.b)) return `${fmt(c.a, c.metric.digits)} → ${fmt(c.b, c.metric.digits)}`;
  const pct = finite(c.changePercent)
    ? ` (${c.changePercent >= 0 ? "+" : ""}${fmt(c.changePercent, 1)} %)`
    : "";
  const flag = c.beyondNoise === true ? (c.improved ? " better" : " worse") : "";
  return `${fmt(c.a, c.metric.digits)} → ${fmt(c.b, c.metric.digits)}${pct}${flag}`;
}

function changeCell(c: Change): Cell {
  const className = c.beyondNoise === undefined
    ? undefined
    : c.beyondNoise
    ? `beyond ${c.improved ? "better" : "worse"}`
    : "noise";
  return {
    text: changeText(c),
    className,
    title: testText(c.test),
  };
}

function environmentDiff(a: RunInfo, b: RunInfo): Block {
  const rows: [string, string, string][] = [
    ["CPU", a.environment.cpu.model, b.environment.cpu.model],
    [
      "server / loadgen cpusets",
      `${a.cpus.server} / ${a.cpus.loadgen}`,
      `${b.cpus.server} / ${b.cpus.loadgen}`,
    ],
    ["kernel", a.environment.kernel, b.environment.kernel],
    ["Docker engine", a.environment.tools.dockerServer ?? "?", b.environment.tools.dockerServer ?? "?"],
    ["oha", a.environment.tools.oha ?? "?", b.environment.tools.oha ?? "?"],
    ["embbench commit", a.environment.git.commit ?? "?", b.environment.git.commit ?? "?"],
    ["passes", String(a.config.measurement.passes), String(b.config.measurement.passes)],
  ];
  for (const f of new Set([...Object.keys(a.frameworks), ...Object.keys(b.frameworks)])) {
    const show = (r: RunInfo) => {
      const v = r.frameworks[f];
      return v
        ? `${v.info?.framework_version ?? "?"}, image ${v.imageId?.slice(7, 19) ?? v.image}`
        : "not run";
    };
    rows.push([frameworkStyle(f).label, show(a), show(b)]);
  }
  return {
    kind: "table",
    columns: ["", a.runId, b.runId, "same?"],
    textColumns: 4,
    className: "wrap",
    rows: rows.map(([k, x, y]) => [k, x, y, x === y ? "same" : { text: "differs", className: "worse" }]),
  };
}

/** The comparison of run b against run a. */
export function buildComparison(
  a: { run: RunInfo; cells: CellResult[]; samples?: Map<string, CellSample> },
  b: { run: RunInfo; cells: CellResult[]; samples?: Map<string, CellSample> },
): ReportDocument {
  const order = [...new Set([...a.run.config.scenarios, ...b.run.config.scenarios].map((s) => s.name))];
  const inB = new Map(b.cells.map((c) => [c.id, c]));
  const inA = new Set(a.cells.map((c) => c.id));
  const common = sortCells(a.cells.filter((c) => inB.has(c.id)), order).map((c) =>
    compareCell(c, inB.get(c.id)!)
  );
  const onlyA = sortCells(a.cells.filter((c) => !inB.has(c.id)), order);
  const onlyB = sortCells(b.cells.filter((c) => !inA.has(c.id)), order);
  const bothOk = common.filter((c) => c.a.status === "ok" && c.b.status === "ok");
  testChanges(bothOk, a.samples ?? new Map(), b.samples ?? new Map());
  const tested = bothOk.flatMap((c) => c.changes.filter((ch) => ch.test?.significant !== undefined));
  const statusChanged = common.filter((c) => c.a.status !== c.b.status);
  const flagged = bothOk.flatMap((c) => c.changes.filter((ch) => ch.beyondNoise).map((ch) => ({ c, ch })));
  const better = flagged.filter((f) => f.ch.improved).length;

  const blocks: Block[] = [
    { kind: "heading", level: 2, text: "Summary" },
    {
      kind: "list",
      items: [
        `${common.length} cells in both runs (${bothOk.length} ok in both), ${onlyA.length} only in ${a.run.runId}, ${onlyB.length} only in ${b.run.runId}.`,
        `${flagged.length} of ${tested.length} tested changes are significant: ${better} better, ${
          flagged.length - better
        } worse. Latency changes use the Brown–Mood quantile test on every measured request of both cells, throughput changes Welch's t-test on their window throughputs, and each must also hold on the cells' per-pass figures against the pass-to-pass noise pooled over both runs; one Holm–Bonferroni correction covers every change, so the chance of calling any unchanged cell changed is at most ${
          FAMILY_ALPHA * 100
        } %.`,
        `${statusChanged.length} ${
          statusChanged.length === 1 ? "cell" : "cells"
        } changed status (ok ↔ failed).`,
      ],
    },
  ];
  if (bothOk.length) {
    const tput = bothOk.map((c) => ({ c, ch: c.changes[0]! })).filter((x) => finite(x.ch.changePercent));
    blocks.push({
      kind: "charts",
      charts: [{
        id: "tput-change",
        title: `Throughput change per cell, ${b.run.runId} against ${a.run.runId} (%)`,
        note: "Bars in the framework's colour; positive is more texts per second in the second run.",
        config: {
          type: "bar",
          data: {
            labels: tput.map((x) => x.c.id),
            datasets: [{
              label: "throughput change (%)",
              data: tput.map((x) => x.ch.changePercent),
              backgroundColor: tput.map((x) => frameworkStyle(x.c.a.framework).colour),
            }],
          },
          options: {
            indexAxis: "y",
            plugins: { legend: { display: false } },
            scales: { x: { title: { display: true, text: "change (%)" } } },
          },
        },
      }],
    });
  }
  blocks.push(
    { kind: "heading", level: 2, text: "Cells in both runs" },
    {
      kind: "paragraph",
      text:
        `Each figure reads "${a.run.runId} → ${b.run.runId} (change)". "better" or "worse" marks significant changes; hover a figure for its test.`,
    },
    {
      kind: "table",
      columns: [
        ...CELL_COLUMNS,
        ...COMPARED.map((m) => `${m.label} (${m.unit})`),
      ],
      textColumns: 3,
      rows: common.map((c) => [
        ...cellIdentity(c.a, c.a.status === c.b.status ? c.a.status : `${c.a.status} → ${c.b.status}`),
        ...c.changes.map(changeCell),
      ]),
    },
  );
  if (statusChanged.length) {
    blocks.push({ kind: "heading", level: 2, text: "Cells whose status changed" }, {
      kind: "table",
      columns: ["cell", a.run.runId, b.run.runId],
      textColumns: 3,
      className: "wrap",
      rows: statusChanged.map((c) => [
        c.id,
        c.a.status === "ok" ? "ok" : `failed: ${c.a.failure ?? ""}`,
        c.b.status === "ok" ? "ok" : `failed: ${c.b.failure ?? ""}`,
      ]),
    });
  }
  for (const [label, list] of [[a.run.runId, onlyA], [b.run.runId, onlyB]] as const) {
    if (!list.length) continue;
    blocks.push({ kind: "heading", level: 2, text: `Cells only in ${label}` }, {
      kind: "list",
      items: list.map((c) => `${c.id} (${c.status})`),
    });
  }
  blocks.push({ kind: "heading", level: 2, text: "Environments" }, environmentDiff(a.run, b.run));
  return {
    title: `embbench: ${b.run.runId} against ${a.run.runId}`,
    subtitle: `${common.length} cells in common; ${flagged.length} significant changes.${
      a.run.quick || b.run.quick ? " At least one is a --quick run: not a benchmark result." : ""
    }`,
    blocks,
  };
}
