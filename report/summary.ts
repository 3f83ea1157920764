/**
 * Summaries of recorded cells: the figures the report ranks frameworks by, which framework leads
 * each scenario, by how much, and whether the lead is statistically significant (lib/stats/verdicts.ts:
 * one test per verdict on the per-request data or window rates, one Holm correction over the whole
 * summary). Nothing is measured here; every value comes from the cell files and request logs.
 */
import { findFramework, FRAMEWORKS, parseServerId, SERVING_MODES } from "../lib/frameworks.ts";
import type { CellResult } from "../lib/results/results.ts";
import type { PercentileKey } from "../lib/stats/quantiles.ts";
import {
  type CellSample,
  decide,
  type Difference,
  passNoise,
  testDifference,
  type TestedMetric,
  type Verdict as Test,
} from "../lib/stats/verdicts.ts";
import { finite, fmt } from "./document.ts";

/** A figure the report ranks by. */
export interface Metric {
  id: "p50" | "p99" | "texts" | "rss" | "cost";
  label: string;
  unit: string;
  lowerIsBetter: boolean;
  /** Decimal places to show. */
  digits: number;
  value(c: CellResult): number | undefined;
  /** The test that decides whether two cells differ in this figure; none for memory (one figure per pass) or cost. */
  tested?: TestedMetric;
}

const MIB = 2 ** 20;

/** A percentile of a cell, or undefined when its sample cannot support it. */
export const percentile = (c: CellResult, key: PercentileKey) => c.latencyMs?.percentiles[key].value;

/** The figures of the summary and the comparison (cost is ranked by the recommendations only). */
export const METRICS: Record<Exclude<Metric["id"], "cost">, Metric> = {
  p50: {
    id: "p50",
    label: "p50 latency",
    unit: "ms",
    lowerIsBetter: true,
    digits: 2,
    value: (c) => percentile(c, "p50"),
    tested: "p50",
  },
  p99: {
    id: "p99",
    label: "p99 latency",
    unit: "ms",
    lowerIsBetter: true,
    digits: 2,
    value: (c) => percentile(c, "p99"),
    tested: "p99",
  },
  texts: {
    id: "texts",
    label: "throughput",
    unit: "texts/s",
    lowerIsBetter: false,
    digits: 1,
    value: (c) => c.textsPerSecond,
    tested: "throughput",
  },
  rss: {
    id: "rss",
    label: "steady memory (PSS)",
    unit: "MiB",
    lowerIsBetter: true,
    digits: 0,
    value: (c) => {
      const b = c.resources?.memory?.pssBytes;
      return b !== undefined ? b / MIB : undefined;
    },
  },
};

/** Display name and colour of a framework; unknown ids (test servers) get a stable grey-blue. */
export function frameworkStyle(id: string): { label: string; colour: string } {
  const { framework, serving } = parseServerId(id);
  const f = findFramework(framework);
  if (f) {
    // Another serving mode of a framework: its label says so, its colour is a lighter tint of the framework's.
    return serving === "sequential"
      ? { label: f.label, colour: f.colour }
      : { label: `${f.label}, ${serving}`, colour: tint(f.colour, 0.45) };
  }
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return { label: id, colour: `hsl(${h}, 25%, 45%)` };
}

/** A #rrggbb colour mixed with white by `amount` (0: unchanged, 1: white). */
export function tint(hex: string, amount: number): string {
  const n = parseInt(hex.slice(1), 16);
  const mix = (c: number) => Math.round(c + (255 - c) * amount).toString(16).padStart(2, "0");
  return `#${mix((n >> 16) & 255)}${mix((n >> 8) & 255)}${mix(n & 255)}`;
}

