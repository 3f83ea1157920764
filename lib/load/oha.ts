/**
 * Runs the oha load generator for one cell and parses its JSON output into typed results.
 *
 * oha's JSON is treated as a contract: the version is pinned (lib/versions.ts), the fields read are
 * checked with a schema, and lib/testdata/ holds recorded outputs the parser is tested on.
 */
import { z } from "zod";
import { parseCpuset } from "../config/cpuset.ts";
import { RunError } from "../errors.ts";
import { clientPorts, opened } from "./connections.ts";

/** What oha is asked to do for one window of load. */
export interface OhaOptions {
  url: string;
  /** File holding the request body (JSON), or with `bodyLines` one body per line. */
  bodyFile: string;
  /** The body file holds one body per line and oha sends a random line per request (-Z). */
  bodyLines?: boolean;
  concurrency: number;
  /** Number of requests (-n); exclusive with durationS. */
  requests?: number;
  /** Run for this long (-z), in seconds; requests still in flight at the deadline are cut. */
  durationS?: number;
  /** With durationS: wait for the requests in flight at the deadline instead of cutting them (-w). */
  waitOngoing?: boolean;
  /** Fixed request rate (-q) in requests per second. */
  rateQps?: number;
  /** With a fixed rate: correct latencies for coordinated omission. */
  latencyCorrection?: boolean;
  /** Per-request timeout in seconds (-t). */
  timeoutS?: number;
  /** Pin oha to these CPUs with taskset (a cpuset string). */
  cpus?: string;
  /** oha's async runtime threads; defaults to the number of CPUs in `cpus`. */
  workerThreads?: number;
  /** The oha binary; default "oha" from PATH. */
  binary?: string;
  /** Write every response's start, end, latency and status to this SQLite file (--db-url). */
  dbFile?: string;
}

/** Latency figures in milliseconds. */
export interface LatencyMs {
  mean: number;
  min: number;
  max: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  p999: number;
}

/** One oha run, parsed. Latencies in milliseconds, throughput in requests per second. */
export interface OhaSummary {
  /** Wall time of the measured load, seconds. */
  durationS: number;
  /** Responses received, whatever their status. */
  responses: number;
  /** Responses with a 2xx status. */
  successful: number;
  /** Responses with a non-2xx status. */
  failedStatus: number;
  /** Requests that got no response (connection errors, timeouts), by kind; deadline cuts excluded. */
  errors: Record<string, number>;
  errorCount: number;
  /** Requests still in flight when a -z deadline ended the run: neither errors nor successes. */
  cutAtDeadline: number;
  /** (failedStatus + errorCount) / (responses + errorCount). */
  errorRate: number;
  /** Successful responses per second: oha's own requestsPerSec also counts errors and deadline cuts. */
  throughputRps: number;
  /** oha's requestsPerSec, kept for reference. */
  ohaRequestsPerSec: number;
  /**
   * Latency of successful responses (oha's success breakdown); `mean`, `min` and `max` are over all
   * responses, as oha reports them.
   */
  latencyMs: LatencyMs;
  statusCodes: Record<string, number>;
}

const percentiles = z.object({
  p50: z.number().nullable(),
  p90: z.number().nullable(),
  p95: z.number().nullable(),
  p99: z.number().nullable(),
  "p99.9": z.number().nullable(),
}).loose();

/** The part of oha's JSON output embbench reads (oha 1.16 with --stats-success-breakdown). */
const OhaJson = z.object({
  summary: z.object({
    successRate: z.number().nullable(),
    total: z.number(),
    slowest: z.number().nullable(),
    fastest: z.number().nullable(),
    average: z.number().nullable(),
    requestsPerSec: z.number(),
  }).loose(),
  latencyPercentiles: percentiles.partial().loose(),
  latencyPercentilesSuccessful: percentiles.partial().loose().optional(),
  statusCodeDistribution: z.record(z.string(), z.number()),
  errorDistribution: z.record(z.string(), z.number()),
}).loose();

const DEADLINE = /aborted due to deadline/i;

/** Parses oha's JSON output (seconds) into an OhaSummary (milliseconds). */
export function parseOhaJson(text: string): OhaSummary {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new RunError(`Cannot parse oha output: ${(e as Error).message}`);
  }
  const parsed = OhaJson.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    throw new RunError(
      `Cannot parse oha output: ${first.path.join(".")}: ${first.message} (is oha the pinned version?)`,
    );
  }
  const j = parsed.data;
  const statusCodes = j.statusCodeDistribution;
  let successful = 0;
  let responses = 0;
  for (const [code, n] of Object.entries(statusCodes)) {
    responses += n;
    if (/^2\d\d$/.test(code)) successful += n;
  }
  const errors: Record<string, number> = {};
  let cutAtDeadline = 0;
  let errorCount = 0;
  for (const [kind, n] of Object.entries(j.errorDistribution)) {
    if (DEADLINE.test(kind)) cutAtDeadline += n;
    else {
      errors[kind] = n;
      errorCount += n;
    }
  }
  const failedStatus = responses - successful;
  const attempted = responses + errorCount;
  const p = j.latencyPercentilesSuccessful ?? j.latencyPercentiles;
  const ms = (s: number | null | undefined) => (s === null || s === undefined ? NaN : s * 1000);
  return {
    durationS: j.summary.total,
    responses,
    successful,
    failedStatus,
    errors,
    errorCount,
    cutAtDeadline,
    errorRate: attempted === 0 ? 0 : (failedStatus + errorCount) / attempted,
    throughputRps: j.summary.total > 0 ? successful / j.summary.total : 0,
    ohaRequestsPerSec: j.summary.requestsPerSec,
    latencyMs: {
      mean: ms(j.summary.average),
      min: ms(j.summary.fastest),
      max: ms(j.summary.slowest),
      p50: ms(p.p50),
      p90: ms(p.p90),
      p95: ms(p.p95),
      p99: ms(p.p99),
      p999: ms(p["p99.9"]),
    },
    statusCodes,
  };
}

