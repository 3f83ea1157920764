/**
 * What batching buys: each framework served sequentially and batched (docker/CONTRACT.md "Serving
 * modes"), side by side, per model and sequence length: throughput at the highest concurrency both
 * modes measured, the ratio, the latency at concurrency 1 (what batching costs an idle server), and
 * the batch the server formed. Figures come from the cells; nothing is measured here.
 */
import { parseServerId } from "../lib/frameworks.ts";
import type { CellResult } from "../lib/results/results.ts";
import { type Block, type Cell, finite, fmt } from "./document.ts";
import { preferredCell } from "./resources.ts";
import { frameworkOrder, frameworkStyle } from "./summary.ts";

/** One framework's two modes at one sequence length. */
export interface ServingRow {
  framework: string;
  sequenceLength: number;
  /** The highest concurrency both modes have an ok closed-loop batch-1 cell at. */
  concurrency?: number;
  sequentialRps?: number;
  batchedRps?: number;
  /** batched / sequential throughput at that concurrency. */
  ratio?: number;
  /** p50 at concurrency 1, ms, in each mode. */
  sequentialP50?: number;
  batchedP50?: number;
  /** The batched server's mean rows per inference at that concurrency. */
  meanBatch?: number;
}

/** The rows for every framework measured in both modes (cells carry server ids, e.g. "onnx-cpp+batched"). */
export function servingRows(cells: CellResult[]): ServingRow[] {
  const ok = cells.filter((c) => c.status === "ok" && c.rateFraction === undefined && c.batchSize === 1);
  const mode = (c: CellResult) => parseServerId(c.framework);
  const frameworks = frameworkOrder(ok.map((c) => mode(c).framework));
  const rows: ServingRow[] = [];
  for (const seq of [...new Set(ok.map((c) => c.sequenceLength))].sort((a, b) => a - b)) {
    for (const f of frameworks) {
      const mine = ok.filter((c) => mode(c).framework === f && c.sequenceLength === seq);
      const seqCells = mine.filter((c) => mode(c).serving === "sequential");
      const batCells = mine.filter((c) => mode(c).serving === "batched");
      if (!seqCells.length || !batCells.length) continue;
      const levels = [...new Set(seqCells.map((c) => c.concurrency))]
        .filter((l) => batCells.some((c) => c.concurrency === l)).sort((a, b) => a - b);
      const top = levels.at(-1);
      const at = (group: CellResult[], l: number | undefined) =>
        l === undefined ? undefined : preferredCell(group.filter((c) => c.concurrency === l));
      const s = at(seqCells, top);
      const b = at(batCells, top);
      const p50 = (c: CellResult | undefined) => c?.latencyMs?.percentiles.p50.value ?? undefined;
      rows.push({
        framework: f,
        sequenceLength: seq,
        concurrency: top,
        sequentialRps: s?.textsPerSecond,
        batchedRps: b?.textsPerSecond,
        ratio: s?.textsPerSecond && b?.textsPerSecond ? b.textsPerSecond / s.textsPerSecond : undefined,
        sequentialP50: p50(at(seqCells, 1)),
        batchedP50: p50(at(batCells, 1)),
        meanBatch: b?.resources?.phases?.meanBatch,
      });
    }
  }
  return rows;
}

/** The section; empty when no framework was measured in both modes. */
export function servingSection(cells: CellResult[]): Block[] {
  const blocks: Block[] = [];
  for (const model of [...new Set(cells.map((c) => c.model))]) {
    const rows = servingRows(cells.filter((c) => c.model === model));
    if (!rows.length) continue;
    const f = (v: number | undefined, d: number) => (finite(v) ? fmt(v, d) : "–");
    blocks.push({ kind: "heading", level: 3, text: `${model}: sequential vs batched serving` }, {
      kind: "table",
      columns: [
        "framework",
        "seq",
        "c",
        "sequential texts/s",
        "batched texts/s",
        "batched / sequential",
        "mean batch formed",
        "p50 c=1 sequential ms",
        "p50 c=1 batched ms",
      ],
      rows: rows.map((r): Cell[] => [
        { text: frameworkStyle(r.framework).label, swatch: frameworkStyle(r.framework).colour },
        String(r.sequenceLength),
        r.concurrency === undefined ? "–" : String(r.concurrency),
        f(r.sequentialRps, 1),
        f(r.batchedRps, 1),
        finite(r.ratio) ? `${fmt(r.ratio, 2)}×` : "–",
        f(r.meanBatch, 1),
        f(r.sequentialP50, 2),
        f(r.batchedP50, 2),
      ]),
    });
  }
  if (!blocks.length) return [];
  return [
    { kind: "heading", level: 2, text: "Serving modes: what batching buys" },
    {
      kind: "paragraph",
      text:
        "Each framework served sequentially (each request its own inference, one at a time) and batched " +
        "(queued requests joined into one inference, docker/CONTRACT.md), at the highest concurrency both modes " +
        "measured with batch-1 requests: throughput in each mode and their ratio, the mean rows per inference the " +
        "batched server formed (from its /metrics), and the p50 at concurrency 1, where there is nothing to batch " +
        "and the batcher can only cost time. Not tested: read the verdicts of the cells themselves.",
    },
    ...blocks,
  ];
}
