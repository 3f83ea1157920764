/**
 * Percentiles of per-request samples, each with a distribution-free confidence interval and the
 * rule for when a sample is large enough to report it at all.
 */

/**
 * The fewest samples expected beyond a percentile for it to be reported: p is supported by n samples
 * only when n·(1 − p) ≥ 10. Below that the estimate rests on a handful of the slowest requests.
 */
export const MIN_TAIL_SAMPLES = 10;

/** The percentiles a latency summary reports, by key. */
export const PERCENTILE_KEYS = { p50: 0.5, p90: 0.9, p95: 0.95, p99: 0.99, p999: 0.999 } as const;

/** A key of {@link PERCENTILE_KEYS}. */
export type PercentileKey = keyof typeof PERCENTILE_KEYS;

const assertProbability = (p: number, what: string) => {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${what} must be between 0 and 1: got ${p}`);
};

const assertConfidence = (confidence: number) => {
  if (!(confidence > 0 && confidence < 1)) {
    throw new RangeError(`Confidence must be strictly between 0 and 1: got ${confidence}`);
  }
};

/**
 * The number of samples needed to support percentile p: ⌈10 / (1 − p)⌉, so 20 for p50, 100 for p90,
 * 200 for p95, 1,000 for p99 and 10,000 for p999 (Infinity for p = 1). The quotient is rounded to
 * nine significant digits first, so that binary rounding of 1 − p (0.9 → 100.00000000000003) does not
 * add a sample.
 */
export function requiredSamples(p: number): number {
  assertProbability(p, "The percentile");
  const exact = MIN_TAIL_SAMPLES / (1 - p);
  return Number.isFinite(exact) ? Math.ceil(Number(exact.toPrecision(9))) : Infinity;
}

/**
 * The p-quantile of ascending values by linear interpolation between order statistics: Hyndman and
 * Fan's type 7, the default of R's `quantile()` and numpy's `quantile(method="linear")`. At
 * h = (n − 1)·p it returns x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋ + 1] − x[⌊h⌋]) (0-based). NaN for no values.
 * The input must already be sorted ascending; it is not checked.
 */
export function quantileSorted(sorted: ArrayLike<number>, p: number): number {
  assertProbability(p, "The quantile");
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * p;
  const lo = Math.floor(h);
  const below = sorted[lo]!;
  if (lo >= n - 1) return below;
  return below + (h - lo) * (sorted[lo + 1]! - below);
}

/**
 * The same estimator as {@link quantileSorted} for values in any order, in expected linear time: a
 * copy is partially ordered by quickselect (median-of-three, Hoare partition: Numerical Recipes'
 * `select`) until the two order statistics the estimate interpolates between are known. The input is
 * not modified. For many quantiles of one sample, sort once and use quantileSorted instead.
 */
export function quantile(values: ArrayLike<number>, p: number): number {
  assertProbability(p, "The quantile");
  const n = values.length;
  if (n === 0) return NaN;
  const x = Float64Array.from(values);
  const h = (n - 1) * p;
  const k = Math.floor(h);
  const swap = (i: number, j: number) => {
    const t = x[i]!;
    x[i] = x[j]!;
    x[j] = t;
  };
  let left = 0;
  let right = n - 1;
  for (;;) {
    if (right <= left + 1) {
      if (right === left + 1 && x[right]! < x[left]!) swap(left, right);
      break;
    }
    swap((left + right) >> 1, left + 1);
    if (x[left]! > x[right]!) swap(left, right);
    if (x[left + 1]! > x[right]!) swap(left + 1, right);
    if (x[left]! > x[left + 1]!) swap(left, left + 1);
    const pivot = x[left + 1]!;
    let i = left + 1;
    let j = right;
    for (;;) {
      do i++; while (x[i]! < pivot);
      do j--; while (x[j]! > pivot);
      if (j < i) break;
      swap(i, j);
    }
    x[left + 1] = x[j]!;
    x[j] = pivot;
    if (j >= k) right = j - 1;
    if (j <= k) left = i;
  }
  // x[k] is now the (k + 1)-th smallest and everything after it is at least as large.
  const below = x[k]!;
  if (k >= n - 1) return below;
  let above = Infinity;
  for (let i = k + 1; i < n; i++) if (x[i]! < above) above = x[i]!;
  return below + (h - k) * (above - below);
}

/** A percentile of a sample, with its confidence interval when the sample supports it. */
export interface QuantileEstimate {
  /** The percentile as a probability, e.g. 0.99. */
  p: number;
  /** Number of samples. */
  n: number;
  /** Point estimate ({@link quantileSorted}); absent when the sample cannot support p. */
  value?: number;
  /** Lower end of the confidence interval (an observed sample); absent when unsupported. */
  lower?: number;
  /** Upper end of the confidence interval (an observed sample); absent when unsupported. */
  upper?: number;
  /** Coverage the interval aims for, e.g. 0.95. */
  confidence: number;
  /** Samples required to support p ({@link requiredSamples}); present only when n falls short. */
  needs?: number;
}

/**
 * Natural log of n! for 0 ≤ k ≤ n, built once per call by summing logs: exact enough for the n ≤ 1000
 * where binomial probabilities are summed term by term.
 */
const logFactorials = (n: number): Float64Array => {
  const out = new Float64Array(n + 1);
  for (let k = 2; k <= n; k++) out[k] = out[k - 1]! + Math.log(k);
  return out;
};

/** x·ln(y), taken as 0 when x is 0 so that p = 0 or 1 give point masses instead of NaN. */
const xlogy = (x: number, y: number) => (x === 0 ? 0 : x * Math.log(y));

/**
 * 1-based ranks [l, u] of the order statistics bounding the p-quantile of n ≥ 1 samples with the given
 * coverage: the largest l with P(B < l) ≤ α/2 and the smallest u with P(B ≥ u) ≤ α/2 for
 * B ~ Binomial(n, p), α = 1 − confidence, clamped to [1, n]. Exact for n ≤ 1000, normal approximation
 * with continuity correction above.
 */
export function orderStatisticRanks(n: number, p: number, confidence: number): [number, number] {
  if (!(Number.isInteger(n) && n >= 1)) {
    throw new RangeError(`The sample size must be a positive integer: got ${n}`);
  }
  assertProbability(p, "The quantile");
  assertConfidence(confidence);
  const tail = (1 - confidence) / 2;
  let l: number;
  let u: number;
  if (n <= 1000) {
    const lf = logFactorials(n);
    const pmf = new Float64Array(n + 1);
    for (let k = 0; k <= n; k++) {
      pmf[k] = Math.exp(lf[n]! - lf[k]! - lf[n - k]! + xlogy(k, p) + xlogy(n - k, 1 - p));
    }
    // P(B < l) grows with l: l is one past the last k whose cumulative probability stays within the tail.
    l = 0;
    for (let k = 0, below = 0; k <= n; k++) {
      below += pmf[k]!;
      if (below > tail) break;
      l = k + 1;
    }
    // P(B ≥ u) shrinks with u: summed from the top so that small upper tails keep their precision.
    u = n + 1;
    for (let k = n, above = 0; k >= 0; k--) {
      above += pmf[k]!;
      if (above > tail) break;
      u = k;
    }
  } else {
    // Normal approximation with continuity correction: P(B ≤ k) ≈ Φ((k + 0.5 − np) / √(np(1 − p))).
    const mean = n * p;
    const sd = Math.sqrt(n * p * (1 - p));
    const z = normalQuantile(1 - tail);
    l = Math.floor(mean + 0.5 - z * sd);
    u = Math.ceil(mean + 0.5 + z * sd);
  }
  return [Math.min(Math.max(l, 1), n), Math.min(Math.max(u, 1), n)];
}

/**
 * The p-quantile of ascending values with a distribution-free confidence interval.
 *
 * The interval is bounded by two order statistics. The number B of samples at or below the true
 * p-quantile follows Binomial(n, p) whatever the distribution, so [x₍l₎, x₍u₎] covers it with
 * probability P(l ≤ B < u) ≥ confidence when l is the largest rank with P(B < l) ≤ α/2 and u the
 * smallest with P(B ≥ u) ≤ α/2 (α = 1 − confidence). The binomial is summed exactly for n ≤ 1000 and
 * approximated by the normal with continuity correction above. Ranks are clamped to [1, n] and widened,
 * if need be, to the two samples the point estimate interpolates between, so the interval always
 * contains the estimate (widening only raises coverage). Ties and discrete values keep the bound
 * conservative. When n·(1 − p) < {@link MIN_TAIL_SAMPLES} the sample cannot support p: value and the
 * interval are absent and `needs` says how many samples would.
 */
export function quantileEstimate(sorted: ArrayLike<number>, p: number, confidence = 0.95): QuantileEstimate {
  assertProbability(p, "The quantile");
  assertConfidence(confidence);
  const n = sorted.length;
  const needs = requiredSamples(p);
  if (n < needs) return { p, n, confidence, needs };
  const h = (n - 1) * p;
  const [l, u] = orderStatisticRanks(n, p, confidence);
  const lower = Math.min(l, Math.floor(h) + 1);
  const upper = Math.max(u, Math.ceil(h) + 1);
  return {
    p,
    n,
    value: quantileSorted(sorted, p),
    lower: sorted[lower - 1]!,
    upper: sorted[upper - 1]!,
    confidence,
  };
}

/** Mean, extremes and the reported percentiles of a set of latencies (unit of the input). */
export interface LatencySummary {
  n: number;
  mean: number;
  min: number;
  max: number;
  percentiles: Record<PercentileKey, QuantileEstimate>;
}

/**
 * Summarises raw samples (e.g. per-request latencies): every figure comes from the samples themselves,
 * never from other percentiles. The input is not modified. With no samples mean, min and max are NaN
 * and every percentile carries only `needs`.
 */
export function summarize(values: ArrayLike<number>, confidence = 0.95): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  let sum = 0;
  for (const v of sorted) sum += v;
  const percentiles = Object.fromEntries(
    Object.entries(PERCENTILE_KEYS).map(([key, p]) => [key, quantileEstimate(sorted, p, confidence)]),
  ) as Record<PercentileKey, QuantileEstimate>;
  return {
    n,
    mean: n === 0 ? NaN : sum / n,
    min: n === 0 ? NaN : sorted[0]!,
    max: n === 0 ? NaN : sorted[n - 1]!,
    percentiles,
  };
}

/**
 * erfc(x) for x ≥ 0 as the regularized upper incomplete gamma Q(1/2, x²): a power series below
 * x² = 1.5, a Lentz continued fraction above (Numerical Recipes' gser and gcf). Near full double
 * precision, including far into the tail where 1 − erf(x) would cancel.
 */
const erfcNonNegative = (x: number): number => {
  if (x === 0) return 1;
  if (x === Infinity) return 0;
  const a = 0.5;
  const s = x * x;
  const front = Math.exp(-s + a * Math.log(s) - 0.5 * Math.log(Math.PI));
  const EPS = 1e-16;
  if (s < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let k = 1; k < 500; k++) {
      term *= s / (a + k);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * EPS) break;
    }
    return 1 - sum * front;
  }
  const TINY = 1e-300;
  let b = s + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 500; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPS) break;
  }
  return front * h;
};

/**
 * The standard normal CDF Φ(x), from erfc rather than 1 − erf so that lower tails keep their relative
 * precision down to about 1e-300; for an upper tail 1 − Φ(x) ask for Φ(−x).
 */
export function normalCdf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const t = x / Math.SQRT2;
  return t < 0 ? 0.5 * erfcNonNegative(-t) : 1 - 0.5 * erfcNonNegative(t);
}

/**
 * The standard normal quantile Φ⁻¹(p): Acklam's rational approximation refined by one Halley step
 * against {@link normalCdf}, which brings it to about double precision. ±Infinity at 0 and 1.
 */
export function normalQuantile(p: number): number {
  assertProbability(p, "The probability");
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  const a = [
    -39.69683028665376,
    220.9460984245205,
    -275.9285104469687,
    138.357751867269,
    -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406,
    161.5858368580409,
    -155.6989798598866,
    66.80131188771972,
    -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293,
    -0.3223964580411365,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const poly = (k: number[], x: number) => k.reduce((acc, coef) => acc * x + coef, 0);
  const tailX = (q: number) => poly(c, q) / (poly(d, q) * q + 1);
  const pLow = 0.02425;
  let x: number;
  if (p < pLow) x = tailX(Math.sqrt(-2 * Math.log(p)));
  else if (p > 1 - pLow) x = -tailX(Math.sqrt(-2 * Math.log(1 - p)));
  else {
    const q = p - 0.5;
    const r = q * q;
    x = (poly(a, r) * q) / (poly(b, r) * r + 1);
  }
  // Halley step on the upper tail for p > 0.5 so that 1 − p keeps its digits.
  const e = p > 0.5 ? (1 - p) - normalCdf(-x) : normalCdf(x) - p;
  const u = e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
  return x - u / (1 + (x * u) / 2);
}
