/**
 * One measured window: a fixed-duration oha run whose requests are read one by one. The requests
 * that opened the window's connections are set apart, so connection set-up and the initial burst
 * are outside the figures; throughput counts the responses completed inside the window.
 */
import type { RequestRecord } from "./requests.ts";
import { isSuccess } from "./requests.ts";
import { type OhaOptions, runOha } from "./oha.ts";

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
}

/** A window's records split into the measured part, and its figures. */
export interface SplitWindow {
  record: Omit<WindowRecord, "index" | "errors" | "connectionsOpened" | "loadgenCpuSeconds" | "loadgenBusy">;
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
  const run = await runOha(
    { ...spec.oha, durationS: spec.durationS, waitOngoing: true, dbFile: spec.dbFile },
    spec.outFile,
    signal,
  );
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
    },
    records,
    measured: split.measured,
  };
}
