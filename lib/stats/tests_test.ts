import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import {
  holm,
  quantileTest,
  regularizedIncompleteBeta,
  steadyState,
  studentTCdf,
  welchTTest,
} from "./tests.ts";
import { exponential, mulberry32, normal } from "./random.ts";

const close = (actual: number, expected: number, relative = 1e-12) =>
  ok(
    Math.abs(actual - expected) <= relative * Math.max(Math.abs(expected), Number.MIN_VALUE),
    `expected ${expected}, got ${actual}`,
  );

const draw = (n: number, f: () => number) => {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = f();
  return out;
};

const a = [12.1, 13.4, 11.8, 15.2, 14.0, 12.9, 13.3, 16.1];
const b = [10.2, 11.9, 12.5, 10.8, 11.1, 13.0, 9.7, 12.2, 11.4, 10.9, 12.8];

Deno.test("regularizedIncompleteBeta() matches scipy.special.betainc", () => {
  // scipy.special.betainc(a, b, x) (scipy 1.17.1).
  close(regularizedIncompleteBeta(0.3, 2, 5), 0.5798250000000003);
  close(regularizedIncompleteBeta(0.9, 0.5, 0.5), 0.7951672353008665);
  close(regularizedIncompleteBeta(0.999, 3000, 0.5), 0.01428560678371607, 1e-10);
  close(regularizedIncompleteBeta(0.01, 10, 2), 1.0900000000000003e-19);
  equal(regularizedIncompleteBeta(0, 2, 3), 0);
  equal(regularizedIncompleteBeta(1, 2, 3), 1);
});

Deno.test("studentTCdf() matches scipy.stats.t.cdf, fractional and large degrees of freedom included", () => {
  // scipy.stats.t.cdf(t, df) (scipy 1.17.1).
  const cases: [number, number, number][] = [
    [0.5, 3, 0.6742760175759245],
    [-2.1, 7.5, 0.035618535729039044],
    [3.0, 30, 0.9973050179671741],
    [1.96, 6000, 0.9749789959820434],
    [-4.0, 2.2, 0.02436531336388199],
    [0.1, 1e5, 0.5398277370466369],
  ];
  for (const [t, df, p] of cases) close(studentTCdf(t, df), p, 1e-10);
});

Deno.test("welchTTest() matches scipy.stats.ttest_ind(equal_var=False)", () => {
  // scipy.stats.ttest_ind(a, b, equal_var=False) (scipy 1.17.1): df 12.218 and 5.625.
  const first = welchTTest(a, b);
  close(first.statistic, 3.432973236738177, 1e-12);
  close(first.pValue, 0.004837997583148604, 1e-10);
  equal(first.method, "Welch t-test");
  const second = welchTTest([1, 2, 3, 4, 5], [1.5, 2.5, 3.5, 4.5, 5.5, 20]);
  close(second.statistic, -1.121634751658949, 1e-12);
  close(second.pValue, 0.3076026737476655, 1e-10);
});

Deno.test("welchTTest() gives pValue 1 for too few values and judges constant samples by their means", () => {
  equal(welchTTest([1], [2, 3, 4]).pValue, 1);
  equal(welchTTest([], []).pValue, 1);
  deepStrictEqual(welchTTest([2, 2, 2], [2, 2]), { statistic: 0, pValue: 1, method: "Welch t-test" });
  deepStrictEqual(welchTTest([3, 3], [2, 2, 2]), { statistic: Infinity, pValue: 0, method: "Welch t-test" });
});

Deno.test("quantileTest() matches a 2×2 chi-square test on the pooled quantile", () => {
  // Threshold numpy.quantile(a + b, p); counts at or below it per sample; |z| = sqrt(chi2) and pValue
  // from scipy.stats.chi2_contingency(table, correction=False) (scipy 1.17.1): p = 0.5 → threshold
  // 12.2, table [[2, 6], [8, 3]]; p = 0.75 → threshold 13.15, table [[3, 5], [11, 0]].
  const median = quantileTest(a, b, 0.5);
  close(median.statistic, -2.0571383477584053, 1e-12);
  close(median.pValue, 0.03967291990431002, 1e-10);
  equal(median.method, "Brown–Mood quantile test (p = 0.5)");
  const upper = quantileTest(a, b, 0.75);
  close(upper.statistic, -3.0545633309619142, 1e-12);
  close(upper.pValue, 0.0022538842221504272, 1e-10);
});

