/**
 * Whether two cells differ: a hypothesis test per figure on the cells' per-request data (latency
 * percentiles) or window rates (throughput), one Holm–Bonferroni correction over every verdict a
 * report or comparison makes, and a guard against container luck: the tests take requests and
 * windows as independent, which they are not across container starts, so a difference is called
 * significant only when, in addition, every pass of one cell is on the same side of every pass of
 * the other.
 */
import type { LoggedRequest } from "../load/requests.ts";
import { isSuccess } from "../load/requests.ts";
import type { PassResult } from "../load/pass.ts";
import { quantile, requiredSamples } from "./quantiles.ts";
import { holm, quantileTest, welchTTest } from "./tests.ts";

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
  /** False when the two cells' per-pass figures overlap: the difference may be container luck. */
  passesApart?: boolean;
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

/** Whether every pass of one cell lies on the same side of every pass of the other, for a figure. */
export function passesApart(metric: TestedMetric, a: CellSample, b: CellSample): boolean | undefined {
  const va = a.passes?.map((p) => p[metric]).filter(Number.isFinite);
  const vb = b.passes?.map((p) => p[metric]).filter(Number.isFinite);
  if (!va?.length || !vb?.length) return undefined;
  return Math.max(...va) < Math.min(...vb) || Math.max(...vb) < Math.min(...va);
}

/** Tests one figure of two cells: the Brown–Mood quantile test for percentiles, Welch's t for throughput. */
export function testDifference(metric: TestedMetric, a: CellSample, b: CellSample): Difference {
  if (metric === "throughput") {
    const method = "Welch's t-test on window throughputs";
    if (a.windowRps.length < 2 || b.windowRps.length < 2) {
      return { metric, method, untestable: "needs ≥ 2 windows per cell" };
    }
    return {
      metric,
      method,
      pValue: welchTTest(a.windowRps, b.windowRps).pValue,
      passesApart: passesApart(metric, a, b),
    };
  }
  const p = metric === "p50" ? 0.5 : 0.99;
  const need = requiredSamples(p);
  const r = quantileTest(a.latencies, b.latencies, p);
  if (a.latencies.length < need || b.latencies.length < need) {
    return { metric, method: r.method, untestable: `needs ≥ ${need} requests per cell` };
  }
  return { metric, method: r.method, pValue: r.pValue, passesApart: passesApart(metric, a, b) };
}

/** Applies one Holm correction across every tested difference of a family (a report, a comparison). */
export function decide(differences: Difference[], alpha = FAMILY_ALPHA): Verdict[] {
  const tested = differences.map((d, i) => [d, i] as const).filter(([d]) => d.pValue !== undefined);
  const { rejected, adjusted } = holm(tested.map(([d]) => d.pValue!), alpha);
  const out: Verdict[] = differences.map((d) => ({ ...d }));
  tested.forEach(([d, i], k) => {
    out[i]!.adjustedP = adjusted[k];
    out[i]!.significant = rejected[k]! && d.passesApart !== false;
  });
  return out;
}
