/**
 * One measured window: a fixed-duration oha run whose requests are read one by one. The requests
 * that opened the window's connections are set apart, so connection set-up and the initial burst
 * are outside the figures; throughput counts the responses completed inside the window.
 */
import type { RequestRecord } from "./requests.ts";
import { isSuccess } from "./requests.ts";
import { type OhaOptions, runOha } from "./oha.ts";
import { metricsDelta, type MetricsReading } from "../server/metrics.ts";

/** Reads the server under load: its CPU time and its /metrics counters (either may be unavailable). */
export interface ServerProbe {
  /** The server's CPU time so far, seconds. */
  cpuSeconds(): Promise<number | undefined>;
  /** Host-wide CPU time and steal so far, seconds (/proc/stat). */
  hostTimes(): { totalS: number; stealS: number } | undefined;
  metrics(): Promise<MetricsReading | undefined>;
}

/** What the server did during one window's oha run. */
export interface ServerWindow {
  /** Wall time from right before oha was spawned to right after it exited, seconds. */
  wallSeconds: number;
  /** The server's CPU time over exactly that span, seconds. */
  cpuSeconds?: number;
  /** Host-wide: CPU time the hypervisor stole over the span, and all CPU time, seconds. */
  stealSeconds?: number;
  hostCpuSeconds?: number;
  /** Requests oha got an answer to in the span (2xx or not): what the CPU time served. */
  answered: number;
  /** The /metrics counters' differences across the window (read just outside the span). */
  metrics?: MetricsReading;
}

/** A window's figures (the requests themselves go to the request log). */
export interface WindowRecord {
  /** 1-based within its pass. */
  index: number;
  /** Seconds between the first and the last 2xx answer counted for throughput (see splitWindow). */
  durationS: number;
  /** Requests measured: sent after the first response arrived (the connection openers excluded). */
  measured: number;
  /** Measured requests answered 2xx. */
  successful: number;
  /** Requests of the window (measured or not) answered with another status. */
  failedStatus: number;
  /** Requests that got no answer (connection errors, timeouts), by kind; oha cannot say when they were sent. */
  errors: Record<string, number>;
  /** The requests in flight before the first response: one per connection oha opened. */
  openers: number;
  /** Completions per second between the last opener's answer and the last answer before the deadline. */
  throughputRps: number;
  /** TCP connections oha opened during the window (see OhaRun.connectionsOpened). */
  connectionsOpened?: number;
  /** oha's CPU time, seconds, and its busy fraction of the load generator's CPUs over the window. */
  loadgenCpuSeconds?: number;
  loadgenBusy?: number;
  /** The fixed arrival rate, when the window was open-loop. */
  offeredRps?: number;
  /** The server's CPU and phase counters over the window, when a probe was given. */
  server?: ServerWindow;
}

/** A window's records split into the measured part, and its figures. */
export interface SplitWindow {
  record: Omit<
    WindowRecord,
    "index" | "errors" | "connectionsOpened" | "loadgenCpuSeconds" | "loadgenBusy" | "server"
  >;
  /** Per request: whether it is measured (same order as the input). */
  measured: boolean[];
}

/**
 * Splits a window's responses. A closed-loop connection sends its next request only after its
 * previous answer, so every request sent before the first answer arrived is the first on its
 * connection: those openers carry the connection set-up and the initial burst and are set apart.
 * Under a fixed rate the same rule sets apart the requests sent before the first answer.
 *
 * Throughput is taken between completions, so no partial service time at either end biases it:
 * from the answer to the last opener (when every connection is cycling) to the last 2xx answer
 * before the deadline, k answers after the first over the time between them. For one connection
 * answering every s seconds that is exactly 1 / s.
 */
