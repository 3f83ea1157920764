import { equal } from "node:assert/strict";
import { windowLength } from "./pass.ts";

const rules = { window_s: 5, steady_windows: 3, steady_tolerance: 0.05, max_s: 60, timeout_s: 120 };

Deno.test("windowLength() keeps window_s for fast cells and lengthens slow ones within max_s / steady_windows", () => {
  equal(windowLength(rules, 1, 100), 5, "100 req/s fills 5 s with 500 requests");
  equal(windowLength(rules, 4, 2), 14, "(20 + 2 × 4) / 2 req/s = 14 s");
  equal(windowLength(rules, 128, 10), 20, "28 s wanted, but three windows must fit in 60 s");
  equal(windowLength(rules, 1, 0), 5, "no rate measured: window_s");
});
