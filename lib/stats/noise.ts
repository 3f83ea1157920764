/**
 * Noise: every cell's load is measured as several back-to-back repetitions (config `repetitions`),
 * and the spread of each figure across them is recorded beside the headline. A difference between
 * two cells counts as real only when their repetition ranges do not overlap.
 */
import type { OhaSummary } from "../load/oha.ts";
import type { ResourceStats } from "../results/results.ts";

/** One repetition of a cell's load: oha's figures and the resources sampled while it ran. */
export interface Repetition {
  requests: number;
  oha: OhaSummary;
  resources?: ResourceStats;
  /** Successful requests per second × batch size. */
  textsPerSecond: number;
}

/** Where a figure fell across a cell's repetitions (same unit as the figure). */
export interface Spread {
  /** Number of repetitions with a value. */
  n: number;
  min: number;
  median: number;
  max: number;
  /** (max − min) / median × 100: the width of the range relative to its middle, percent. */
  relativeRangePercent: number;
}

/** The spread of a cell's main figures across its repetitions. */
export interface CellNoise {
  throughputRps?: Spread;
  textsPerSecond?: Spread;
  p50Ms?: Spread;
  p95Ms?: Spread;
  p99Ms?: Spread;
  cpuPercentMean?: Spread;
  rssBytesPeak?: Spread;
}

/** The figures noise is measured for, and how to read each from a repetition. */
export const NOISE_METRICS: Record<keyof CellNoise, (r: Repetition) => number | undefined> = {
  throughputRps: (r) => r.oha.throughputRps,
  textsPerSecond: (r) => r.textsPerSecond,
  p50Ms: (r) => r.oha.latencyMs.p50,
  p95Ms: (r) => r.oha.latencyMs.p95,
  p99Ms: (r) => r.oha.latencyMs.p99,
  cpuPercentMean: (r) => r.resources?.cpuPercentMean,
  rssBytesPeak: (r) => r.resources?.rssBytesPeak,
};

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The spread of finite values, or undefined when there are none. */
export function spread(values: (number | undefined)[]): Spread | undefined {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x));
  if (v.length === 0) return undefined;
  const m = median(v);
  const min = Math.min(...v);
  const max = Math.max(...v);
  return { n: v.length, min, median: m, max, relativeRangePercent: m === 0 ? 0 : ((max - min) / m) * 100 };
}

export function cellNoise(reps: Repetition[]): CellNoise {
  const noise: CellNoise = {};
  for (
    const [key, read] of Object.entries(NOISE_METRICS) as [keyof CellNoise, typeof NOISE_METRICS.p50Ms][]
  ) {
    const s = spread(reps.map(read));
    if (s) noise[key] = s;
  }
  return noise;
}

/** Splits a cell's requests over its repetitions as evenly as possible (the first ones take the remainder). */
export function splitRequests(total: number, repetitions: number): number[] {
  const n = Math.max(1, Math.min(repetitions, total));
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

const sumRecords = (records: Record<string, number>[]) => {
  const out: Record<string, number> = {};
  for (const r of records) for (const [k, v] of Object.entries(r)) out[k] = (out[k] ?? 0) + v;
  return out;
};

/**
 * The cell's headline from its repetitions: counts and durations add up, throughput is all
 * successful responses over the summed duration, the mean is weighted by responses, min and max are
 * the extremes, and each percentile is the median of the repetitions' percentiles.
 */
export function combineOha(reps: OhaSummary[]): OhaSummary {
  if (reps.length === 1) return reps[0]!;
  const sum = (f: (o: OhaSummary) => number) => reps.reduce((a, o) => a + f(o), 0);
  const durationS = sum((o) => o.durationS);
  const successful = sum((o) => o.successful);
  const responses = sum((o) => o.responses);
  const failedStatus = sum((o) => o.failedStatus);
  const errorCount = sum((o) => o.errorCount);
  const attempted = responses + errorCount;
  const pct = (k: keyof OhaSummary["latencyMs"]) => median(reps.map((o) => o.latencyMs[k]));
  return {
    durationS,
    responses,
    successful,
    failedStatus,
    errors: sumRecords(reps.map((o) => o.errors)),
    errorCount,
    cutAtDeadline: sum((o) => o.cutAtDeadline),
    errorRate: attempted === 0 ? 0 : (failedStatus + errorCount) / attempted,
    throughputRps: durationS > 0 ? successful / durationS : 0,
    ohaRequestsPerSec: durationS > 0 ? sum((o) => o.ohaRequestsPerSec * o.durationS) / durationS : 0,
    latencyMs: {
      mean: responses > 0 ? sum((o) => o.latencyMs.mean * o.responses) / responses : NaN,
      min: Math.min(...reps.map((o) => o.latencyMs.min)),
      max: Math.max(...reps.map((o) => o.latencyMs.max)),
      p50: pct("p50"),
      p90: pct("p90"),
      p95: pct("p95"),
      p99: pct("p99"),
      p999: pct("p999"),
    },
    statusCodes: sumRecords(reps.map((o) => o.statusCodes)),
  };
}

/**
 * The cell's resources from its repetitions': means weighted by each repetition's duration (CPU) or
 * sample count (memory), peaks the highest.
 */
export function combineResources(
  reps: { resources?: ResourceStats; durationS: number }[],
): ResourceStats | undefined {
  const have = reps.filter((r): r is { resources: ResourceStats; durationS: number } => !!r.resources);
  if (have.length === 0) return undefined;
  if (have.length === 1) return have[0]!.resources;
  const weighted = (f: (r: ResourceStats) => number, w: (x: (typeof have)[number]) => number) => {
    const ok = have.filter((x) => Number.isFinite(f(x.resources)) && w(x) > 0);
    const total = ok.reduce((a, x) => a + w(x), 0);
    return total > 0 ? ok.reduce((a, x) => a + f(x.resources) * w(x), 0) / total : NaN;
  };
  const peak = (f: (r: ResourceStats) => number) => {
    const v = have.map((x) => f(x.resources)).filter(Number.isFinite);
    return v.length ? Math.max(...v) : NaN;
  };
  const bySamples = (x: (typeof have)[number]) => x.resources.samples;
  const byDuration = (x: (typeof have)[number]) => x.durationS;
  return {
    samples: have.reduce((a, x) => a + x.resources.samples, 0),
    cpuPercentMean: weighted((r) => r.cpuPercentMean, byDuration),
    cpuPercentPeak: peak((r) => r.cpuPercentPeak),
    rssBytesMean: weighted((r) => r.rssBytesMean, bySamples),
    rssBytesPeak: peak((r) => r.rssBytesPeak),
    workingSetBytesMean: weighted((r) => r.workingSetBytesMean, bySamples),
    workingSetBytesPeak: peak((r) => r.workingSetBytesPeak),
  };
}

/**
 * Whether two figures differ by more than the noise: their repetition ranges do not overlap.
 * Undefined when either has fewer than two repetitions (no noise was measured).
 */
export function distinct(a: Spread | undefined, b: Spread | undefined): boolean | undefined {
  if (!a || !b || a.n < 2 || b.n < 2) return undefined;
  return a.max < b.min || b.max < a.min;
}
