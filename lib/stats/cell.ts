/**
 * A cell's figures from all its passes: percentiles from the pooled measured requests (never from
 * other percentiles), throughput from the windows, and the flags that say how far to trust them.
 */
import type { LoggedRequest } from "../load/requests.ts";
import { isSuccess } from "../load/requests.ts";
import type { PassResult } from "../load/pass.ts";
import { type LatencySummary, summarize } from "./quantiles.ts";

/** Above this busy fraction of its CPUs, the load generator may be what limits the cell. */
export const LOADGEN_BUSY_LIMIT = 0.6;
/** Connections a window may open beyond its concurrency before the server counts as dropping keep-alive. */
export const EXTRA_CONNECTIONS = { fraction: 0.1, absolute: 2 };

/** What a cell measured, pooled over its passes and windows. */
export interface CellFigures {
  /**
   * Latency of the measured successful requests of every window of every pass, ms; with a
   * max_error_rate above 0, failed requests are added at the timeout.
   */
  latencyMs: LatencySummary;
  /** 2xx responses completed inside the windows per second of window (all passes). */
  throughputRps: number;
  /** throughputRps × batch size. */
  textsPerSecond: number;
  counts: {
    /** Requests sent after the first response of their window. */
    measured: number;
    successful: number;
    /** Window requests (measured or connection openers) answered with a non-2xx status. */
    failedStatus: number;
    /** Warm-up requests that failed (non-2xx or unanswered): not timed, but they count as failures. */
    warmupFailed: number;
    /** Requests that got no answer, by kind. */
    errors: Record<string, number>;
    /** Connection-opening requests set apart (not in the figures). */
    openers: number;
    /** Failed requests counted at the timeout in latencyMs (0 unless failures are tolerated). */
    failedAtTimeout: number;
    windows: number;
    passes: number;
  };
  /** Failed fraction: (failedStatus + errors + warmupFailed) / (those + successful). */
  errorRate: number;
  /** True when every pass reached steady state. */
  steady: boolean;
  /** Each window's throughput, req/s, every pass in order: the replicates throughput is compared on. */
  windowRps: number[];
  loadgen: {
    /** oha's highest busy fraction of its CPUs over the windows. */
    busyMax?: number;
    /** busyMax above LOADGEN_BUSY_LIMIT: the load generator may have limited the cell. */
    overloaded: boolean;
  };
  connections: {
    /** The most connections a window opened. */
    openedMax?: number;
    /** Connections a window needs: its concurrency. */
    perWindow: number;
    /** A window opened more than perWindow (beyond a small tolerance): the server dropped keep-alive. */
    keepAliveDropped: boolean;
  };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** The figures of a cell from its passes and their logged requests. */
export function cellFigures(
  passes: PassResult[],
  requests: LoggedRequest[],
  o: { batchSize: number; concurrency: number; tolerateFailures: boolean; timeoutMs: number },
): CellFigures {
  const windows = passes.flatMap((p) => p.windows);
  const latencies: number[] = [];
  for (const r of requests) if (r.measured && isSuccess(r.status)) latencies.push(r.latencyMs);
  const failedStatus = sum(windows.map((w) => w.failedStatus));
  const warmupFailed = sum(passes.map((p) => p.warmup.failed ?? 0));
  const errors: Record<string, number> = {};
  for (const w of windows) {
    for (const [k, n] of Object.entries(w.errors)) errors[k] = (errors[k] ?? 0) + n;
  }
  const errorCount = sum(Object.values(errors));
  const successful = latencies.length;
  const failures = failedStatus + errorCount + warmupFailed;
  let failedAtTimeout = 0;
  if (o.tolerateFailures) {
    failedAtTimeout = failures;
    for (let i = 0; i < failedAtTimeout; i++) latencies.push(o.timeoutMs);
  }
  const span = sum(windows.map((w) => w.durationS));
  const completed = sum(windows.map((w) => w.throughputRps * w.durationS));
  const throughputRps = span > 0 ? completed / span : 0;
  const busy = windows.map((w) => w.loadgenBusy).filter((b): b is number => b !== undefined);
  const opened = windows.map((w) => w.connectionsOpened).filter((c): c is number => c !== undefined);
  const openedMax = opened.length ? Math.max(...opened) : undefined;
  const allowed = o.concurrency * (1 + EXTRA_CONNECTIONS.fraction) + EXTRA_CONNECTIONS.absolute;
  const attempted = successful + failures;
  return {
    latencyMs: summarize(latencies),
    throughputRps,
    textsPerSecond: throughputRps * o.batchSize,
    counts: {
      measured: sum(windows.map((w) => w.measured)),
      successful,
      failedStatus,
      warmupFailed,
      errors,
      openers: sum(windows.map((w) => w.openers)),
      failedAtTimeout,
      windows: windows.length,
      passes: passes.length,
    },
    errorRate: attempted > 0 ? failures / attempted : 0,
    steady: passes.length > 0 && passes.every((p) => p.steady),
    windowRps: windows.map((w) => w.throughputRps),
    loadgen: {
      busyMax: busy.length ? Math.max(...busy) : undefined,
      overloaded: busy.some((b) => b > LOADGEN_BUSY_LIMIT),
    },
    connections: {
      openedMax,
      perWindow: o.concurrency,
      keepAliveDropped: openedMax !== undefined && openedMax > allowed,
    },
  };
}
