import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import {
  MIN_TAIL_SAMPLES,
  normalCdf,
  normalQuantile,
  orderStatisticRanks,
  PERCENTILE_KEYS,
  quantile,
  quantileEstimate,
  quantileSorted,
  requiredSamples,
  summarize,
} from "./quantiles.ts";
import { exponential, mulberry32 } from "./random.ts";

const close = (actual: number, expected: number, relative = 1e-12) =>
  ok(
    Math.abs(actual - expected) <= relative * Math.max(Math.abs(expected), Number.MIN_VALUE),
    `expected ${expected}, got ${actual}`,
  );

const sortedExponential = (random: () => number, n: number) =>
  Float64Array.from({ length: n }, () => exponential(random)).sort();

Deno.test("requiredSamples() gives exactly 10 / (1 − p) samples for the reported percentiles", () => {
  equal(MIN_TAIL_SAMPLES, 10);
  deepStrictEqual(Object.values(PERCENTILE_KEYS).map(requiredSamples), [20, 100, 200, 1000, 10000]);
  equal(requiredSamples(0), 10);
  equal(requiredSamples(0.3), 15);
  equal(requiredSamples(1), Infinity);
  throws(() => requiredSamples(1.5), /between 0 and 1: got 1.5/);
});

Deno.test("quantileSorted() interpolates linearly like numpy.quantile", () => {
  // numpy.quantile([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8.5, 0.25], p) (numpy 2.4.6, method="linear").
  const sorted = Float64Array.from([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8.5, 0.25]).sort();
  const expected: [number, number][] = [
    [0, 0.25],
    [0.1, 1.0],
    [0.25, 2.0],
    [0.5, 4.0],
    [0.9, 8.000000000000002],
    [0.99, 8.94],
    [1, 9.0],
  ];
  for (const [p, value] of expected) close(quantileSorted(sorted, p), value);
});

Deno.test("quantileSorted() gives NaN for no values and the value itself for one", () => {
  ok(Number.isNaN(quantileSorted([], 0.5)));
  equal(quantileSorted([7], 0.99), 7);
});

Deno.test("quantile() of unsorted values equals quantileSorted() and leaves the input alone", () => {
  const random = mulberry32(1);
  for (const n of [1, 2, 3, 10, 101, 2000]) {
    // Rounded to a few values so that ties are common.
    const values = Float64Array.from({ length: n }, () => Math.round(exponential(random) * 4));
    const copy = values.slice();
    const sorted = values.slice().sort();
    for (const p of [0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1]) {
      equal(quantile(values, p), quantileSorted(sorted, p), `n = ${n}, p = ${p}`);
    }
    deepStrictEqual(values, copy);
  }
  ok(Number.isNaN(quantile([], 0.5)));
  equal(quantile([3, 1, 2], 0.5), 2);
});

Deno.test("orderStatisticRanks() matches scipy.stats.binom for n ≤ 1000", () => {
  // Largest l with binom.cdf(l - 1, n, p) <= α/2 and smallest u with binom.sf(u - 1, n, p) <= α/2,
  // clamped to [1, n] (scipy 1.17.1).
  const cases: [number, number, number, [number, number]][] = [
    [20, 0.5, 0.95, [6, 15]],
    [100, 0.5, 0.95, [40, 61]],
    [100, 0.9, 0.95, [84, 96]],
    [200, 0.95, 0.95, [184, 197]],
    [1000, 0.99, 0.95, [983, 997]],
    [1000, 0.5, 0.99, [459, 542]],
    [37, 0.25, 0.9, [5, 15]],
    [11, 0.01, 0.95, [1, 2]],
  ];
  for (const [n, p, confidence, ranks] of cases) {
    deepStrictEqual(orderStatisticRanks(n, p, confidence), ranks, `n = ${n}, p = ${p}`);
  }
});

Deno.test("orderStatisticRanks() uses the continuity-corrected normal approximation above n = 1000", () => {
  // floor(np + 0.5 − z·sd) and ceil(np + 0.5 + z·sd) with z = scipy.stats.norm.ppf(1 − α/2); the exact
  // binomial ranks differ by at most one (2000: (956, 1045); 5000: (4936, 4964); 3000: (2657, 2743)).
  const cases: [number, number, number, [number, number]][] = [
    [2000, 0.5, 0.95, [956, 1045]],
    [5000, 0.99, 0.95, [4936, 4965]],
    [20000, 0.999, 0.95, [19971, 19990]],
    [3000, 0.9, 0.99, [2658, 2743]],
  ];
  for (const [n, p, confidence, ranks] of cases) {
    deepStrictEqual(orderStatisticRanks(n, p, confidence), ranks, `n = ${n}, p = ${p}`);
  }
});

Deno.test("quantileEstimate() bounds the estimate by the order statistics of those ranks", () => {
  const sorted = Float64Array.from({ length: 100 }, (_, i) => (i + 1) * 10);
  deepStrictEqual(quantileEstimate(sorted, 0.5), {
    p: 0.5,
    n: 100,
    value: 505,
    lower: 400,
    upper: 610,
    confidence: 0.95,
  });
  // numpy.quantile(numpy.arange(1, 101) * 10, 0.9) is 901.0000000000001 too.
  deepStrictEqual(quantileEstimate(sorted, 0.9), {
    p: 0.9,
    n: 100,
    value: 901.0000000000001,
    lower: 840,
    upper: 960,
    confidence: 0.95,
  });
});

