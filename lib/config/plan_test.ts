import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { parseYaml, validateSources } from "./config.ts";
import { planCells } from "./plan.ts";

Deno.test("planCells() crosses models, frameworks, sequence lengths, scenarios and sweep levels", async () => {
  const root = new URL("../..", import.meta.url);
  const { models, config } = validateSources(
    parseYaml("models.yaml", await Deno.readTextFile(new URL("models.yaml", root))),
    parseYaml("benchmark_config.yaml", await Deno.readTextFile(new URL("benchmark_config.yaml", root))),
  );
  const cells = planCells({ ...config, serving: ["sequential", "batched"] }, models);
  // bge-m3 × 6 frameworks × 2 serving modes × 3 lengths × (5 scenarios + 8 sweep levels + 4 open-loop fractions)
  equal(cells.length, 6 * 2 * 3 * (5 + 8 + 4));
  equal(new Set(cells.map((c) => c.id)).size, cells.length, "ids are unique");
  equal(cells[0]!.id, "bge-m3__torch__single_query__seq32");
  const sweep = cells.find((c) => c.id === "bge-m3__candle__sweep__seq512__c128")!;
  deepStrictEqual([sweep.concurrency, sweep.batchSize, sweep.sweep], [128, 1, true]);
  const batch = cells.find((c) => c.id === "bge-m3__openvino__batch_processing__seq128")!;
  deepStrictEqual([batch.concurrency, batch.batchSize, batch.numRequests], [1, 8, 500]);
  const rate = cells.find((c) => c.id === "bge-m3__onnx-cpp__rate__seq128__f75")!;
  deepStrictEqual([rate.rateFraction, rate.concurrency, rate.batchSize, rate.numRequests], [
    0.75,
    128,
    1,
    1000,
  ]);
  const batched = cells.find((c) => c.id === "bge-m3__onnx-cpp+batched__sweep__seq128__c16")!;
  deepStrictEqual([batched.framework, batched.serving, batched.concurrency], ["onnx-cpp", "batched", 16]);
  equal(cells.filter((c) => c.serving === "batched").length, cells.length / 2, "each mode its own cells");
  const forSeq = cells.filter((c) =>
    c.framework === "onnx-cpp" && c.serving === "sequential" && c.sequenceLength === 128
  );
  deepStrictEqual(
    forSeq.slice(-5).map((c) => c.scenario),
    ["sweep", "rate", "rate", "rate", "rate"],
    "open-loop cells follow the sweep that sets their rate",
  );
});

Deno.test("planCells() skips sequence lengths above a model's max_seq_length", async () => {
  const root = new URL("../..", import.meta.url);
  const { models, config } = validateSources(
    parseYaml("models.yaml", await Deno.readTextFile(new URL("models.yaml", root))),
    parseYaml("benchmark_config.yaml", await Deno.readTextFile(new URL("benchmark_config.yaml", root))),
  );
  const clipOnly = { ...config, active_models: ["clip"], frameworks: ["torch" as const] };
  deepStrictEqual([...new Set(planCells(clipOnly, models).map((c) => c.sequenceLength))], [32]);
});

Deno.test("planCells() labels every cell with input.prompt_name, in its id and its promptName", async () => {
  const root = new URL("../..", import.meta.url);
  const { models, config } = validateSources(
    parseYaml("models.yaml", await Deno.readTextFile(new URL("models.yaml", root))),
    parseYaml("benchmark_config.yaml", await Deno.readTextFile(new URL("benchmark_config.yaml", root))),
  );
  const base = { ...config, active_models: ["tiny-gemma3"], frameworks: ["onnx-cpp" as const] };
  const documents = planCells(base, models);
  const queries = planCells({ ...base, input: { ...config.input, prompt_name: "query" } }, models);
  equal(queries.length, documents.length);
  ok(documents.every((c) => c.promptName === undefined));
  ok(queries.every((c) => c.promptName === "query"));
  equal(documents[0]!.id, "tiny-gemma3__onnx-cpp__single_query__seq32");
  equal(queries[0]!.id, "tiny-gemma3__onnx-cpp__single_query__seq32_query");
  ok(queries.some((c) => c.id === "tiny-gemma3__onnx-cpp+batched__sweep__seq128_query__c16"));
  ok(queries.some((c) => c.id === "tiny-gemma3__onnx-cpp__rate__seq512_query__f75"));
});
