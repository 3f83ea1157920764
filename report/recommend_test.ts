import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { caveats, pickText, recommend, recommendationsSection } from "./recommend.ts";
import { blocksToMarkdown } from "./document.ts";
import { resources, syntheticCells, syntheticRun } from "./testkit.ts";

/**
 * Model m at 32 tokens: ONNX Runtime (C++) answers a single query in 2 ms, Candle in 4 ms; Candle
 * peaks at 1,200 req/s at c=4, ONNX Runtime (C++) at 800 at c=16; Candle's steady PSS is 600 MiB
 * everywhere, ONNX Runtime (C++)'s 500 MiB but 900 MiB after its 128-token cell; the cheapest
 * embeddings are ONNX Runtime (C++)'s batch-8 cell at 0.5 EUR per million against Candle's 0.8.
 */
function run1() {
  return syntheticCells([
    { framework: "onnx-cpp", p50: 2, resources: resources({ pssMiB: 500, cost: 2 }) },
    { framework: "candle", p50: 4, resources: resources({ pssMiB: 600, cost: 3 }) },
    {
      framework: "onnx-cpp",
      scenario: "sweep",
      c: 4,
      rps: 600,
      resources: resources({ pssMiB: 500, cost: 1 }),
    },
    { framework: "onnx-cpp", scenario: "sweep", c: 16, rps: 800, resources: resources({ pssMiB: 500 }) },
    {
      framework: "candle",
      scenario: "sweep",
      c: 4,
      rps: 1200,
      resources: resources({ pssMiB: 600, cost: 0.9 }),
    },
    { framework: "candle", scenario: "sweep", c: 16, rps: 1000, resources: resources({ pssMiB: 600 }) },
    {
      framework: "onnx-cpp",
      scenario: "batch_processing",
      batch: 8,
      p50: 10,
      resources: resources({ pssMiB: 500, cost: 0.5 }),
    },
    {
      framework: "candle",
      scenario: "batch_processing",
      batch: 8,
      p50: 12,
      resources: resources({ pssMiB: 600, cost: 0.8 }),
    },
    // The 128-token cells: only their memory counts for the 32-token picks.
    { framework: "onnx-cpp", seq: 128, p50: 5, resources: resources({ pssMiB: 900, cost: 4 }) },
    { framework: "candle", seq: 128, p50: 5, resources: resources({ pssMiB: 600, cost: 4.1 }) },
    // Open-loop and failed cells take part in no pick.
    { framework: "candle", scenario: "rate", c: 8, rateFraction: 0.5, p50: 0.5, rps: 9000 },
    { framework: "onnx-cpp", scenario: "sweep", c: 64, status: "failed" },
  ]);
}

Deno.test("recommend() picks per need, with the margin over the runner-up", () => {
  const { cells, samples } = run1();
  const rec = recommend(cells, samples, "EUR");
  deepStrictEqual(rec.rows.map((r) => `${r.model}/${r.sequenceLength}`), ["m/32", "m/128"]);
  deepStrictEqual(rec.skipped, []);
  const [latency, throughput, memory, cost] = rec.rows[0]!.picks;
  const lead = (p: typeof latency) =>
    p!.verdict!.ranking.map((e) => `${e.framework} ${e.value}${e.cellId.endsWith("c4") ? " @c4" : ""}`);

  deepStrictEqual(lead(latency).map((s) => s.split(" ")[0]), ["onnx-cpp", "candle"]);
  ok(Math.abs(latency!.verdict!.ranking[0]!.value - 2) < 0.05, "p50 of the single_query cell");
  ok(Math.abs(latency!.verdict!.marginPercent! - 50) < 3);

  deepStrictEqual(lead(throughput), ["candle 1200 @c4", "onnx-cpp 800"], "each at its best concurrency");
  equal(throughput!.verdict!.marginPercent, 50);

  // Memory: each framework at its highest over all its cells of the model (the 128-token one too).
  deepStrictEqual(lead(memory), ["candle 600", "onnx-cpp 900"]);
  ok(Math.abs(memory!.verdict!.marginPercent! - 100 / 3) < 1e-9);

  // Cost: over all closed-loop cells, any batch size; the open-loop cell's is not looked at.
  deepStrictEqual(lead(cost), ["onnx-cpp 0.5", "candle 0.8"]);
  ok(Math.abs(cost!.verdict!.marginPercent! - 37.5) < 1e-9);
});