Deno.test("quantileEstimate() leaves an unsupported percentile without value and says what it needs", () => {
  const sorted = Float64Array.from({ length: 999 }, (_, i) => i);
  deepStrictEqual(quantileEstimate(sorted, 0.99), { p: 0.99, n: 999, confidence: 0.95, needs: 1000 });
  deepStrictEqual(quantileEstimate([], 0.5, 0.9), { p: 0.5, n: 0, confidence: 0.9, needs: 20 });
  ok(quantileEstimate(Float64Array.from({ length: 1000 }, (_, i) => i), 0.99).value !== undefined);
});

Deno.test("quantileEstimate() rejects a confidence outside (0, 1)", () => {
  throws(() => quantileEstimate([1, 2, 3], 0.5, 1), /Confidence must be strictly between 0 and 1: got 1/);
});

Deno.test("quantileEstimate() interval contains the estimate and narrows as n grows", () => {
  const random = mulberry32(7);
  let previousWidth = Infinity;
  for (const n of [200, 2000, 20000]) {
    const sorted = sortedExponential(random, n);
    for (const p of Object.values(PERCENTILE_KEYS)) {
      const e = quantileEstimate(sorted, p);
      if (e.value === undefined) continue;
      ok(e.lower! <= e.value && e.value <= e.upper!, `n = ${n}, p = ${p}: ${JSON.stringify(e)}`);
    }
    const { lower, upper } = quantileEstimate(sorted, 0.95);
    const width = upper! - lower!;
    ok(width < previousWidth, `width ${width} at n = ${n} should be below ${previousWidth}`);
    previousWidth = width;
  }
});

Deno.test("quantileEstimate() 95 % interval for the median covers ln 2 in at least 90 of 100 trials", () => {
  const random = mulberry32(2024);
  let covered = 0;
  for (let trial = 0; trial < 100; trial++) {
    const { lower, upper } = quantileEstimate(sortedExponential(random, 2000), 0.5);
    if (lower! <= Math.LN2 && Math.LN2 <= upper!) covered++;
  }
  ok(covered >= 90, `covered ${covered} of 100`);
});

Deno.test("summarize() sorts a copy and reports every percentile from the samples", () => {
  const values = [5, 1, 4, 2, 3];
  const summary = summarize(values);
  deepStrictEqual(values, [5, 1, 4, 2, 3]);
  equal(summary.n, 5);
  equal(summary.mean, 3);
  equal(summary.min, 1);
  equal(summary.max, 5);
  deepStrictEqual(Object.keys(summary.percentiles), ["p50", "p90", "p95", "p99", "p999"]);
  equal(summary.percentiles.p50.needs, 20);

  const big = summarize(Array.from({ length: 1000 }, (_, i) => 1000 - i));
  equal(
    big.percentiles.p99.value,
    quantileSorted(Float64Array.from({ length: 1000 }, (_, i) => i + 1), 0.99),
  );
  equal(big.percentiles.p999.needs, 10000);
});

Deno.test("summarize() of no values gives NaN figures and every percentile with needs", () => {
  const summary = summarize([]);
  equal(summary.n, 0);
  ok(Number.isNaN(summary.mean) && Number.isNaN(summary.min) && Number.isNaN(summary.max));
  for (const [key, p] of Object.entries(PERCENTILE_KEYS)) {
    const e = summary.percentiles[key as keyof typeof PERCENTILE_KEYS];
    deepStrictEqual(e, { p, n: 0, confidence: 0.95, needs: requiredSamples(p) });
  }
});

Deno.test("normalCdf() matches scipy.stats.norm.cdf in both tails", () => {
  // scipy.stats.norm.cdf(x) (scipy 1.17.1).
  const cases: [number, number][] = [
    [-8, 6.22096057427174e-16],
    [-3, 0.0013498980316300933],
    [-1.5, 0.06680720126885807],
    [0, 0.5],
    [0.7, 0.758036347776927],
    [2.5, 0.9937903346742238],
    [6, 0.9999999990134123],
  ];
  for (const [x, p] of cases) close(normalCdf(x), p, 1e-13);
});

Deno.test("normalQuantile() matches scipy.stats.norm.ppf", () => {
  // scipy.stats.norm.ppf(p) (scipy 1.17.1).
  const cases: [number, number][] = [
    [1e-10, -6.361340902404056],
    [0.001, -3.090232306167813],
    [0.025, -1.9599639845400545],
    [0.3, -0.5244005127080409],
    [0.975, 1.959963984540054],
    [0.999999, 4.753424308817087],
  ];
  for (const [p, x] of cases) close(normalQuantile(p), x, 1e-11);
  equal(normalQuantile(0.5), 0);
  equal(normalQuantile(0), -Infinity);
  equal(normalQuantile(1), Infinity);
});
