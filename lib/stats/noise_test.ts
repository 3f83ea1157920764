import { deepStrictEqual, equal } from "node:assert/strict";
import {
  cellNoise,
  combineOha,
  combineResources,
  distinct,
  type Repetition,
  splitRequests,
  spread,
} from "./noise.ts";
import { parseOhaJson } from "../load/oha.ts";
import type { ResourceStats } from "../results/results.ts";

const recorded = parseOhaJson(
  await Deno.readTextFile(new URL("../load/testdata/oha_ok.json", import.meta.url)),
);

Deno.test("splitRequests() shares the requests out, never below one each", () => {
  deepStrictEqual(splitRequests(100, 3), [34, 33, 33]);
  deepStrictEqual(splitRequests(9, 3), [3, 3, 3]);
  deepStrictEqual(splitRequests(2, 3), [1, 1]);
  deepStrictEqual(splitRequests(5, 1), [5]);
});

Deno.test("spread() gives min, median, max and the relative range of finite values", () => {
  deepStrictEqual(spread([12, 10, 11]), {
    n: 3,
    min: 10,
    median: 11,
    max: 12,
    relativeRangePercent: (2 / 11) * 100,
  });
  deepStrictEqual(spread([4, 2]), { n: 2, min: 2, median: 3, max: 4, relativeRangePercent: (2 / 3) * 100 });
  equal(spread([undefined, NaN]), undefined);
});

Deno.test("distinct() needs non-overlapping ranges and two repetitions on each side", () => {
  const s = (...v: number[]) => spread(v);
  equal(distinct(s(1, 2, 3), s(4, 5, 6)), true);
  equal(distinct(s(4, 5, 6), s(1, 2, 3)), true);
  equal(distinct(s(1, 2, 4), s(3, 5, 6)), false);
  equal(distinct(s(1), s(4, 5)), undefined);
  equal(distinct(undefined, s(4, 5)), undefined);
});

Deno.test("combineOha() adds counts, recomputes throughput and takes the median percentile", () => {
  const a = recorded;
  const b = {
    ...recorded,
    durationS: recorded.durationS * 2,
    latencyMs: { ...recorded.latencyMs, p50: 100, p99: 300, max: 500 },
    statusCodes: { "200": 400, "503": 100 },
    responses: 500,
    successful: 400,
    failedStatus: 100,
  };
  const c = { ...recorded, latencyMs: { ...recorded.latencyMs, p50: 1, p99: 2, min: 0.1 } };
  const all = combineOha([a, b, c]);
  equal(all.responses, 1500);
  equal(all.successful, 1400);
  equal(all.failedStatus, 100);
  equal(all.durationS, recorded.durationS * 4);
  equal(all.throughputRps, 1400 / (recorded.durationS * 4));
  equal(all.errorRate, 100 / 1500);
  deepStrictEqual(all.statusCodes, { "200": 1400, "503": 100 });
  equal(all.latencyMs.p50, recorded.latencyMs.p50);
  equal(all.latencyMs.p99, recorded.latencyMs.p99);
  equal(all.latencyMs.max, 500);
  equal(all.latencyMs.min, 0.1);
  equal(combineOha([a]), a);
});

const res = (cpu: number, rss: number, samples: number): ResourceStats => ({
  samples,
  cpuPercentMean: cpu,
  cpuPercentPeak: cpu + 10,
  rssBytesMean: rss,
  rssBytesPeak: rss + 1,
  workingSetBytesMean: rss,
  workingSetBytesPeak: rss + 2,
});

Deno.test("combineResources() weights CPU by duration, memory by samples, and keeps the peaks", () => {
  const r = combineResources([
    { resources: res(100, 1000, 1), durationS: 1 },
    { resources: res(200, 4000, 3), durationS: 3 },
    { durationS: 5 },
  ])!;
  equal(r.samples, 4);
  equal(r.cpuPercentMean, 175);
  equal(r.cpuPercentPeak, 210);
  equal(r.rssBytesMean, 3250);
  equal(r.rssBytesPeak, 4001);
  equal(r.workingSetBytesPeak, 4002);
  equal(combineResources([{ durationS: 1 }]), undefined);
});

Deno.test("cellNoise() measures each figure across repetitions", () => {
  const rep = (rps: number, p99: number, rss: number): Repetition => ({
    requests: 10,
    oha: { ...recorded, throughputRps: rps, latencyMs: { ...recorded.latencyMs, p99 } },
    resources: res(100, rss, 2),
    textsPerSecond: rps * 8,
  });
  const n = cellNoise([rep(10, 5, 100), rep(12, 7, 300), rep(11, 6, 200)]);
  deepStrictEqual(n.throughputRps, {
    n: 3,
    min: 10,
    median: 11,
    max: 12,
    relativeRangePercent: (2 / 11) * 100,
  });
  deepStrictEqual(n.textsPerSecond?.median, 88);
  deepStrictEqual([n.p99Ms?.min, n.p99Ms?.max], [5, 7]);
  deepStrictEqual([n.rssBytesPeak?.min, n.rssBytesPeak?.max], [101, 301]);
  equal(n.cpuPercentMean?.relativeRangePercent, 0);
});
