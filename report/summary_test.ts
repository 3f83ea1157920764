import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { mulberry32 } from "../lib/stats/random.ts";
import { type LoadedRun, loadRun } from "../tasks/report.ts";
import {
  frameworkOrder,
  frameworkStyle,
  METRICS,
  percentile,
  rank,
  summarize,
  testVerdicts,
  tint,
  verdictText,
} from "./summary.ts";

// Read when a test needs it, so that the tests without the fixture run even when it cannot be read
// (an older results format, until report/testdata/make_fixture.sh remakes it).
let loaded: Promise<LoadedRun> | undefined;
const loadFixture =
  () => (loaded ??= loadRun(fileURLToPath(new URL("./testdata/fixture-run", import.meta.url))));

Deno.test("rank() orders by the metric's direction; testVerdicts() tests each lead and corrects over all", () => {
  const e = (framework: string, value: number, cellId: string) => ({
    framework,
    value,
    concurrency: 1,
    cellId,
  });
  const random = mulberry32(7);
  const sample = (median: number, n: number) => ({
    latencies: Array.from({ length: n }, () => median * (0.9 + 0.2 * random())),
    windowRps: Array.from({ length: 6 }, () => 1000 / median * (0.98 + 0.04 * random())),
  });
  const samples = new Map([
    ["fast", sample(2, 2000)],
    ["slow", sample(4, 2000)],
    ["same-a", sample(3, 2000)],
    ["same-b", sample(3, 2000)],
  ]);
  const apart = rank(METRICS.p50, [e("candle", 4, "slow"), e("onnx-cpp", 2, "fast")]);
  deepStrictEqual(apart.ranking.map((x) => x.framework), ["onnx-cpp", "candle"]);
  equal(apart.marginPercent, 50);
  const alike = rank(METRICS.texts, [e("torch", 100, "same-a"), e("openvino", 101, "same-b")]);
  const tail = rank(METRICS.p99, [e("torch", 1, "fast"), e("candle", 2, "slow")]);
  const memory = rank(METRICS.rss, [e("torch", 1, "fast"), e("candle", 2, "slow")]);
  testVerdicts([apart, alike, tail, memory], samples);
  equal(apart.test!.significant, true);
  ok(
    verdictText(apart).startsWith("ONNX Runtime (C++) 2.00 ms; 50.0 % lower than Candle (Rust); significant"),
  );
  equal(alike.test!.significant, false, "two cells drawn from one distribution");
  ok(/; not significant \(adjusted p = [\d.]+\)$/.test(verdictText(alike)), verdictText(alike));
  equal(tail.test!.untestable, undefined, "2,000 requests support p99");
  equal(tail.test!.significant, true);
  equal(memory.test, undefined);
  ok(verdictText(memory).endsWith("not tested (one figure per pass)"));
  const single = rank(METRICS.p99, [e("torch", 1, "fast")]);
  equal(verdictText(single), "PyTorch 1.00 ms (only one framework)");
  const noData = rank(METRICS.p50, [e("torch", 1, "x"), e("candle", 2, "y")]);
  testVerdicts([noData], samples);
  ok(verdictText(noData).endsWith("not tested: no per-request data"));
});

Deno.test("summarize() takes the sweep's latency at its lowest level, throughput at each framework's best", async () => {
  const fixture = await loadFixture();
  const cells = [...fixture.cells.values()];
  const rows = summarize(cells, fixture.run.config.scenarios.map((s) => s.name), fixture.samples);
  const sweep = rows.find((r) => r.scenario === "sweep" && r.sequenceLength === 32)!;
  equal(sweep.latencyConcurrency, 1);
  const ok32 = cells.filter((c) => c.status === "ok" && c.scenario === "sweep" && c.sequenceLength === 32);
  const [p50, , texts, rss] = sweep.verdicts;
  // Expected leaders, worked out here from the cell files directly.
  const atC1 = ok32.filter((c) => c.concurrency === 1).sort((a, b) =>
    percentile(a, "p50")! - percentile(b, "p50")!
  );
  equal(p50!.ranking[0]!.framework, atC1[0]!.framework);
  equal(p50!.ranking[0]!.value, percentile(atC1[0]!, "p50"));
  ok(p50!.test?.adjustedP !== undefined, "the lead was tested on the fixture's request logs");
  const fastest = ok32.reduce((a, b) => (b.textsPerSecond! > a.textsPerSecond! ? b : a));
  deepStrictEqual(
    [texts!.ranking[0]!.framework, texts!.ranking[0]!.concurrency, texts!.ranking[0]!.value],
    [fastest.framework, fastest.concurrency, fastest.textsPerSecond],
  );
  // Memory: each framework's highest steady PSS over the sweep, smallest first.
  const peaks = frameworkOrder(ok32.map((c) => c.framework)).map((f) =>
    Math.max(...ok32.filter((c) => c.framework === f).map((c) => METRICS.rss.value(c)!))
  ).sort((a, b) => a - b);
  deepStrictEqual(rss!.ranking.map((e) => e.value), peaks);
  // Open-loop cells are not ranked with the closed-loop scenarios.
  ok(rows.every((r) => r.scenario !== "rate"));
  // PyTorch failed every cell: it is in no ranking.
  ok(rows.every((r) => r.verdicts.every((v) => v.ranking.every((e) => e.framework !== "torch"))));
});

Deno.test("frameworks keep their order and colour; unknown ones get a stable colour after them", () => {
  deepStrictEqual(frameworkOrder(["zeta", "openvino", "torch", "alpha"]), [
    "torch",
    "openvino",
    "alpha",
    "zeta",
  ]);
  equal(frameworkStyle("candle").colour, "#E69F00");
  equal(frameworkStyle("testserver").colour, frameworkStyle("testserver").colour);
  equal(frameworkStyle("testserver").label, "testserver");
});

Deno.test("a framework's batched mode is its own series: labelled, a tint of its colour, ordered after it", () => {
  const seq = frameworkStyle("onnx-cpp");
  const bat = frameworkStyle("onnx-cpp+batched");
  equal(bat.label, `${seq.label}, batched`);
  equal(tint("#000000", 0.5), "#808080");
  equal(bat.colour, tint(seq.colour, 0.45));
  deepStrictEqual(frameworkOrder(["candle", "onnx-cpp+batched", "torch", "onnx-cpp"]), [
    "torch",
    "onnx-cpp",
    "onnx-cpp+batched",
    "candle",
  ]);
});