Deno.test("quantileTest() gives pValue 1 when a side is empty or every value falls on one side", () => {
  deepStrictEqual(quantileTest([], [1, 2, 3], 0.5).pValue, 1);
  deepStrictEqual(quantileTest([1, 2], [], 0.5).pValue, 1);
  deepStrictEqual(quantileTest([5, 5, 5], [5, 5], 0.5).pValue, 1);
});

Deno.test("welchTTest() and quantileTest() reject 2–8 % of 1,000 same-distribution pairs at α = 0.05", () => {
  const random = mulberry32(11);
  const rejected = { welch: 0, median: 0, p99: 0 };
  for (let trial = 0; trial < 1000; trial++) {
    const x = draw(3000, () => exponential(random));
    const y = draw(3000, () => exponential(random));
    if (welchTTest(x, y).pValue <= 0.05) rejected.welch++;
    if (quantileTest(x, y, 0.5).pValue <= 0.05) rejected.median++;
    if (quantileTest(x, y, 0.99).pValue <= 0.05) rejected.p99++;
  }
  for (const [test, count] of Object.entries(rejected)) {
    ok(count >= 20 && count <= 80, `${test} rejected ${count} of 1000`);
  }
});

Deno.test("welchTTest() rejects a shift of half a standard deviation (n = 200) in over 95 % of runs", () => {
  const random = mulberry32(5);
  let rejected = 0;
  for (let trial = 0; trial < 200; trial++) {
    const x = draw(200, () => normal(random));
    const y = draw(200, () => normal(random, 0.5));
    if (welchTTest(x, y).pValue <= 0.05) rejected++;
  }
  ok(rejected > 190, `rejected ${rejected} of 200`);
});

Deno.test("quantileTest() detects a heavier tail at p = 0.99 that leaves the median alone", () => {
  const random = mulberry32(9);
  const x = draw(3000, () => exponential(random));
  // The same distribution with its slowest 2 % twice as slow.
  const y = draw(3000, () => exponential(random)).map((v) => (v > -Math.log(0.02) ? 2 * v : v));
  ok(quantileTest(x, y, 0.99).pValue < 0.001);
  ok(quantileTest(x, y, 0.5).pValue > 0.01);
});

Deno.test("holm() matches statsmodels multipletests(method='holm') in input order", () => {
  // statsmodels.stats.multitest.multipletests(p, alpha=0.05, method="holm") (statsmodels 0.14).
  const { rejected, adjusted } = holm([0.01, 0.04, 0.03, 0.005, 0.5, 0.02]);
  deepStrictEqual(rejected, [true, false, false, true, false, false]);
  const expected = [0.05, 0.09, 0.09, 0.03, 0.5, 0.08];
  expected.forEach((p, i) => close(adjusted[i]!, p, 1e-12));
});

Deno.test("holm() caps adjusted p-values at 1 and handles no p-values", () => {
  deepStrictEqual(holm([0.6, 0.9, 0.4]).adjusted, [1, 1, 1]);
  deepStrictEqual(holm([]), { rejected: [], adjusted: [] });
});

Deno.test("holm() rejects none of 20 null p-values at family α = 0.05 in at least 90 % of 200 trials", () => {
  const random = mulberry32(3);
  let clean = 0;
  for (let trial = 0; trial < 200; trial++) {
    if (!holm(Array.from(draw(20, random))).rejected.includes(true)) clean++;
  }
  ok(clean >= 180, `no rejection in ${clean} of 200`);
});

Deno.test("steadyState() compares the range of the last windows with their median", () => {
  deepStrictEqual(steadyState([50, 100, 102, 98], 3, 0.05), { steady: true, spread: 0.04 });
  const unsteady = steadyState([100, 90, 110], 3, 0.1);
  equal(unsteady.steady, false);
  close(unsteady.spread, 0.2);
  deepStrictEqual(steadyState([0, 0], 2, 0), { steady: true, spread: 0 });
});

Deno.test("steadyState() is not steady with fewer values than windows", () => {
  const result = steadyState([100, 100], 3, 0.1);
  equal(result.steady, false);
  ok(Number.isNaN(result.spread));
  throws(() => steadyState([1], 0, 0.1), /positive integer: got 0/);
});
