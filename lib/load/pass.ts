/**
 * One pass of a cell: a discarded warm-up at the cell's own load, then fixed-duration windows until
 * the last few windows' throughput agree (steady state) and enough requests are measured, or a
 * time limit passes. Every request goes to the request log; the pass's figures are returned.
 */
import { join } from "node:path";
import { steadyState } from "../stats/tests.ts";
import { type LoggedRequest, requestLogPath, writeRequestLog } from "./requests.ts";
import { type OhaOptions, runOha } from "./oha.ts";
import { runWindow, type ServerProbe, type WindowRecord } from "./window.ts";

/** The measurement rules (benchmark_config.yaml `measurement`). */
export interface MeasurementRules {
  warmup_requests: number;
  window_s: number;
  steady_windows: number;
  steady_tolerance: number;
  max_s: number;
  timeout_s: number;
}

/** A windows' least number of measured requests: fewer, and the window is lengthened. */
export const MIN_WINDOW_REQUESTS = 20;

/** What a pass measures. */
export interface PassSpec {
  cellId: string;
  /** 1-based. */
  pass: number;
  url: string;
  /** One JSON body per line; oha sends a random line per request. */
  bodiesFile: string;
  concurrency: number;
  /** A fixed arrival rate (open loop), requests per second. */
  rateQps?: number;
  /** The loadgen cpuset and its size. */
  loadgenCpus: string;
  loadgenCpuCount: number;
  /** Measured successful requests the pass needs at least. */
  minRequests: number;
  /** A pass whose failed fraction goes above this stops early. */
  maxErrorRate: number;
  rules: MeasurementRules;
  logsDir: string;
  /** Reads the server's CPU and counters around each window. */
  probe?: ServerProbe;
  /** Called after each window; false ends the pass (the server stopped). */
  afterWindow?: (w: WindowRecord) => Promise<boolean>;
}

/** Why a pass ended. */
export type PassEnd = "steady" | "max_time" | "server_stopped" | "errors" | "aborted";

/** A pass's figures. */
export interface PassResult {
  pass: number;
  /** The last steady_windows windows' throughput agreed within steady_tolerance. */
  steady: boolean;
  /** (max − min) / median of the last steady_windows windows' throughput. */
  stability: number;
  endedBy: PassEnd;
  /** Each window's length, seconds (window_s, lengthened for slow cells). */
  windowS: number;
  /** The discarded warm-up; its failed requests (non-2xx or unanswered) still count against the cell. */
  warmup: { requests: number; durationS: number; throughputRps: number; failed: number };
  windows: WindowRecord[];
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/**
 * The window length that gives each window enough measured requests at the warm-up's rate, but
 * short enough that steady_windows of them fit in max_s (so steady state can be judged at all).
 */
export function windowLength(
  rules: Omit<MeasurementRules, "warmup_requests">,
  concurrency: number,
  rateRps: number,
): number {
  if (!(rateRps > 0)) return rules.window_s;
  const needed = (MIN_WINDOW_REQUESTS + 2 * concurrency) / rateRps;
  const longest = Math.max(rules.window_s, Math.floor(rules.max_s / rules.steady_windows));
  return Math.min(longest, Math.max(rules.window_s, Math.ceil(needed)));
}

/** Runs one pass; its requests are written to the request log before it returns. */
export async function measurePass(spec: PassSpec, signal?: AbortSignal): Promise<PassResult> {
  const dir = join(spec.logsDir, "oha");
  await Deno.mkdir(dir, { recursive: true });
  const base = `${spec.cellId}.p${spec.pass}`;
  const oha: Omit<OhaOptions, "durationS" | "requests" | "dbFile" | "waitOngoing"> = {
    url: spec.url,
    bodyFile: spec.bodiesFile,
    bodyLines: true,
    concurrency: spec.concurrency,
    timeoutS: spec.rules.timeout_s,
    cpus: spec.loadgenCpus,
    ...(spec.rateQps !== undefined ? { rateQps: spec.rateQps, latencyCorrection: true } : {}),
  };
  const log: LoggedRequest[] = [];

  // Warm-up at the cell's own concurrency (or rate), over oha's connections; discarded.
  const warmRequests = Math.max(spec.rules.warmup_requests, 2 * spec.concurrency);
  const warm = await runOha(
    spec.rateQps !== undefined
      ? { ...oha, durationS: spec.rules.window_s, waitOngoing: true }
      : { ...oha, requests: warmRequests },
    join(dir, `${base}.warmup.json`),
    signal,
  );
  const warmup = {
    requests: warm.summary.responses + warm.summary.errorCount,
    durationS: warm.summary.durationS,
    throughputRps: warm.summary.throughputRps,
    failed: warm.summary.failedStatus + warm.summary.errorCount,
  };
  const windowS = windowLength(spec.rules, spec.concurrency, spec.rateQps ?? warmup.throughputRps);

  const windows: WindowRecord[] = [];
  let endedBy: PassEnd = "max_time";
  let elapsed = 0;
  while (elapsed + windowS <= spec.rules.max_s || windows.length === 0) {
    if (signal?.aborted) {
      endedBy = "aborted";
      break;
    }
    const index = windows.length + 1;
    const w = await runWindow(
      {
        oha,
        durationS: windowS,
        loadgenCpus: spec.loadgenCpuCount,
        outFile: join(dir, `${base}.w${index}.json`),
        dbFile: join(dir, `${base}.w${index}.db`),
        probe: spec.probe,
      },
      index,
      signal,
    );
    windows.push(w.record);
    w.records.forEach((r, i) => log.push({ ...r, pass: spec.pass, window: index, measured: w.measured[i]! }));
    elapsed += windowS;
    if (spec.afterWindow && !(await spec.afterWindow(w.record))) {
      endedBy = "server_stopped";
      break;
    }
    const failed = warmup.failed + sum(windows.map((x) => x.failedStatus + sum(Object.values(x.errors))));
    const attempted = failed + sum(windows.map((x) => x.successful));
    if (failed > 0 && failed / attempted > spec.maxErrorRate) {
      endedBy = "errors";
      break;
    }
    const { steady } = steadyState(
      windows.map((x) => x.throughputRps),
      spec.rules.steady_windows,
      spec.rules
        .steady_tolerance,
    );
    if (steady && sum(windows.map((x) => x.successful)) >= spec.minRequests) {
      endedBy = "steady";
      break;
    }
  }
  await writeRequestLog(requestLogPath(spec.logsDir, spec.cellId, spec.pass), log);
  const st = steadyState(
    windows.map((x) => x.throughputRps),
    spec.rules.steady_windows,
    spec.rules
      .steady_tolerance,
  );
  return {
    pass: spec.pass,
    steady: st.steady,
    stability: st.spread,
    endedBy,
    windowS,
    warmup,
    windows,
  };
}
