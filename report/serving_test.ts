import { equal, ok } from "node:assert/strict";
import type { CellResult } from "../lib/results/results.ts";
import { servingRows, servingSection } from "./serving.ts";

function cell(server: string, concurrency: number, tps: number, p50: number, meanBatch?: number): CellResult {
  return {
    id: `m__${server}__sweep__seq32__c${concurrency}`,
    model: "m",
    framework: server,
    serving: server.includes("+batched") ? "batched" : "sequential",
    scenario: "sweep",
    sequenceLength: 32,
    batchSize: 1,
    concurrency,
    numRequests: 10,
    status: "ok",
    version: 3,
    startedAt: "",
    endedAt: "",
    textsPerSecond: tps,
    counts: { successful: 100 },
    latencyMs: { percentiles: { p50: { value: p50 } } },
    resources: meanBatch === undefined ? {} : { phases: { requests: 1, ms: {}, meanBatch } },
  } as unknown as CellResult;
}

Deno.test("servingRows() pairs each framework's modes at the highest common concurrency", () => {
  const cells = [
    cell("onnx-cpp", 1, 80, 12),
    cell("onnx-cpp", 16, 82, 190),
    cell("onnx-cpp+batched", 1, 79, 12.5),
    cell("onnx-cpp+batched", 16, 123, 120, 7.5),
    cell("candle", 1, 30, 33), // only one mode: no row
  ];
  const rows = servingRows(cells);
  equal(rows.length, 1);
  const r = rows[0]!;
  equal(r.framework, "onnx-cpp");
  equal(r.concurrency, 16);
  ok(Math.abs(r.ratio! - 123 / 82) < 1e-12);
  equal(r.meanBatch, 7.5);
  equal(r.sequentialP50, 12);
  equal(r.batchedP50, 12.5);
  const blocks = servingSection(cells);
  equal(blocks[0]!.kind, "heading");
  equal(servingSection([cell("candle", 1, 30, 33)]).length, 0, "no section without both modes");
});
