/**
 * Hypothesis tests that say whether two measurements differ, a multiple-comparison correction for
 * many such verdicts, and the rule for when repeated measurements have settled.
 */
import { normalCdf, quantile, quantileSorted } from "./quantiles.ts";

/** The outcome of a hypothesis test. */
export interface TestResult {
  /** The test statistic (t for Welch, z for the quantile test). */
  statistic: number;
  /** Two-sided p-value: the chance of a statistic at least this extreme if the samples do not differ. */
  pValue: number;
  /** Name of the test, for reports. */
  method: string;
}

const LANCZOS = [
  0.99999999999980993,
  676.5203681218851,
  -1259.1392167224028,
  771.32342877765313,
  -176.61502916214059,
  12.507343278686905,
  -0.13857109526572012,
  9.9843695780195716e-6,
  1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 by the Lanczos approximation (g = 7, nine terms), about 15 significant digits. */
export function lnGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const z = x - 1;
  let sum = LANCZOS[0]!;
  for (let i = 1; i < LANCZOS.length; i++) sum += LANCZOS[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/**
 * The continued fraction of the incomplete beta function, evaluated by the modified Lentz method
 * (Numerical Recipes' betacf). Converges quickly for x < (a + 1) / (a + b + 2).
 */
const betaContinuedFraction = (a: number, b: number, x: number): number => {
  const TINY = 1e-300;
  const EPS = 1e-16;
  const guard = (v: number) => (Math.abs(v) < TINY ? TINY : v);
  let c = 1;
  let d = 1 / guard(1 - ((a + b) * x) / (a + 1));
  let h = d;
  // Iterations grow like √max(a, b); the cap is far above what the degrees of freedom here need.
  const maxIterations = 10_000 + 10 * Math.ceil(Math.sqrt(Math.max(a, b)));
  for (let m = 1; m <= maxIterations; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a - 1 + m2) * (a + m2));
    d = 1 / guard(1 + aa * d);
    c = guard(1 + aa / c);
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + 1 + m2));
    d = 1 / guard(1 + aa * d);
    c = guard(1 + aa / c);
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPS) break;
  }
  return h;
};

/**
 * The regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 ≤ x ≤ 1, from its continued
 * fraction, using the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) on whichever side converges fast.
 */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0 && b > 0)) throw new RangeError(`The beta parameters must be positive: got a = ${a}, b = ${b}`);
  if (Number.isNaN(x)) return NaN;
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(
    lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log1p(-x),
  );
  return x < (a + 1) / (a + b + 2)
    ? (front * betaContinuedFraction(a, b, x)) / a
    : 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** Two-sided tail P(|T| ≥ |t|) of Student's t with df degrees of freedom: I_{df/(df+t²)}(df/2, 1/2). */
const studentTTwoSided = (t: number, df: number) =>
  Number.isNaN(t) ? NaN : regularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5);

/** The CDF of Student's t distribution with df > 0 degrees of freedom (df need not be an integer). */
export function studentTCdf(t: number, df: number): number {
  const tail = studentTTwoSided(t, df) / 2;
  return t > 0 ? 1 - tail : tail;
}

const meanAndVariance = (values: ArrayLike<number>) => {
  const n = values.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i]!;
  const mean = sum / n;
  let squares = 0;
  for (let i = 0; i < n; i++) squares += (values[i]! - mean) ** 2;
  return { n, mean, variance: n > 1 ? squares / (n - 1) : NaN };
};

/**
 * Welch's two-sided t-test for a difference in means, which does not assume equal variances: t is
 * the difference of the means over √(s²ₐ/nₐ + s²ᵦ/nᵦ) and the degrees of freedom are
 * Welch–Satterthwaite's. It assumes independent samples and relies on the means being roughly normal,
 * which the central limit theorem gives for the sample sizes of a load test even for skewed latencies.
 *
 * Degenerate cases: with fewer than 2 values on a side no variance can be estimated and the result is
 * pValue 1 (no evidence of a difference; statistic NaN). When both variances are 0 the result is
 * pValue 1 if the means are equal (statistic 0) and pValue 0 if they differ (statistic ±Infinity).
 */
