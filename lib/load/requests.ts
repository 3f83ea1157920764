/**
 * Requests: the bodies a cell sends (convert's payloads/, chosen by sequence length, batch size and
 * prompt), oha's SQLite output (--db-url) read into records, and the run folder's request logs
 * (`logs/requests/<cell>.p<pass>.csv.gz`) that keep every measured request of a cell.
 */
// @ts-ignore: Deno's bundled Node types lack node:sqlite, which Deno 2.9 has at run time.
import * as sqlite from "node:sqlite";
import { join } from "node:path";
import type { Cell } from "../config/plan.ts";
import { RunError } from "../errors.ts";

/**
 * The request bodies of a cell: K distinct bodies, one per line, written by convert's payload
 * generator: payloads/seq<L>_b<B>.jsonl, or seq<L>_b<B>_<prompt>.jsonl when the cell measures a prompt
 * (its bodies carry "prompt_name" and texts of L tokens with the prompt applied).
 */
export function payloadFile(
  modelsDir: string,
  cell: Pick<Cell, "model" | "sequenceLength" | "batchSize" | "promptName">,
): string {
  const prompt = cell.promptName === undefined ? "" : `_${cell.promptName}`;
  return join(
    modelsDir,
    cell.model,
    "payloads",
    `seq${cell.sequenceLength}_b${cell.batchSize}${prompt}.jsonl`,
  );
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Why converted models cannot be measured with the prompt `promptName` (config input.prompt_name),
 * one sentence per model; empty when each has payloads for it. A model whose folder has no
 * payloads/index.json is left to the cells' own "run convert" error. Checked at run start: the
 * prompts of a model models.yaml gives none for are only known from its folder.
 */
export async function promptPayloadProblems(
  modelsDir: string,
  models: string[],
  promptName: string,
): Promise<string[]> {
  const problems: string[] = [];
  for (const model of models) {
    const dir = join(modelsDir, model);
    const index = await readJson(join(dir, "payloads", "index.json"));
    if (!isRecord(index) || !Array.isArray(index.payloads)) continue;
    if (index.payloads.some((e) => isRecord(e) && e.prompt_name === promptName)) continue;
    const spec = await readJson(join(dir, "embbench_model.json"));
    const prompts = isRecord(spec) && isRecord(spec.prompts) ? Object.keys(spec.prompts) : [];
    problems.push(
      prompts.includes(promptName)
        ? `input.prompt_name is "${promptName}", but ${dir}/payloads/index.json lists no payloads with that ` +
          `prompt: run 'embbench convert ${model}' again to write them`
        : `input.prompt_name is "${promptName}", which model "${model}" does not have (${dir}/embbench_model.json ` +
          `prompts: ${prompts.length > 0 ? prompts.join(", ") : "none"})`,
    );
  }
  return problems;
}

/** The part of node:sqlite's DatabaseSync used here. */
interface Database {
  prepare(sql: string): { all(): unknown[] };
  close(): void;
}
const DatabaseSync = (sqlite as { DatabaseSync: new (path: string, o: { readOnly: boolean }) => Database })
  .DatabaseSync;

/** One response, as oha recorded it; times relative to the start of the oha process's load. */
export interface RequestRecord {
  /** When the request was sent, seconds. */
  startS: number;
  /** When its response was complete, seconds. */
  endS: number;
  /**
   * Latency in ms: end minus the send time, or under a fixed rate with latency correction end minus
   * the time the request was scheduled (so queueing in the load generator counts).
   */
  latencyMs: number;
  /** HTTP status code. */
  status: number;
}

/** The responses oha stored in its SQLite file (every response, whatever its status), by start time. */
export function readOhaDb(path: string): RequestRecord[] {
  let db: Database;
  try {
    db = new DatabaseSync(path, { readOnly: true });
  } catch (e) {
    throw new RunError(`Cannot read oha's request database ${path}: ${(e as Error).message}`);
  }
  try {
    const rows = db.prepare("SELECT start, end, duration, status FROM oha ORDER BY start").all() as {
      start: number;
      end: number;
      duration: number;
      status: number;
    }[];
    return rows.map((r) => ({
      startS: r.start,
      endS: r.end,
      latencyMs: r.duration * 1000,
      status: r.status,
    }));
  } catch (e) {
    // oha creates the table only when it stores a row: no table means no response at all.
    if (/no such table/.test((e as Error).message)) return [];
    throw new RunError(`Cannot read oha's request database ${path}: ${(e as Error).message}`);
  } finally {
    db.close();
  }
}

/** A request as the run folder keeps it: which pass and window it belongs to, and whether it was measured. */
export interface LoggedRequest extends RequestRecord {
  pass: number;
  window: number;
  /** False for a window's connection-opening requests and for warm-up: kept, but not in the figures. */
  measured: boolean;
}

const HEADER = "pass,window,measured,start_s,end_s,latency_ms,status";

/** Where a cell's requests of one pass are kept. */
export function requestLogPath(logsDir: string, cellId: string, pass: number): string {
  return join(logsDir, "requests", `${cellId}.p${pass}.csv.gz`);
}

/** Writes requests as gzip-compressed CSV (header: pass,window,measured,start_s,end_s,latency_ms,status). */
export async function writeRequestLog(path: string, rows: LoggedRequest[]): Promise<void> {
  const lines = [HEADER];
  for (const r of rows) {
    lines.push(
      `${r.pass},${r.window},${r.measured ? 1 : 0},${r.startS.toFixed(6)},${r.endS.toFixed(6)},${
        r.latencyMs.toFixed(4)
      },${r.status}`,
    );
  }
  await Deno.mkdir(join(path, ".."), { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}`;
  const stream = new Blob([lines.join("\n") + "\n"]).stream().pipeThrough(new CompressionStream("gzip"));
  await Deno.writeFile(tmp, stream);
  await Deno.rename(tmp, path);
}

/** Reads a request log written by writeRequestLog; a malformed line is an error naming file and line. */
export async function readRequestLog(path: string): Promise<LoggedRequest[]> {
  const file = await Deno.open(path);
  const text = await new Response(file.readable.pipeThrough(new DecompressionStream("gzip"))).text();
  const lines = text.split("\n");
  if (lines[0] !== HEADER) throw new RunError(`${path} is not a request log: its header is "${lines[0]}"`);
  const rows: LoggedRequest[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === "") continue;
    const f = line.split(",").map(Number);
    if (f.length !== 7 || f.some((v) => !Number.isFinite(v))) {
      throw new RunError(`${path} line ${i + 1} is "${line}", expected 7 numbers`);
    }
    rows.push({
      pass: f[0]!,
      window: f[1]!,
      measured: f[2] === 1,
      startS: f[3]!,
      endS: f[4]!,
      latencyMs: f[5]!,
      status: f[6]!,
    });
  }
  return rows;
}

/** Every logged request of a cell, all passes; empty when the run kept none (older runs). */
export async function readCellRequests(logsDir: string, cellId: string): Promise<LoggedRequest[]> {
  const dir = join(logsDir, "requests");
  const prefix = `${cellId}.p`;
  const files: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.startsWith(prefix) && e.name.endsWith(".csv.gz")) files.push(e.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const rows: LoggedRequest[] = [];
  for (const f of files.sort()) rows.push(...await readRequestLog(join(dir, f)));
  return rows;
}

/** True for a 2xx status. */
export const isSuccess = (status: number) => status >= 200 && status < 300;