/** The command line for one oha run writing JSON to `outFile`. */
export function ohaCommand(o: OhaOptions, outFile: string): { cmd: string; args: string[] } {
  if ((o.requests === undefined) === (o.durationS === undefined)) {
    throw new RangeError("oha needs exactly one of requests and durationS");
  }
  const workerThreads = o.workerThreads ?? (o.cpus ? parseCpuset(o.cpus).length : undefined);
  const args = [
    "--no-tui",
    "--output-format",
    "json",
    "--output",
    outFile,
    "--stats-success-breakdown",
    // Ask for uncompressed answers: a server that honoured gzip or br would be timed compressing.
    "--disable-compression",
    "-c",
    String(o.concurrency),
    ...(o.requests !== undefined ? ["-n", String(o.requests)] : ["-z", `${o.durationS}s`]),
    ...(o.durationS !== undefined && o.waitOngoing ? ["-w"] : []),
    ...(o.rateQps !== undefined ? ["-q", String(o.rateQps)] : []),
    ...(o.rateQps !== undefined && o.latencyCorrection ? ["--latency-correction"] : []),
    ...(o.timeoutS !== undefined ? ["-t", `${o.timeoutS}s`] : []),
    ...(workerThreads !== undefined ? ["--worker-threads", String(workerThreads)] : []),
    "-m",
    "POST",
    "-T",
    "application/json",
    o.bodyLines ? "-Z" : "-D",
    o.bodyFile,
    ...(o.dbFile ? ["--db-url", o.dbFile] : []),
    o.url,
  ];
  const binary = o.binary ?? "oha";
  return o.cpus ? { cmd: "taskset", args: ["-c", o.cpus, binary, ...args] } : { cmd: binary, args };
}

/** One oha process: its parsed output and what it cost the load generator's side. */
export interface OhaRun {
  summary: OhaSummary;
  /** Wall time from spawn to exit, seconds (connection set-up and process start included). */
  wallSeconds: number;
  /** oha's own CPU time (user + system), seconds; undefined when it could not be read. */
  cpuSeconds?: number;
  /**
   * TCP connections opened to the target's port while oha ran (lib/load/connections.ts); undefined
   * where the kernel's socket tables cannot be read.
   */
  connectionsOpened?: number;
}

/** bash's `times` output ("0m0.010s 0m0.002s" for the shell, then its children) to CPU seconds of the children. */
export function parseTimes(stderr: string): number | undefined {
  const lines = stderr.trimEnd().split("\n").slice(-2);
  const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(lines[1]?.trim() ?? "");
  if (!m) return undefined;
  return Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]);
}

/**
 * Runs oha and returns its parsed results with its CPU time and the connections it opened; oha's
 * own failures become a RunError with its stderr. oha runs under bash so that bash's `times`
 * builtin can report the CPU time of its child after it exits. `bracket` runs right before oha is
 * spawned and right after it exits (the server's CPU is read there).
 */
export async function runOha(
  o: OhaOptions,
  outFile: string,
  signal?: AbortSignal,
  bracket?: { before(): Promise<void>; after(): Promise<void> },
): Promise<OhaRun> {
  const { cmd, args } = ohaCommand(o, outFile);
  const script = '"$@"; s=$?; times >&2; exit $s';
  const port = Number(new URL(o.url).port || 80);
  const portsBefore = clientPorts(port);
  await bracket?.before();
  const t0 = performance.now();
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("bash", {
      args: ["-c", script, "oha", cmd, ...args],
      stdout: "piped",
      stderr: "piped",
      signal,
    }).output();
  } catch (e) {
    throw new RunError(`Cannot start oha (${cmd}): ${(e as Error).message}; run 'embbench doctor'`);
  }
  const wallSeconds = (performance.now() - t0) / 1000;
  await bracket?.after();
  const portsAfter = clientPorts(port);
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) {
    const err = stderr.trim().split("\n").slice(-7, -2).join("\n");
    if (out.code === 127) throw new RunError(`Cannot start oha (${cmd}): not found; run 'embbench doctor'`);
    throw new RunError(`oha exited with code ${out.code}: ${err}`);
  }
  return {
    summary: parseOhaJson(await Deno.readTextFile(outFile)),
    wallSeconds,
    cpuSeconds: parseTimes(stderr),
    connectionsOpened: opened(portsBefore, portsAfter),
  };
}
