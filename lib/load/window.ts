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
  /** Seconds from the first response to the deadline: the span throughput is counted over. */
  durationS: number;
  /** Requests measured: sent after the first response arrived (the connection openers excluded). */
  measured: number;
  /** Measured requests answered 2xx. */
  successful: number;
  /** Measured requests answered with another status. */
  failedStatus: number;
  /** Requests that got no answer (connection errors, timeouts), by kind; oha cannot say when they were sent. */
  errors: Record<string, number>;
  /** The requests in flight before the first response: one per connection oha opened. */
  openers: number;
  /** 2xx responses completed inside [first response, deadline] per second of it. */
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
 * Under a fixed rate the same rule sets apart the requests sent before the first answer. Throughput
 * counts 2xx answers completed between the first answer and the deadline, over that span.
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
  let completedInside = 0;
  records.forEach((r, i) => {
    if (measured[i]) {
      if (isSuccess(r.status)) successful++;
      else failedStatus++;
    }
    if (isSuccess(r.status) && r.endS >= firstEnd && r.endS <= deadlineS) completedInside++;
  });
  const durationS = Math.max(0, deadlineS - firstEnd);
  return {
    record: {
      durationS,
      measured: successful + failedStatus,
      successful,
      failedStatus,
      openers: measured.filter((m) => !m).length,
      throughputRps: durationS > 0 ? completedInside / durationS : 0,
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