/** Frameworks (and their serving modes) in the fixed order of lib/frameworks.ts, unknown ones after, alphabetically. */
export function frameworkOrder(ids: Iterable<string>): string[] {
  const rank = (id: string) => {
    const { framework, serving } = parseServerId(id);
    const i = FRAMEWORKS.findIndex((f) => f.id === framework);
    return (i < 0 ? FRAMEWORKS.length : i) * SERVING_MODES.length + SERVING_MODES.indexOf(serving);
  };
  return [...new Set(ids)].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** One framework's figure in a ranking, from one cell. */
export interface Entry {
  framework: string;
  value: number;
  concurrency: number;
  cellId: string;
}

/** Who leads one metric, by how much, and whether the lead is significant. */
export interface Verdict {
  metric: Metric;
  /** Frameworks best first. */
  ranking: Entry[];
  /** How much better the leader is than the runner-up, percent of the runner-up's figure. */
  marginPercent?: number;
  /** The test of leader against runner-up, after the summary's correction; absent for untested figures. */
  test?: Test;
}

/** Ranks entries; the test is added later, once every verdict of the family is known. */
export function rank(metric: Metric, entries: Entry[]): Verdict {
  const ranking = [...entries].sort((a, b) => (metric.lowerIsBetter ? a.value - b.value : b.value - a.value));
  const [first, second] = ranking;
  if (!first || !second) return { metric, ranking };
  const marginPercent = second.value === 0
    ? undefined
    : (Math.abs(second.value - first.value) / second.value) * 100;
  return { metric, ranking, marginPercent };
}

/**
 * Tests each verdict's leader against its runner-up and corrects over all of them at once (one
 * family). Cells without a sample are untestable.
 */
export function testVerdicts(verdicts: Verdict[], samples: Map<string, CellSample>): void {
  const noise = passNoise(samples.values());
  const pending: { v: Verdict; d: Difference }[] = [];
  for (const v of verdicts) {
    const [first, second] = v.ranking;
    if (!first || !second || !v.metric.tested) continue;
    const a = samples.get(first.cellId);
    const b = samples.get(second.cellId);
    const d: Difference = a && b
      ? testDifference(v.metric.tested, a, b, noise)
      : { metric: v.metric.tested, method: "none", untestable: "no per-request data" };
    pending.push({ v, d });
  }
  decide(pending.map((p) => p.d)).forEach((t, i) => (pending[i]!.v.test = t));
}

/** One line of the summary: a model, sequence length and scenario, and the leader per metric. */
export interface SummaryRow {
  model: string;
  sequenceLength: number;
  scenario: string;
  batchSize: number;
  /** The load the latency figures were taken at (the sweep: its lowest level). */
  latencyConcurrency: number;
  /** Which concurrency throughput is taken at: the scenario's, or each framework's best in the sweep. */
  throughputAt: string;
  verdicts: Verdict[];
}

const entryOf = (metric: Metric, c: CellResult): Entry | undefined => {
  const value = metric.value(c);
  return finite(value)
    ? { framework: c.framework, value, concurrency: c.concurrency, cellId: c.id }
    : undefined;
};

/** The cell of a framework's sweep that is best for a metric. */
function bestCell(metric: Metric, cells: CellResult[]): CellResult | undefined {
  const scored = cells.filter((c) => finite(metric.value(c)));
  return scored.sort((a, b) =>
    metric.lowerIsBetter ? metric.value(a)! - metric.value(b)! : metric.value(b)! - metric.value(a)!
  )[0];
}

/**
 * Per model, sequence length and scenario: the leader in p50 and p99 latency (at the scenario's
 * concurrency; for the sweep at its lowest level), in throughput (for the sweep at each framework's
 * best level), and in steady memory (PSS; for the sweep, the highest over its levels). Each lead is tested
 * against the runner-up, with one correction over the whole summary. Open-loop cells are summarised
 * apart (their latency depends on the offered rate).
 */
export function summarize(
  cells: CellResult[],
  scenarioOrder: string[],
  samples: Map<string, CellSample> = new Map(),
): SummaryRow[] {
  const ok = cells.filter((c) => c.status === "ok" && c.rateFraction === undefined);
  const rows: SummaryRow[] = [];
  const models = [...new Set(ok.map((c) => c.model))].sort();
  const order = (s: string) => (s === "sweep" ? scenarioOrder.length : scenarioOrder.indexOf(s) + 1 || 999);
  for (const model of models) {
    const forModel = ok.filter((c) => c.model === model);
    for (const seq of [...new Set(forModel.map((c) => c.sequenceLength))].sort((a, b) => a - b)) {
      const forSeq = forModel.filter((c) => c.sequenceLength === seq);
      const scenarios = [...new Set(forSeq.map((c) => c.scenario))].sort((a, b) => order(a) - order(b));
      for (const scenario of scenarios) {
        const group = forSeq.filter((c) => c.scenario === scenario);
        const frameworks = frameworkOrder(group.map((c) => c.framework));
        const byFramework = frameworks.map((f) =>
          group.filter((c) => c.framework === f).sort((a, b) => a.concurrency - b.concurrency)
        );
        const sweep = scenario === "sweep";
        const latencyConcurrency = Math.min(...group.map((c) => c.concurrency));
        const verdicts = (["p50", "p99", "texts", "rss"] as const).map((id) => {
          const metric = METRICS[id];
          const entries = byFramework.map((fc) => {
            let cell: CellResult | undefined;
            if (!sweep) cell = fc[0];
            else if (id === "p50" || id === "p99") {
              cell = fc.find((c) => c.concurrency === latencyConcurrency);
            } else if (id === "texts") cell = bestCell(metric, fc);
            else cell = bestCell({ ...metric, lowerIsBetter: false }, fc); // memory: the highest level
            return cell && entryOf(metric, cell);
          }).filter((e): e is Entry => !!e);
          return rank(metric, entries);
        });
        rows.push({
          model,
          sequenceLength: seq,
          scenario,
          batchSize: group[0]!.batchSize,
          latencyConcurrency,
          throughputAt: sweep ? "best level" : `c=${group[0]!.concurrency}`,
          verdicts,
        });
      }
    }
  }
  testVerdicts(rows.flatMap((r) => r.verdicts), samples);
  return rows;
}

/** How a percentile reads: its value, or what its sample lacks ("needs ≥ 1,000 requests"). */
export function percentileText(c: CellResult, key: PercentileKey, digits = 2, interval = false): string {
  const q = c.latencyMs?.percentiles[key];
  if (!q) return "–";
  if (q.value === undefined) return `needs ≥ ${fmt(q.needs, 0)} requests`;
  return interval && finite(q.lower) && finite(q.upper)
    ? `${fmt(q.value, digits)} [${fmt(q.lower, digits)}–${fmt(q.upper, digits)}]`
    : fmt(q.value, digits);
}

/** How a test reads: "significant (adjusted p = 0.001)", "not significant (...)" or why it was not made. */
export function testText(t: Test | undefined): string {
  if (!t) return "not tested";
  if (t.untestable) return `not tested: ${t.untestable}`;
  const p = t.adjustedP! < 0.001 ? "adjusted p < 0.001" : `adjusted p = ${fmt(t.adjustedP, 3)}`;
  if (t.significant) return `significant (${p})`;
  // Say which test held the verdict back when the per-request one alone would have called it.
  const byPasses = t.pPasses !== undefined && t.pRequests !== undefined && t.pPasses > t.pRequests;
  return `not significant (${p}${byPasses ? ", held back by the pass-to-pass spread" : ""})`;
}

/** How a verdict reads in a table cell. */
export function verdictText(v: Verdict): string {
  const [first, second] = v.ranking;
  if (!first) return "–";
  const lead = `${frameworkStyle(first.framework).label} ${
    fmt(first.value, v.metric.digits)
  } ${v.metric.unit}${v.metric.id === "texts" && first.concurrency > 0 ? ` @c=${first.concurrency}` : ""}`;
  if (!second) return `${lead} (only one framework)`;
  const margin = `${fmt(v.marginPercent, 1)} % ${v.metric.lowerIsBetter ? "lower" : "higher"} than ${
    frameworkStyle(second.framework).label
  }`;
  return `${lead}; ${margin}; ${v.metric.tested ? testText(v.test) : "not tested (one figure per pass)"}`;
}