export function welchTTest(a: ArrayLike<number>, b: ArrayLike<number>): TestResult {
  const method = "Welch t-test";
  const x = meanAndVariance(a);
  const y = meanAndVariance(b);
  if (x.n < 2 || y.n < 2) return { statistic: NaN, pValue: 1, method };
  const diff = x.mean - y.mean;
  const vx = x.variance / x.n;
  const vy = y.variance / y.n;
  const se2 = vx + vy;
  if (se2 === 0) {
    return diff === 0
      ? { statistic: 0, pValue: 1, method }
      : { statistic: diff > 0 ? Infinity : -Infinity, pValue: 0, method };
  }
  const statistic = diff / Math.sqrt(se2);
  const df = (se2 * se2) / ((vx * vx) / (x.n - 1) + (vy * vy) / (y.n - 1));
  return { statistic, pValue: studentTTwoSided(statistic, df), method };
}

/**
 * The Brown–Mood quantile test, a generalisation of Mood's median test: do two samples share their
 * p-quantile? Both samples are pooled, the pooled p-quantile ({@link quantile}) becomes the
 * threshold, and each sample is split into counts at or below it and above it. If the samples come
 * from one distribution the two proportions at or below should agree; the 2×2 table is tested with the
 * two-proportion z-test (normal approximation, pooled proportion, no continuity correction; z² equals
 * Pearson's χ² for the table), two-sided.
 *
 * It assumes independent samples (independent requests, not windows of one drifting run) and makes no
 * assumption about the shape of the distribution. The normal approximation wants a few expected
 * counts above the threshold in each sample, so for tail quantiles each sample should hold at least
 * `requiredSamples(p)` values (quantiles.ts). A side with no values, or a threshold that leaves every
 * value on one side, gives pValue 1 (statistic 0).
 */
export function quantileTest(a: ArrayLike<number>, b: ArrayLike<number>, p: number): TestResult {
  const method = `Brown–Mood quantile test (p = ${p})`;
  if (a.length === 0 || b.length === 0) return { statistic: 0, pValue: 1, method };
  const pooled = new Float64Array(a.length + b.length);
  pooled.set(a);
  pooled.set(b, a.length);
  const threshold = quantile(pooled, p);
  const shareAtOrBelow = (values: ArrayLike<number>) => {
    let count = 0;
    for (let i = 0; i < values.length; i++) if (values[i]! <= threshold) count++;
    return count / values.length;
  };
  const pa = shareAtOrBelow(a);
  const pb = shareAtOrBelow(b);
  const pPooled = (pa * a.length + pb * b.length) / pooled.length;
  const se = Math.sqrt(pPooled * (1 - pPooled) * (1 / a.length + 1 / b.length));
  if (!(se > 0)) return { statistic: 0, pValue: 1, method };
  const statistic = (pa - pb) / se;
  return { statistic, pValue: 2 * normalCdf(-Math.abs(statistic)), method };
}

/**
 * Holm–Bonferroni step-down correction for a family of tests, controlling the chance of any false
 * rejection at alpha under any dependence between the tests. Sorted ascending, the i-th p-value
 * (0-based, of m) is scaled by m − i; adjusted p-values are made monotone by a running maximum and
 * capped at 1, and a test is rejected when its adjusted p-value is ≤ alpha. Both arrays follow the
 * input order. A NaN p-value counts as 1.
 */
export function holm(pValues: number[], alpha = 0.05): { rejected: boolean[]; adjusted: number[] } {
  const m = pValues.length;
  const clean = pValues.map((p) => (Number.isNaN(p) ? 1 : p));
  const order = clean.map((_, i) => i).sort((i, j) => clean[i]! - clean[j]!);
  const adjusted = new Array<number>(m);
  let running = 0;
  order.forEach((index, rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * clean[index]!));
    adjusted[index] = running;
  });
  return { rejected: adjusted.map((p) => p <= alpha), adjusted };
}

/**
 * Whether the last `windows` measurements (e.g. throughput per window) agree: their spread,
 * (max − min) / median, is at most `tolerance`. With fewer values than `windows` the spread is NaN and
 * the answer is not steady. A median of 0 gives spread 0 when all values are 0, else Infinity.
 */
export function steadyState(
  rates: number[],
  windows: number,
  tolerance: number,
): { steady: boolean; spread: number } {
  if (!(Number.isInteger(windows) && windows >= 1)) {
    throw new RangeError(`The number of windows must be a positive integer: got ${windows}`);
  }
  if (rates.length < windows) return { steady: false, spread: NaN };
  const last = Float64Array.from(rates.slice(-windows)).sort();
  const range = last[last.length - 1]! - last[0]!;
  const median = quantileSorted(last, 0.5);
  const spread = range === 0 ? 0 : median === 0 ? Infinity : range / Math.abs(median);
  return { steady: spread <= tolerance, spread };
}
