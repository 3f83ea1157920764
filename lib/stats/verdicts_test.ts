import { equal, ok } from "node:assert/strict";
import { type CellSample, decide, passNoise, passTest, testDifference } from "./verdicts.ts";
import { mulberry32, normal } from "./random.ts";

const random = mulberry32(11);
/** A cell whose passes scatter by `cv` around `p50` ms, with 3,000 requests a pass. */
function cell(p50: number, cv: number, passes = 2): CellSample {
  const per = Array.from({ length: passes }, () => p50 * Math.exp(normal(random, 0, cv)));
  return {
    latencies: per.flatMap((m) => Array.from({ length: 3000 }, () => m * (0.9 + 0.2 * random()))),
    windowRps: per.flatMap((m) => [1000 / m, 1000 / m]),
    passes: per.map((m) => ({ p50: m, p99: m * 1.1, throughput: 1000 / m })),
  };
}

Deno.test("passNoise() pools the pass-to-pass spread of every cell on a log scale", () => {
  const cells = Array.from({ length: 40 }, () => cell(10, 0.03));
  const noise = passNoise(cells);
  ok(Math.abs(noise.p50!.sigma - 0.03) < 0.01, `sigma ${noise.p50!.sigma}`);
  equal(noise.p50!.df, 40);
});

Deno.test("a difference between containers alone is held back; a large one is significant", () => {
  const cells = Array.from({ length: 40 }, () => cell(10, 0.03));
  const noise = passNoise(cells);
  // Identical configurations: the per-request test sees thousands of requests and the passes' luck.
  const calls = Array.from(
    { length: 200 },
    () => testDifference("p50", cell(10, 0.03), cell(10, 0.03), noise),
  );
  const significant = decide(calls).filter((v) => v.significant).length;
  equal(significant, 0, "no identical pair is called different after Holm");
  const perRequestOnly = calls.filter((d) => d.pRequests! < 0.05).length;
  ok(perRequestOnly > 100, `${perRequestOnly} of 200 would pass the per-request test alone`);
  // A 30 % faster cell is found with two passes each.
  const lead = testDifference("p50", cell(7, 0.03), cell(10, 0.03), noise);
  ok(lead.pValue! < 1e-4, `p ${lead.pValue}`);
  equal(passTest("p50", cell(10, 0.03), { latencies: [], windowRps: [] }, noise.p50), undefined);
});