Deno.test("latency and throughput leads are tested; memory and cost say they are not", () => {
  const { cells, samples } = run1();
  const rec = recommend(cells, samples, "EUR");
  const [latency, throughput, memory, cost] = rec.rows[0]!.picks;
  equal(latency!.verdict!.test!.significant, true);
  equal(throughput!.verdict!.test!.significant, true);
  equal(memory!.verdict!.test, undefined);
  equal(cost!.verdict!.test, undefined);
  const text = (p: typeof latency) => pickText(p!, rec.cells, "EUR");
  ok(
    text(latency).startsWith("ONNX Runtime (C++): p50 2.0") &&
      / ms \(single_query, c=1\); \d\d\.\d % lower than Candle \(Rust\) with p50 [34]\.\d\d ms \(single_query, c=1\); /
        .test(text(latency)) &&
      text(latency).includes("; significant (adjusted p"),
    text(latency),
  );
  equal(
    text(throughput).split("; ").slice(0, 2).join("; "),
    "Candle (Rust): 1,200.0 texts/s (c=4, sweep); 50.0 % higher than ONNX Runtime (C++) with 800.0 texts/s (c=16, sweep)",
  );
  equal(
    text(memory),
    "Candle (Rust): 600 MiB steady PSS; 33.3 % lower than ONNX Runtime (C++) with 900 MiB steady PSS; not tested (one figure per pass)",
  );
  equal(
    text(cost),
    "ONNX Runtime (C++): 0.500 EUR per 1M (batch 8, c=1, batch_processing); 37.5 % lower than Candle (Rust) with 0.800 EUR per 1M (batch 8, c=1, batch_processing); not tested (derived from throughput and the price)",
  );
  // At 128 tokens the two are drawn from one distribution: the lead is not significant.
  const [close] = rec.rows[1]!.picks;
  equal(close!.verdict!.test!.significant, false);
  ok(
    /; not significant \(adjusted p = [\d.]+/.test(pickText(close!, rec.cells)),
    pickText(close!, rec.cells),
  );
  // Without per-request data nothing can be tested, and the pick says so.
  const untested = recommend(cells, new Map(), "EUR");
  ok(pickText(untested.rows[0]!.picks[0]!, untested.cells).endsWith("not tested: no per-request data"));
});

Deno.test("no recommendation where a model or length has fewer than two frameworks with ok cells", () => {
  const { cells, samples } = syntheticCells([
    { model: "solo", framework: "onnx-cpp", p50: 2 },
    { model: "solo", framework: "candle", status: "failed" },
    { model: "none", framework: "candle", status: "failed" },
    { model: "m", framework: "onnx-cpp", p50: 2 },
    { model: "m", framework: "candle", p50: 3 },
    { model: "m", framework: "onnx-cpp", seq: 512, p50: 9 },
  ]);
  const rec = recommend(cells, samples);
  deepStrictEqual(rec.rows.map((r) => `${r.model}/${r.sequenceLength}`), ["m/32"]);
  deepStrictEqual(rec.skipped, [
    "m, 512 tokens: only ONNX Runtime (C++) has ok closed-loop cells, so there is nothing to choose between.",
    "none: no framework has ok cells, so there is nothing to choose between.",
    "solo: only ONNX Runtime (C++) has ok cells, so there is nothing to choose between.",
  ]);
  // m/32 has no memory or cost figures at all, and its cells are single queries only.
  const [latency, throughput, memory, cost] = rec.rows[0]!.picks;
  ok(latency!.verdict && throughput!.verdict);
  equal(pickText(memory!, rec.cells), "no framework has a steady memory figure");
  equal(pickText(cost!, rec.cells), "no framework has a cost figure");
});

Deno.test("a figure only one framework has is named as such, without a margin", () => {
  const { cells, samples } = syntheticCells([
    { framework: "onnx-cpp", p50: 2, resources: resources({ cost: 1 }) },
    { framework: "candle", p50: 3 },
  ]);
  const rec = recommend(cells, samples, "EUR");
  equal(
    pickText(rec.rows[0]!.picks[3]!, rec.cells, "EUR"),
    "ONNX Runtime (C++): 1.00 EUR per 1M (batch 1, c=1, single_query); the only framework with this figure, nothing to compare",
  );
});

Deno.test("the section: a table of picks, then the caveats from the run", () => {
  const { cells, samples } = run1();
  const run = syntheticRun();
  const blocks = recommendationsSection(run, cells, samples);
  const md = blocksToMarkdown({ title: "t", subtitle: "s", blocks });
  ok(md.includes("## Recommendations"));
  ok(md.includes("| model | seq | latency matters | throughput matters | memory matters | cost matters |"));
  ok(/one Holm–Bonferroni correction over these 4 tests/.test(md), "two tested needs × two lengths");
  ok(md.includes("not tested (one figure per pass)"));
  ok(md.includes("not tested (derived from throughput and the price)"));
  const items = caveats(run, cells);
  ok(items.some((i) => i.startsWith("fp32 only: every server computes in float32")), items.join("\n"));
  ok(
    items.some((i) => i.includes('"physical" policy') && i.includes("ONNX Runtime (C++) 2, Candle (Rust) 2")),
  );
  ok(
    items.some((i) =>
      i.includes("at most 1 request(s) at a time (MAX_INFLIGHT)") &&
      i.includes('serving mode "batched" was not configured')
    ),
  );
  ok(items.some((i) => i.startsWith("Not measured:")));
  ok(items.some((i) => i.includes("ONNX Runtime (C++) (1) failed cell(s)")), "the failed sweep cell");
  ok(!items.some((i) => i.includes("--quick")));
  const quick = caveats(syntheticRun({ quick: true }), cells);
  ok(quick[0]!.includes("is not a benchmark result"));
  // A server that batched requests together would contradict the serving caveat: it is named.
  const batched = syntheticCells([{
    framework: "candle",
    c: 4,
    scenario: "sweep",
    resources: resources({
      phases: {
        requests: 10,
        ms: { parse: 0, tokenize: 0, queue: 0, inference: 1, serialize: 0, request: 1 },
        meanBatch: 3,
      },
    }),
  }]);
  ok(
    caveats(run, batched.cells).some((i) =>
      i.includes("inferences larger than the requests' batch in 1 cell(s)")
    ),
  );
});
