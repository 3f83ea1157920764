import { equal, ok } from "node:assert/strict";
import { startupPhases, summarizeColdStarts } from "./startup.ts";

Deno.test("startupPhases() places the server's stamps on the harness's timeline through `now`", () => {
  // Harness: asked for the container at 1000 ms, /info answered at 5000 ms (midpoint).
  // Server: process started 3.7 s before `now`, runtime 0.4 s later, model 1.5 s, warm-up 0.3 s.
  const now = 200;
  const stamps = {
    clock: "monotonic",
    process_start: now - 3.7,
    runtime_ready: now - 3.3,
    model_loaded: now - 1.8,
    warmed: now - 1.5,
    now,
  };
  const p = startupPhases(stamps, { createdAtMs: 1000, infoAtMs: 5000, healthyMs: 3900 });
  const near = (a: number | undefined, b: number) =>
    ok(a !== undefined && Math.abs(a - b) < 1e-6, `${a} vs ${b}`);
  near(p.containerMs, 300); // 5000 − 3700 − 1000
  near(p.runtimeMs, 400);
  near(p.modelLoadMs, 1500);
  near(p.warmupMs, 300);
  equal(p.healthyMs, 3900);
  const cold = startupPhases({ ...stamps, warmed: null }, {
    createdAtMs: 1000,
    infoAtMs: 5000,
    healthyMs: 3600,
  });
  equal(cold.warmupMs, undefined, "WARMUP=0: no warm-up phase");
  equal(
    startupPhases({ framework: "old" }, { createdAtMs: 0, infoAtMs: 1, healthyMs: 9 }).runtimeMs,
    undefined,
  );
});

Deno.test("summarizeColdStarts() takes medians over the starts", () => {
  const start = (first: number, model: number) => ({
    phases: { healthyMs: 1000 + model, modelLoadMs: model },
    firstRequestMs: first,
    secondRequestMs: 5,
  });
  const s = summarizeColdStarts("f", "m", [start(90, 500), start(30, 700), start(60, 600)]);
  equal(s.median.firstRequestMs, 60);
  equal(s.median.modelLoadMs, 600);
  equal(s.median.runtimeMs, undefined);
});
