/**
 * Start-up, split into what the container engine, the runtime, the model and the warm-up each
 * took. Servers stamp each stage on CLOCK_MONOTONIC in /info's `startup` (docker/CONTRACT.md); the
 * harness places the stamps on its own timeline through the stamp `now`, taken when /info answered.
 */
import { quantile } from "../stats/quantiles.ts";

/** /info's `startup`, seconds on the server's monotonic clock; null until reached. */
export interface StartupStamps {
  clock: "monotonic";
  process_start: number | null;
  runtime_ready: number | null;
  model_loaded: number | null;
  warmed: number | null;
  now: number;
}

/** A start's phases, milliseconds. */
export interface StartupPhases {
  /** Container creation requested → the server process started (engine, namespaces, exec). */
  containerMs?: number;
  /** Process start → runtime imported and initialised (interpreter, framework import, port bound). */
  runtimeMs?: number;
  /** Runtime ready → model ready to run (read, parsed, compiled; LOAD_DELAY_MS included). */
  modelLoadMs?: number;
  /** Model ready → warm-up inference answered; absent with WARMUP=0. */
  warmupMs?: number;
  /** Container creation requested → first 200 from /health, as the harness saw it. */
  healthyMs: number;
}

function isStamps(v: unknown): v is StartupStamps {
  const s = v as StartupStamps;
  return !!s && typeof s === "object" && typeof s.now === "number";
}

/**
 * The phases of a start from the server's stamps. `createdAtMs` and `infoAtMs` are the harness's
 * performance.now() when it asked to create the container and (the midpoint of) its /info call;
 * the server's `now` was stamped within that call, so the mapping errs by at most half its round trip.
 */
export function startupPhases(
  stamps: unknown,
  t: { createdAtMs: number; infoAtMs: number; healthyMs: number },
): StartupPhases {
  const out: StartupPhases = { healthyMs: t.healthyMs };
  if (!isStamps(stamps)) return out;
  const ms = (a: number | null, b: number | null) =>
    typeof a === "number" && typeof b === "number" ? (b - a) * 1000 : undefined;
  const local = (x: number | null) =>
    typeof x === "number" ? t.infoAtMs - (stamps.now - x) * 1000 : undefined;
  const started = local(stamps.process_start);
  if (started !== undefined) out.containerMs = started - t.createdAtMs;
  const runtime = ms(stamps.process_start, stamps.runtime_ready);
  if (runtime !== undefined) out.runtimeMs = runtime;
  const model = ms(stamps.runtime_ready, stamps.model_loaded);
  if (model !== undefined) out.modelLoadMs = model;
  const warm = ms(stamps.model_loaded, stamps.warmed);
  if (warm !== undefined) out.warmupMs = warm;
  return out;
}

/** One fresh start with WARMUP=0: its phases and its first two requests. */
export interface ColdStart {
  phases: StartupPhases;
  /** The first /embed the server ever ran, ms (no warm-up inference before it). */
  firstRequestMs: number;
  /** The request right after it, ms: what the first one costs beyond a warm one. */
  secondRequestMs: number;
  loadPeakBytes?: number;
}

/** Medians over a framework's cold starts. */
export interface ColdStartSummary {
  framework: string;
  model: string;
  starts: ColdStart[];
  median: {
    containerMs?: number;
    runtimeMs?: number;
    modelLoadMs?: number;
    healthyMs: number;
    firstRequestMs: number;
    secondRequestMs: number;
  };
}

/** Medians of the starts' figures (each over the starts that have it). */
export function summarizeColdStarts(framework: string, model: string, starts: ColdStart[]): ColdStartSummary {
  const med = (f: (s: ColdStart) => number | undefined) => {
    const v = starts.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x));
    return v.length ? quantile(v, 0.5) : undefined;
  };
  return {
    framework,
    model,
    starts,
    median: {
      containerMs: med((s) => s.phases.containerMs),
      runtimeMs: med((s) => s.phases.runtimeMs),
      modelLoadMs: med((s) => s.phases.modelLoadMs),
      healthyMs: med((s) => s.phases.healthyMs) ?? NaN,
      firstRequestMs: med((s) => s.firstRequestMs) ?? NaN,
      secondRequestMs: med((s) => s.secondRequestMs) ?? NaN,
    },
  };
}

/** Medians of several starts' phases (each over the starts that have it). */
export function medianPhases(starts: (StartupPhases | undefined)[]): Partial<StartupPhases> | undefined {
  const have = starts.filter((s): s is StartupPhases => s !== undefined);
  if (!have.length) return undefined;
  const out: Partial<StartupPhases> = {};
  for (const k of ["containerMs", "runtimeMs", "modelLoadMs", "warmupMs", "healthyMs"] as const) {
    const v = have.map((s) => s[k]).filter((x): x is number => x !== undefined && Number.isFinite(x));
    if (v.length) out[k] = quantile(v, 0.5);
  }
  return out;
}
