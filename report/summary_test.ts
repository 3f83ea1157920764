import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { spread } from "../lib/stats/noise.ts";
import { loadRun } from "../tasks/report.ts";
import { frameworkOrder, frameworkStyle, METRICS, rank, summarize, verdictText } from "./summary.ts";

const fixture = await loadRun(fileURLToPath(new URL("./testdata/fixture-run", import.meta.url)));
const cells = [...fixture.cells.values()];

Deno.test("rank() orders by the metric's direction and judges the lead against the noise", () => {
  const e = (framework: string, ...v: number[]) => ({
    framework,
    value: v[1]!,
    spread: spread(v),
    concurrency: 1,
  });
  const apart = rank(METRICS.p50, [e("candle", 3, 4, 5), e("onnx-cpp", 1, 2, 2.5)]);
  deepStrictEqual(apart.ranking.map((x) => x.framework), ["onnx-cpp", "candle"]);
  equal(apart.marginPercent, 50);
  equal(apart.beyondNoise, true);
  equal(verdictText(apart), "ONNX Runtime (C++) 2.00 ms; 50.0 % lower than Candle (Rust); beyond noise");
  const overlapping = rank(METRICS.texts, [e("torch", 90, 100, 120), e("openvino", 100, 110, 130)]);
  deepStrictEqual(overlapping.ranking.map((x) => x.framework), ["openvino", "torch"]);
  equal(overlapping.beyondNoise, false);
  ok(verdictText(overlapping).endsWith("10.0 % higher than PyTorch; within noise"));
  const single = rank(METRICS.p99, [{ framework: "torch", value: 1, concurrency: 1 }]);
  equal(verdictText(single), "PyTorch 1.00 ms (only one framework)");
  const noNoise = rank(METRICS.p99, [
    { framework: "torch", value: 1, concurrency: 1 },
    { framework: "candle", value: 2, concurrency: 1 },
  ]);
  equal(noNoise.beyondNoise, undefined);
  ok(verdictText(noNoise).endsWith("noise not measured"));
});

Deno.test("summarize() takes the sweep's latency at its lowest level, throughput at each framework's best", () => {
  const rows = summarize(cells, fixture.run.config.scenarios.map((s) => s.name));
  const sweep = rows.find((r) => r.scenario === "sweep" && r.sequenceLength === 32)!;
  equal(sweep.latencyConcurrency, 1);
  const ok32 = cells.filter((c) => c.status === "ok" && c.scenario === "sweep" && c.sequenceLength === 32);
  const [p50, , texts, rss] = sweep.verdicts;
  // Expected leaders, worked out here from the cell files directly.
  const atC1 = ok32.filter((c) => c.concurrency === 1).sort((a, b) =>
    a.oha!.latencyMs.p50 - b.oha!.latencyMs.p50
  );
  equal(p50!.ranking[0]!.framework, atC1[0]!.framework);
  equal(p50!.ranking[0]!.value, atC1[0]!.oha!.latencyMs.p50);
  const fastest = ok32.reduce((a, b) => (b.textsPerSecond! > a.textsPerSecond! ? b : a));
  deepStrictEqual(
    [texts!.ranking[0]!.framework, texts!.ranking[0]!.concurrency, texts!.ranking[0]!.value],
    [fastest.framework, fastest.concurrency, fastest.textsPerSecond],
  );
  // Memory: each framework's highest peak over the sweep, smallest first.
  const peaks = frameworkOrder(ok32.map((c) => c.framework)).map((f) =>
    Math.max(...ok32.filter((c) => c.framework === f).map((c) => c.resources!.rssBytesPeak)) / 2 ** 20
  ).sort((a, b) => a - b);
  deepStrictEqual(rss!.ranking.map((e) => e.value), peaks);
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
