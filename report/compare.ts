/**
 * Two runs side by side: for every cell both runs hold, each headline figure in both, its change,
 * and whether the change is beyond the noise the runs measured (their repetition ranges do not
 * overlap). Cells only one run holds, and cells whose status changed, are listed apart.
 */
import { distinct } from "../lib/stats/noise.ts";
import type { CellResult, RunInfo } from "../lib/results/results.ts";
import { type Block, type Cell, finite, fmt, type ReportDocument } from "./document.ts";
import { CELL_COLUMNS, cellIdentity, sortCells } from "./report.ts";
import { frameworkStyle, type Metric, METRICS } from "./summary.ts";

export interface Change {
  metric: Metric;
  a?: number;
  b?: number;
  /** (b − a) / a × 100. */
  changePercent?: number;
  /** True when the runs' repetition ranges do not overlap; undefined when either lacks noise. */
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
      beyondNoise: distinct(metric.spread(a), metric.spread(b)),
      improved: vb === va ? undefined : metric.lowerIsBetter ? vb < va : vb > va,
    };
  });
  return { id: a.id, a, b, changes };
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
    title: c.beyondNoise === undefined
      ? "noise not measured in one of the runs"
      : c.beyondNoise
      ? "the runs' repetition ranges do not overlap"
      : "within the noise: the runs' repetition ranges overlap",
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
    ["repetitions", String(a.config.repetitions ?? 1), String(b.config.repetitions ?? 1)],
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
  a: { run: RunInfo; cells: CellResult[] },
  b: { run: RunInfo; cells: CellResult[] },
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
  const statusChanged = common.filter((c) => c.a.status !== c.b.status);
  const flagged = bothOk.flatMap((c) => c.changes.filter((ch) => ch.beyondNoise).map((ch) => ({ c, ch })));
  const better = flagged.filter((f) => f.ch.improved).length;

  const blocks: Block[] = [
    { kind: "heading", level: 2, text: "Summary" },
    {
      kind: "list",
      items: [
        `${common.length} cells in both runs (${bothOk.length} ok in both), ${onlyA.length} only in ${a.run.runId}, ${onlyB.length} only in ${b.run.runId}.`,
        `${flagged.length} changes beyond the noise: ${better} better, ${
          flagged.length - better
        } worse. A change is beyond the noise when the two runs' ranges over their repetitions do not overlap.`,
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
        `Each figure reads "${a.run.runId} → ${b.run.runId} (change)". "better" or "worse" marks changes beyond the noise; the others are within it, or one run measured no noise.`,
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
    subtitle: `${common.length} cells in common; ${flagged.length} changes beyond the noise.${
      a.run.quick || b.run.quick ? " At least one is a --quick run: not a benchmark result." : ""
    }`,
    blocks,
  };
}