export function splitWindow(records: RequestRecord[], deadlineS: number): SplitWindow {
  if (records.length === 0) {
    return {
      record: { durationS: 0, measured: 0, successful: 0, failedStatus: 0, openers: 0, throughputRps: 0 },
      measured: [],
    };
  }
  let firstEnd = Infinity;
  for (const r of records) firstEnd = Math.min(firstEnd, r.endS);
  const measured = records.map((r) => r.startS >= firstEnd);
  let successful = 0;
  let failedStatus = 0;
  let lastOpenerEnd = -Infinity;
  records.forEach((r, i) => {
    if (!isSuccess(r.status)) failedStatus++;
    else if (measured[i]) successful++;
    if (!measured[i]) lastOpenerEnd = Math.max(lastOpenerEnd, r.endS);
  });
  const ends = records.filter((r) => isSuccess(r.status) && r.endS >= lastOpenerEnd && r.endS <= deadlineS)
    .map((r) => r.endS).sort((a, b) => a - b);
  const durationS = ends.length >= 2 ? ends.at(-1)! - ends[0]! : 0;
  return {
    record: {
      durationS,
      measured: measured.filter(Boolean).length,
      successful,
      failedStatus,
      openers: measured.filter((m) => !m).length,
      throughputRps: durationS > 0 ? (ends.length - 1) / durationS : 0,
    },
    measured,
  };
}

/** What one window needs beyond oha's options. */
export interface WindowSpec {
  oha: Omit<OhaOptions, "durationS" | "requests" | "dbFile" | "waitOngoing">;
  durationS: number;
  /** CPUs the load generator may use (for its busy fraction). */
  loadgenCpus: number;
  /** oha's JSON and SQLite files for this window. */
  outFile: string;
  dbFile: string;
  /** Reads the server's CPU right at oha's start and exit, and its /metrics just outside. */
  probe?: ServerProbe;
}

/**
 * Runs one window: oha for a fixed duration, waiting for the requests in flight at the deadline
 * (so no slow request is cut off), then reads every response from its SQLite file.
 */
export async function runWindow(
  spec: WindowSpec,
  index: number,
  signal?: AbortSignal,
): Promise<{ record: WindowRecord; records: RequestRecord[]; measured: boolean[] }> {
  const { readOhaDb } = await import("./requests.ts");
  try {
    await Deno.remove(spec.dbFile);
  } catch {
    // not there: oha creates it
  }
  const probe = spec.probe;
  const m0 = await probe?.metrics();
  let c0: number | undefined, c1: number | undefined;
  let h0: { totalS: number; stealS: number } | undefined, h1: typeof h0;
  let t0 = 0, t1 = 0;
  const run = await runOha(
    { ...spec.oha, durationS: spec.durationS, waitOngoing: true, dbFile: spec.dbFile },
    spec.outFile,
    signal,
    probe && {
      // The wall span encloses the CPU readings, so busy cores can never exceed the cpuset.
      before: async () => {
        t0 = performance.now();
        c0 = await probe.cpuSeconds();
        h0 = probe.hostTimes();
      },
      after: async () => {
        c1 = await probe.cpuSeconds();
        h1 = probe.hostTimes();
        t1 = performance.now();
      },
    },
  );
  const m1 = await probe?.metrics();
  const records = readOhaDb(spec.dbFile);
  await Deno.remove(spec.dbFile).catch(() => {});
  const split = splitWindow(records, spec.durationS);
  const busy = run.cpuSeconds !== undefined && run.wallSeconds > 0
    ? run.cpuSeconds / (run.wallSeconds * spec.loadgenCpus)
    : undefined;
  return {
    record: {
      index,
      ...split.record,
      errors: run.summary.errors,
      connectionsOpened: run.connectionsOpened,
      loadgenCpuSeconds: run.cpuSeconds,
      loadgenBusy: busy,
      ...(spec.oha.rateQps !== undefined ? { offeredRps: spec.oha.rateQps } : {}),
      ...(probe
        ? {
          server: {
            wallSeconds: (t1 - t0) / 1000,
            ...(c0 !== undefined && c1 !== undefined ? { cpuSeconds: c1 - c0 } : {}),
            ...(h0 && h1
              ? { stealSeconds: h1.stealS - h0.stealS, hostCpuSeconds: h1.totalS - h0.totalS }
              : {}),
            answered: run.summary.responses,
            ...(m0 && m1 ? { metrics: metricsDelta(m0, m1) } : {}),
          },
        }
        : {}),
    },
    records,
    measured: split.measured,
  };
}
