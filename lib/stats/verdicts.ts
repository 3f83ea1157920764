/**
 * Whether two cells differ: a hypothesis test per figure on the cells' per-request data (latency
 * percentiles) or window rates (throughput), and one Holm–Bonferroni correction over every verdict
 * a report or comparison makes, so the chance of calling any identical pair different stays at
 * FAMILY_ALPHA however many verdicts there are.
 */
import type { LoggedRequest } from "../load/requests.ts";
import { isSuccess } from "../load/requests.ts";
import { requiredSamples } from "./quantiles.ts";
import { holm, quantileTest, welchTTest } from "./tests.ts";

/** The chance, over a whole report or comparison, of calling any pair of identical cells different. */
export const FAMILY_ALPHA = 0.05;

/** What a cell's verdicts are computed from. */
export interface CellSample {
  /** Latencies of the measured successful requests, ms. */
  latencies: number[];
  /** Each window's throughput, req/s. */
  windowRps: number[];
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
}

/** A difference after the correction over its family. */
export interface Verdict extends Difference {
  /** Holm-adjusted p-value. */
  adjustedP?: number;
  /** True when the adjusted p-value is at most FAMILY_ALPHA; undefined when untested. */
  significant?: boolean;
}

/** A cell's sample from its logged requests and window rates. */
export function cellSample(requests: LoggedRequest[], windowRps: number[]): CellSample {
  return {
    latencies: requests.filter((r) => r.measured && isSuccess(r.status)).map((r) => r.latencyMs),
    windowRps,
  };
}

/** Tests one figure of two cells: the Brown–Mood quantile test for percentiles, Welch's t for throughput. */
export function testDifference(metric: TestedMetric, a: CellSample, b: CellSample): Difference {
  if (metric === "throughput") {
    const method = "Welch's t-test on window throughputs";
    if (a.windowRps.length < 2 || b.windowRps.length < 2) {
      return { metric, method, untestable: "needs ≥ 2 windows per cell" };
    }
    return { metric, method, pValue: welchTTest(a.windowRps, b.windowRps).pValue };
  }
  const p = metric === "p50" ? 0.5 : 0.99;
  const need = requiredSamples(p);
  const r = quantileTest(a.latencies, b.latencies, p);
  if (a.latencies.length < need || b.latencies.length < need) {
    return { metric, method: r.method, untestable: `needs ≥ ${need} requests per cell` };
  }
  return { metric, method: r.method, pValue: r.pValue };
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
