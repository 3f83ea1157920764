/**
 * Whether two cells differ: a hypothesis test per figure on the cells' per-request data (latency
 * percentiles) or window rates (throughput), one Holm–Bonferroni correction over every verdict a
 * report or comparison makes. Requests and windows are not independent across container starts
 * (each pass runs in a fresh container), so a second test takes the passes as the replicates: the
 * cells' per-pass figures against the pass-to-pass noise pooled over the whole run (passNoise). A
 * difference is significant only when both tests reject (an intersection–union test: its p-value is
 * the larger of the two), so container luck alone is not called a difference.
 */
import type { LoggedRequest } from "../load/requests.ts";
import { isSuccess } from "../load/requests.ts";
import type { PassResult } from "../load/pass.ts";
import { quantile, requiredSamples } from "./quantiles.ts";
import { holm, quantileTest, studentTCdf, welchTTest } from "./tests.ts";

/** The chance, over a whole report or comparison, of calling any pair of identical cells different. */
export const FAMILY_ALPHA = 0.05;

/** What a cell's verdicts are computed from. */
export interface CellSample {
  /** Latencies of the measured successful requests, ms. */
  latencies: number[];
  /** Each window's throughput, req/s. */
  windowRps: number[];
  /** Each pass's own figures (p50 and p99 ms of its measured requests, its throughput req/s). */
  passes?: Record<TestedMetric, number>[];
}

/** The figures verdicts are made on. */
export type TestedMetric = "p50" | "p99" | "throughput";

/** One test between two cells, before correction. */
export interface Difference {
  metric: TestedMetric;
  /** Absent when the data cannot support the test (`untestable` says why). */
  pValue?: number;
  method: string;
  untestable?: string;
  /** The per-request (or per-window) test's p-value and the per-pass test's, before correction. */
  pRequests?: number;
  pPasses?: number;
}

/** A difference after the correction over its family. */
export interface Verdict extends Difference {
  /** Holm-adjusted p-value. */
  adjustedP?: number;
  /** True when the adjusted p-value is at most FAMILY_ALPHA; undefined when untested. */
  significant?: boolean;
}

/** A cell's sample from its logged requests and its passes' windows. */
export function cellSample(requests: LoggedRequest[], passes: PassResult[]): CellSample {
  const ok = requests.filter((r) => r.measured && isSuccess(r.status));
  return {
    latencies: ok.map((r) => r.latencyMs),
    windowRps: passes.flatMap((p) => p.windows.map((w) => w.throughputRps)),
    passes: passes.map((p) => {
      const mine = ok.filter((r) => r.pass === p.pass).map((r) => r.latencyMs);
      const span = p.windows.reduce((a, w) => a + w.durationS, 0);
      return {
        p50: quantile(mine, 0.5),
        p99: quantile(mine, 0.99),
        throughput: span > 0 ? p.windows.reduce((a, w) => a + w.throughputRps * w.durationS, 0) / span : NaN,
      };
    }),
  };
}

/**
 * How much a figure moves between passes of the same cell (a fresh container each), on a log scale:
 * the pooled standard deviation of ln(figure) around each cell's mean, over every cell with two
 * passes or more, and its degrees of freedom (Σ passes − 1). Pooled over a whole run, it is estimated
 * well even though each cell has only a few passes.
 */
export interface PassNoise {
  sigma: number;
  df: number;
}

/** The pass-to-pass noise of each tested figure, pooled over the cells given. */
export function passNoise(samples: Iterable<CellSample>): Partial<Record<TestedMetric, PassNoise>> {
  const out: Partial<Record<TestedMetric, PassNoise>> = {};
  const list = [...samples];
  for (const metric of ["p50", "p99", "throughput"] as const) {
    let ss = 0;
    let df = 0;
    for (const c of list) {
      const logs = (c.passes ?? []).map((p) => Math.log(p[metric])).filter(Number.isFinite);
      if (logs.length < 2) continue;
      const mean = logs.reduce((x, y) => x + y, 0) / logs.length;
      for (const v of logs) ss += (v - mean) ** 2;
      df += logs.length - 1;
    }
    if (df > 0) out[metric] = { sigma: Math.sqrt(ss / df), df };
  }
  return out;
}

/**
 * The passes as replicates: a t-test of the two cells' mean ln(figure) per pass against the run's
 * pooled pass-to-pass noise. Undefined without per-pass figures on both sides or without a noise estimate.
 */
export function passTest(
  metric: TestedMetric,
  a: CellSample,
  b: CellSample,
  noise: PassNoise | undefined,
): number | undefined {
  const la = (a.passes ?? []).map((p) => Math.log(p[metric])).filter(Number.isFinite);
  const lb = (b.passes ?? []).map((p) => Math.log(p[metric])).filter(Number.isFinite);
  if (!la.length || !lb.length || !noise) return undefined;
  const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / v.length;
  const se = noise.sigma * Math.sqrt(1 / la.length + 1 / lb.length);
  const diff = mean(la) - mean(lb);
  if (!(se > 0)) return diff === 0 ? 1 : 0;
  const t = Math.abs(diff) / se;
  return 2 * (1 - studentTCdf(t, noise.df));
}

/** The two tests combined: both must reject, so the p-value is the larger (no pass data: the first). */
function combined(
  metric: TestedMetric,
  method: string,
  pRequests: number,
  a: CellSample,
  b: CellSample,
  noise: PassNoise | undefined,
): Difference {
  const pPasses = passTest(metric, a, b, noise);
  return {
    metric,
    method: pPasses === undefined
      ? method
      : `${method}, and a t-test of the passes against the run's pass-to-pass noise`,
    pValue: pPasses === undefined ? pRequests : Math.max(pRequests, pPasses),
    pRequests,
    pPasses,
  };
}

/** Tests one figure of two cells: the Brown–Mood quantile test for percentiles, Welch's t for throughput. */
export function testDifference(
  metric: TestedMetric,
  a: CellSample,
  b: CellSample,
  noise: Partial<Record<TestedMetric, PassNoise>> = {},
): Difference {
  if (metric === "throughput") {
    const method = "Welch's t-test on window throughputs";
    if (a.windowRps.length < 2 || b.windowRps.length < 2) {
      return { metric, method, untestable: "needs ≥ 2 windows per cell" };
    }
    return combined(metric, method, welchTTest(a.windowRps, b.windowRps).pValue, a, b, noise[metric]);
  }
  const p = metric === "p50" ? 0.5 : 0.99;
  const need = requiredSamples(p);
  const r = quantileTest(a.latencies, b.latencies, p);
  if (a.latencies.length < need || b.latencies.length < need) {
    return { metric, method: r.method, untestable: `needs ≥ ${need} requests per cell` };
  }
  return combined(metric, r.method, r.pValue, a, b, noise[metric]);
}

/** Applies one Holm correction across every tested difference of a family (a report, a comparison). */
export function decide(differences: Difference[], alpha = FAMILY_ALPHA): Verdict[] {
  const tested = differences.map((d, i) => [d, i] as const).filter(([d]) => d.pValue !== undefined);
  const { rejected, adjusted } = holm(tested.map(([d]) => d.pValue!), alpha);
  const out: Verdict[] = differences.map((d) => ({ ...d }));
  tested.forEach(([, i], k) => {
    out[i]!.adjustedP = adjusted[k];
    out[i]!.significant = rejected[k];
  });
  return out;
}
