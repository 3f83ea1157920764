/**
 * The conformance suite for docker/CONTRACT.md: one module every framework image is checked with,
 * whatever its language. It speaks HTTP only (plain fetch), so it also checks any compatible server.
 *
 * @example
 * ```ts
 * const startup = await observeHealthStartup("http://127.0.0.1:8080", 120_000); // right after start
 * const checks = await runConformance({ baseUrl: "http://127.0.0.1:8080", modelDir: "models/minilm",
 *   maxBatch: 64, maxBodyBytes: 2 * 1024 * 1024 });
 * const failed = [startup, ...checks].filter((c) => !c.ok);
 * ```
 */

import { parseCpuset } from "../config/cpuset.ts";
import {
  caseKey,
  compareEmbeddings,
  comparisonFigures,
  describeDimensions,
  type Dimensions,
  likelyMistake,
  MAX_ABS_DIFF,
  MIN_COSINE,
  NORM_TOLERANCE,
  readDimensions,
  readPrompts,
  readReferenceChecks,
  type ReferenceCase,
  type ReferenceChecks,
  unknownPromptName,
  unsupportedDimensions,
  worstNorm,
} from "./reference.ts";
import {
  metricsDelta,
  type MetricsReading,
  parsePrometheus,
  PHASES,
  phaseTimes,
  readMetrics,
} from "./metrics.ts";

export {
  compareEmbeddings,
  type EmbeddingComparison,
  MAX_ABS_DIFF,
  MIN_COSINE,
  MISTAKE_MARGIN,
  NORM_TOLERANCE,
} from "./reference.ts";

/** One check's outcome; `detail` says what was measured or what was wrong. */
export interface ConformanceCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** Figures behind the verdict (worst cosine, load time in ms, ...), for the run's record. */
  metrics?: Record<string, number>;
}

/** What the suite needs to know about the server under test. */
export interface ConformanceOptions {
  baseUrl: string;
  /** The model folder written by `embbench convert`: embbench_model.json and reference/embeddings.json. */
  modelDir: string;
  /** The server's MAX_BATCH. */
  maxBatch: number;
  /** The server's MAX_BODY_BYTES. */
  maxBodyBytes: number;
  /** When given, /info's `threads` must equal it (the server's NUM_THREADS). */
  threads?: number;
  /** When given, /info's `max_inflight` must equal it. */
  maxInflight?: number;
  /** Time limit of one request, ms; inference of the longest texts on one core can be slow. */
  requestTimeoutMs?: number;
  /** The server's SERVING mode; "batched" adds the batched-rows check. */
  serving?: "sequential" | "batched";
  /** /info's `warmup` must equal it (default true: the server was started without WARMUP=0). */
  warmup?: boolean;
  /** How long the busy-threads check loads the server, ms (default BUSY_LOAD_MS). */
  busyLoadMs?: number;
  /** The server is an ONNX Runtime frontend: it must load the model's `ort_graph` (docker/CONTRACT.md). */
  onnxRuntime?: boolean;
}

/**
 * The suite's version, kept in each verify record: raised when a check is added that an older passed
 * record did not run (2: the reference's prompt and Matryoshka cases, prompt_name and dimensions 422s), so
 * `run`'s gate verifies again instead of trusting it.
 */
export const SUITE_VERSION = 2;

/** A single string and the same string in a list of one run the same graph: they must agree this well. */
export const SINGLE_VS_LIST_MAX_DIFF = 1e-6;
/**
 * Embeddings of two different texts (even texts one word apart) differ by more than this in some
 * coordinate; an answer closer than this to another text's row was not computed from its own text.
 */
export const DIFFERENT_TEXTS_MIN_DIFF = 1e-3;

/** The busy-threads check loads the server this long, ms, with this many requests in flight. */
export const BUSY_LOAD_MS = 2000;
export const BUSY_LOAD_CONCURRENCY = 4;
/** A thread whose CPU time grew by at least this share of the wall time under load is busy. */
export const BUSY_SHARE = 0.5;
/** Threads above this share under load are reported as active (no verdict). */
export const ACTIVE_SHARE = 0.1;

/** Every sample docker/CONTRACT.md's /metrics has, the batch-size buckets apart. */
export const METRIC_NAMES = [
  "embbench_requests_total",
  "embbench_inputs_total",
  "embbench_tokens_total",
  "embbench_request_seconds_total",
  ...PHASES.map((p) => `embbench_${p}_seconds_total`),
  "embbench_batch_size_sum",
  "embbench_batch_size_count",
] as const;
/** The upper bounds (`le`) of the batch-size histogram's buckets. */
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, Infinity] as const;
/** Float sums of phase times may exceed their whole by rounding; this much is not a contradiction, s. */
const PHASE_SUM_SLACK_S = 1e-3;

const TIMING_HEADERS = ["x-tokenization-time", "x-inference-time", "x-total-time"] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function describe(value: unknown, max = 200): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/**
 * Polls GET /health from the moment the server's container started: refused connections are
 * expected until the server binds; it must then answer 503 (JSON error_type "Unhealthy") while the
 * model loads and 200 {"status": "ok"} once loaded. Start the server with LOAD_DELAY_MS so the 503
 * phase lasts long enough to be seen. metrics.loadMs is start to the first 200.
 */
export async function observeHealthStartup(baseUrl: string, timeoutMs: number): Promise<ConformanceCheck> {
  const name = "health: 503 while loading, then 200";
  const started = performance.now();
  let first503Ms: number | undefined;
  let polls = 0;
  let lastError = "no answer yet";
  while (performance.now() - started < timeoutMs) {
    polls++;
    let status: number;
    let body: string;
    try {
      const r = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(2000) });
      status = r.status;
      body = await r.text();
    } catch (e) {
      // Not bound yet (refused) or restarting: keep polling until the deadline.
      lastError = e instanceof Error ? e.message : String(e);
      await sleep(20);
      continue;
    }
    const elapsed = Math.round(performance.now() - started);
    if (status === 503) {
      const problem = errorBodyProblem(body, "Unhealthy");
      if (problem) return { name, ok: false, detail: `503 answer after ${elapsed} ms: ${problem}` };
      first503Ms ??= elapsed;
    } else if (status === 200) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = undefined;
      }
      const bodyOk = isRecord(parsed) && parsed.status === "ok";
      if (first503Ms === undefined) {
        return {
          name,
          ok: false,
          detail: `first answer was 200 after ${elapsed} ms, no 503 seen: start the server with ` +
            `LOAD_DELAY_MS so the loading phase can be observed`,
          metrics: { loadMs: elapsed },
        };
      }
      return {
        name,
        ok: bodyOk,
        detail: bodyOk
          ? `503 from ${first503Ms} ms, 200 after ${elapsed} ms (${polls} polls)`
          : `200 after ${elapsed} ms but the body is ${describe(body)}: expected {"status":"ok"}`,
        metrics: { first503Ms, loadMs: elapsed },
      };
    } else {
      return { name, ok: false, detail: `/health answered ${status} after ${elapsed} ms: ${describe(body)}` };
    }
    await sleep(20);
  }
  return {
    name,
    ok: false,
    detail: first503Ms === undefined
      ? `no HTTP answer within ${timeoutMs} ms (last error: ${lastError})`
      : `still 503 after ${timeoutMs} ms (first 503 at ${first503Ms} ms)`,
  };
}

/** An answer's status and headers (names lower-cased) from its head: the status line and header lines. */
function parseHead(head: string): { status: number; headers: Record<string, string> } {
  const [statusLine, ...lines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(statusLine?.split(" ")[1] ?? NaN), headers };
}

/**
 * POSTs over a raw socket and returns the answer's status line and headers, lower-cased. fetch would
 * offer compression itself and undo it silently; this says exactly what the server sent back.
 */
export async function rawPostHead(
  baseUrl: string,
  path: string,
  body: string,
  headers: Record<string, string>,
  timeoutMs = 60_000,
): Promise<{ status: number; headers: Record<string, string> }> {
  const url = new URL(baseUrl);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port || 80) });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    const bytes = new TextEncoder().encode(body);
    const head = [
      `POST ${path} HTTP/1.1`,
      `host: ${url.host}`,
      "content-type: application/json",
      `content-length: ${bytes.length}`,
      "connection: close",
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      "",
      "",
    ].join("\r\n");
    await conn.write(new TextEncoder().encode(head));
    await conn.write(bytes);
    let text = "";
    const buf = new Uint8Array(65536);
    const decoder = new TextDecoder("latin1");
    while (!text.includes("\r\n\r\n")) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n));
    }
    return parseHead(text.split("\r\n\r\n")[0]!);
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

/** The largest absolute difference between two rows of the same length. */
function maxAbsDiff(a: number[], b: number[]): number {
  return Math.max(...a.map((x, j) => Math.abs(x - b[j]!)));
}

/** `text` with its last space-separated word replaced by another word. */
export function changeLastWord(text: string): string {
  const words = text.split(" ");
  const last = words.pop() ?? "";
  return [...words, last === "zebra" ? "yak" : "zebra"].join(" ");
}

/** A raw HTTP/1.1 answer read off a socket. */
interface RawAnswer {
  status: number;
  /** Header names lower-cased. */
  headers: Record<string, string>;
  body: Uint8Array;
}

/**
 * Reads HTTP/1.1 answers one after another off one connection: the head, then exactly the body its
 * Content-Length (or chunked encoding) announces, so the next answer starts where this one ended.
 */
class AnswerReader {
  private buffered = new Uint8Array(0);
  constructor(private readonly conn: Deno.Conn) {}

  /** Reads more bytes into the buffer; false at end of stream. */
  private async fill(): Promise<boolean> {
    const chunk = new Uint8Array(65536);
    const n = await this.conn.read(chunk);
    if (n === null) return false;
    const joined = new Uint8Array(this.buffered.length + n);
    joined.set(this.buffered);
    joined.set(chunk.subarray(0, n), this.buffered.length);
    this.buffered = joined;
    return true;
  }

  /** Takes bytes up to and including the first `marker`, or null at end of stream. */
  private async takeThrough(marker: string): Promise<Uint8Array | null> {
    const m = new TextEncoder().encode(marker);
    for (let from = 0;;) {
      outer: for (let i = from; i + m.length <= this.buffered.length; i++) {
        for (let j = 0; j < m.length; j++) if (this.buffered[i + j] !== m[j]) continue outer;
        const taken = this.buffered.slice(0, i + m.length);
        this.buffered = this.buffered.slice(i + m.length);
        return taken;
      }
      from = Math.max(0, this.buffered.length - m.length + 1);
      if (!(await this.fill())) return null;
    }
  }

  /** Takes exactly `n` bytes, or null at end of stream. */
  private async take(n: number): Promise<Uint8Array | null> {
    while (this.buffered.length < n) if (!(await this.fill())) return null;
    const taken = this.buffered.slice(0, n);
    this.buffered = this.buffered.slice(n);
    return taken;
  }

  /** The next answer, or why it could not be read whole (closed early, no length). */
  async next(): Promise<RawAnswer | string> {
    const head = await this.takeThrough("\r\n\r\n");
    if (head === null) {
      return this.buffered.length === 0
        ? "the server closed the connection before answering"
        : "the server closed the connection in the middle of the answer's headers";
    }
    const { status, headers } = parseHead(new TextDecoder("latin1").decode(head).trimEnd());
    if ((headers["transfer-encoding"] ?? "").toLowerCase().includes("chunked")) {
      const parts: Uint8Array[] = [];
      for (;;) {
        const sizeLine = await this.takeThrough("\r\n");
        if (sizeLine === null) return "the server closed the connection in the middle of a chunked body";
        const size = parseInt(new TextDecoder().decode(sizeLine).split(";")[0]!.trim(), 16);
        if (!Number.isFinite(size)) return "a chunk size line is not hexadecimal";
        if (size === 0) {
          // An empty trailer section: the CRLF after the zero-size chunk.
          if ((await this.takeThrough("\r\n")) === null) return "no end after the last chunk";
          break;
        }
        const data = await this.take(size + 2);
        if (data === null) return "the server closed the connection in the middle of a chunked body";
        parts.push(data.subarray(0, size));
      }
      const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let off = 0;
      for (const p of parts) {
        body.set(p, off);
        off += p.length;
      }
      return { status, headers, body };
    }
    const length = Number(headers["content-length"] ?? NaN);
    if (!Number.isInteger(length) || length < 0) {
      return `status ${status} answer has neither Content-Length nor chunked encoding, so its end is the ` +
        `connection's end and the connection cannot carry another request`;
    }
    const body = await this.take(length);
    if (body === null) return `the server closed the connection before the ${length}-byte body was complete`;
    return { status, headers, body };
  }
}

/**
 * Sends two POST /embed requests one after the other on one TCP connection, as a load generator
 * does: both must answer 200 and neither may carry `Connection: close`. A server that closes
 * connections makes every request pay a new TCP handshake, which the benchmark would then measure.
 */
export async function checkKeepAlive(
  baseUrl: string,
  bodies: [string, string],
  timeoutMs = 60_000,
): Promise<ConformanceCheck> {
  const name = "keep-alive: two requests on one connection";
  const url = new URL(baseUrl);
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port || 80) });
  } catch (e) {
    return { name, ok: false, detail: `cannot connect: ${e instanceof Error ? e.message : e}` };
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  const reader = new AnswerReader(conn);
  const send = async (body: string) => {
    const bytes = new TextEncoder().encode(body);
    const head = `POST /embed HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\n` +
      `content-length: ${bytes.length}\r\n\r\n`;
    await conn.write(new TextEncoder().encode(head));
    await conn.write(bytes);
  };
  try {
    for (const [i, ordinal] of [[0, "first"], [1, "second"]] as const) {
      try {
        await send(bodies[i]);
      } catch (e) {
        return {
          name,
          ok: false,
          detail: `sending the ${ordinal} request failed (${e instanceof Error ? e.message : e})` +
            (i === 1 ? ": the server closed the connection after the first answer" : ""),
        };
      }
      const answer = await reader.next();
      if (typeof answer === "string") {
        return {
          name,
          ok: false,
          detail: `${ordinal} request: ${answer}` +
            (i === 1 ? " (without saying Connection: close in the first answer)" : ""),
        };
      }
      if (answer.status !== 200) {
        const text = new TextDecoder().decode(answer.body);
        return { name, ok: false, detail: `${ordinal} request answered ${answer.status}: ${describe(text)}` };
      }
      if ((answer.headers["connection"] ?? "").toLowerCase().split(/\s*,\s*/).includes("close")) {
        return {
          name,
          ok: false,
          detail: `the ${ordinal} answer carries Connection: close: the server drops keep-alive, so every ` +
            `request would pay a new TCP connection`,
        };
      }
    }
    return { name, ok: true, detail: "both answered 200 on one connection, neither with Connection: close" };
  } catch (e) {
    return {
      name,
      ok: false,
      detail: timedOut
        ? `no complete answer within ${timeoutMs} ms`
        : `reading the answers failed: ${e instanceof Error ? e.message : e}`,
    };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Why a body is not the contract's error JSON with this error_type, or "" when it is. */
function errorBodyProblem(body: string, errorType: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return `body is not JSON: ${describe(body)}`;
  }
  if (!isRecord(parsed)) return `body is not a JSON object: ${describe(body)}`;
  if (typeof parsed.error !== "string" || parsed.error === "") {
    return `body has no "error" message: ${describe(body)}`;
  }
  if (parsed.error_type !== errorType) {
    return `error_type is ${JSON.stringify(parsed.error_type)}: expected "${errorType}" (${describe(body)})`;
  }
  return "";
}

/** Why `value` is not `rows` embeddings of `dim` finite numbers (null: any number), or "" when it is. */
function embeddingShapeProblem(value: unknown, rows: number, dim: number | null): string {
  if (!Array.isArray(value)) return `answer is not a JSON array: ${describe(value)}`;
  if (value.length !== rows) return `answer has ${value.length} rows: expected ${rows}`;
  for (let i = 0; i < value.length; i++) {
    const row = value[i];
    if (!Array.isArray(row)) return `row ${i} is not an array: ${describe(row)}`;
    if (dim !== null && row.length !== dim) {
      return `row ${i} has ${row.length} numbers: expected embedding_dim ${dim}`;
    }
    if (!row.every((x) => typeof x === "number" && Number.isFinite(x))) {
      return `row ${i} holds something other than finite numbers`;
    }
  }
  return "";
}

interface Answer {
  status: number;
  headers: Headers;
  body: string;
}

/** An answered POST /embed: its rows, and the answer they came in. */
interface Embedded {
  rows: number[][];
  answer: Answer;
}

/** runConformance's POST /embed: the rows (of `width` numbers, null: any), or why there are none. */
type Embed = (
  payload: Record<string, unknown>,
  rows: number,
  width?: number | null,
) => Promise<Embedded | string>;

/**
 * Embeds `texts` with the request fields `fields` in requests of at most `maxBatch` texts (one padded
 * batch when they fit): every row, and the first answer, or why not.
 */
async function embedAll(
  embed: Embed,
  texts: string[],
  fields: Record<string, unknown>,
  maxBatch: number,
  width: number | null,
): Promise<Embedded | string> {
  const rows: number[][] = [];
  let first: Answer | undefined;
  for (let start = 0; start < texts.length; start += maxBatch) {
    const part = texts.slice(start, start + maxBatch);
    const got = await embed({ inputs: part, ...fields }, part.length, width);
    if (typeof got === "string") return `texts ${start}..${start + part.length - 1}: ${got}`;
    rows.push(...got.rows);
    first ??= got.answer;
  }
  return { rows, answer: first! };
}

/** The check that stands for the reference's cases when it has none. */
export const REFERENCE_CASES_CHECK = "reference cases: prompts and Matryoshka sizes";

/** The name of a reference case's check. */
export function referenceCaseCheckName(c: Pick<ReferenceCase, "promptName" | "dimensions">): string {
  return `reference case ${caseKey(c)}: rows match`;
}

/**
 * One reference case: its texts sent with its prompt_name and/or dimensions must answer rows of exactly
 * `dimensions` numbers, of L2 norm 1, within the parity limits of the case's rows. A mismatch names
 * its likely cause: rows of the full size (dimensions ignored), rows not normalised again after the
 * cut, rows equal to those without the prompt (prompt_name ignored), or the known mistake of this
 * case the rows match.
 */
async function checkReferenceCase(
  embed: Embed,
  rc: ReferenceCase,
  facts: ModelFacts,
  maxBatch: number,
): Promise<ConformanceCheck> {
  const name = referenceCaseCheckName(rc);
  const fail = (detail: string): ConformanceCheck => ({ name, ok: false, detail });
  const dims = rc.dimensions === null ? {} : { dimensions: rc.dimensions };
  const fields = { ...(rc.promptName === null ? {} : { prompt_name: rc.promptName }), ...dims };
  const width = rc.dimensions ?? facts.embeddingDim;
  const got = await embedAll(embed, rc.texts, fields, maxBatch, null);
  if (typeof got === "string") return fail(`${JSON.stringify(fields)}: ${got}`);
  const served = got.rows;
  const wrong = served.findIndex((r) => r.length !== width);
  if (wrong >= 0) {
    const ignored = rc.dimensions !== null && served[wrong]!.length === facts.embeddingDim;
    return fail(
      `row ${wrong} has ${served[wrong]!.length} numbers: expected ${width}` +
        (ignored
          ? ": the server ignores 'dimensions' (each row must be cut to its first dimensions numbers, then " +
            "normalised again)"
          : ""),
    );
  }
  const c = compareEmbeddings(served, rc.embeddings);
  const problems: string[] = [];
  const norm = worstNorm(served);
  if (Math.abs(norm.norm - 1) > NORM_TOLERANCE) {
    problems.push(
      `row ${norm.row} has L2 norm ${norm.norm.toFixed(4)}: expected 1` +
        (width < facts.embeddingDim
          ? ": the server cuts the rows to 'dimensions' without normalising them again"
          : ""),
    );
  }
  if (c.failingRows.length > 0) {
    const prompt = rc.promptName === null ? "" : facts.prompts[rc.promptName] ?? "";
    if (prompt !== "") {
      const plain = await embedAll(embed, rc.texts, dims, maxBatch, width);
      if (typeof plain !== "string" && compareEmbeddings(served, plain.rows).worstAbsDiff <= MAX_ABS_DIFF) {
        problems.push(
          `the rows equal those without prompt_name: the server ignores 'prompt_name' (it must prepend ` +
            `${JSON.stringify(prompt)} to each text)`,
        );
      }
    }
    const keyed = (facts.reference.mistakes ?? []).filter((m) => m.caseKey === caseKey(rc));
    const cause = likelyMistake(served, c, keyed);
    if (cause) problems.push(cause);
    problems.push(
      `rows ${c.failingRows.join(", ")} outside cosine >= ${MIN_COSINE} and max |Δ| <= ${MAX_ABS_DIFF}: ` +
        comparisonFigures(c),
    );
  }
  return {
    name,
    ok: problems.length === 0,
    detail: problems.length === 0
      ? `${comparisonFigures(c)} of ${width} numbers, norm 1 within ${NORM_TOLERANCE}`
      : problems.join("; "),
    metrics: { worstCosine: c.worstCosine, worstAbsDiff: c.worstAbsDiff, rows: c.rows },
  };
}

interface ModelFacts {
  name: string;
  embeddingDim: number;
  maxSeqLength: number;
  texts: string[];
  embeddings: number[][];
  /** Distinct non-empty texts for the checks that compare rows, and the file they came from. */
  sampleTexts: string[];
  sampleSource: string;
  /** The texts of the longest payloads (else the longest reference text): the busy-threads load. */
  longTexts: string[];
  /** embbench_model.json's prompts (name → text) and Matryoshka sizes. */
  prompts: Record<string, string>;
  dimensions: Dimensions;
  /** The reference's prompt and dimension cases and known mistakes; undefined in folders that predate them. */
  reference: ReferenceChecks;
  /** embbench_model.json's `ort_graph`: the fused graph the ONNX Runtime frontends load, if convert wrote one. */
  ortGraph?: string;
}

/** A payloads/index.json entry of documents without a prompt (the prompt payloads' bodies carry prompt_name). */
function isDocumentPayload(e: unknown): boolean {
  return isRecord(e) && typeof e.file === "string" && Number.isInteger(e.seq_len) && e.prompt_name == null;
}

/**
 * The texts of the shortest payloads (payloads/index.json, written by convert): short enough that no
 * server truncates them, so a change to their last word reaches the model. Without payloads, the
 * reference texts.
 */
async function readSampleTexts(modelDir: string, referenceTexts: string[]): Promise<[string[], string]> {
  const distinct = (texts: string[]) => [...new Set(texts.filter((t) => t !== ""))];
  try {
    const index = JSON.parse(await Deno.readTextFile(`${modelDir}/payloads/index.json`));
    const entries = (isRecord(index) && Array.isArray(index.payloads) ? index.payloads : [])
      .filter(isDocumentPayload)
      .sort((a: Record<string, number>, b: Record<string, number>) => a.seq_len! - b.seq_len!);
    const shortest = entries.filter((e: Record<string, unknown>) => e.seq_len === entries[0]?.seq_len);
    const texts: string[] = [];
    for (const e of shortest) {
      const body = JSON.parse(await Deno.readTextFile(`${modelDir}/payloads/${e.file}`));
      if (isRecord(body) && Array.isArray(body.inputs)) {
        texts.push(...body.inputs.filter((t: unknown): t is string => typeof t === "string"));
      }
    }
    if (distinct(texts).length >= 2) {
      return [distinct(texts), `payloads/${shortest.map((e: Record<string, unknown>) => e.file).join(", ")}`];
    }
  } catch { /* no payloads: the reference texts will do */ }
  return [distinct(referenceTexts), "reference/embeddings.json"];
}

/**
 * The texts of the longest payloads (payloads/index.json): the heaviest requests the benchmark sends.
 * Without payloads, the longest reference text.
 */
async function readLongTexts(modelDir: string, referenceTexts: string[]): Promise<string[]> {
  try {
    const index = JSON.parse(await Deno.readTextFile(`${modelDir}/payloads/index.json`));
    const entries = (isRecord(index) && Array.isArray(index.payloads) ? index.payloads : [])
      .filter(isDocumentPayload);
    const longest = Math.max(...entries.map((e: Record<string, number>) => e.seq_len!));
    const texts = new Set<string>();
    for (const e of entries.filter((e: Record<string, unknown>) => e.seq_len === longest)) {
      const body = JSON.parse(await Deno.readTextFile(`${modelDir}/payloads/${e.file}`));
      if (isRecord(body) && Array.isArray(body.inputs)) {
        for (const t of body.inputs) if (typeof t === "string" && t !== "") texts.add(t);
      }
    }
    if (texts.size > 0) return [...texts];
  } catch { /* no payloads: the reference texts will do */ }
  return [referenceTexts.reduce((a, b) => (b.length > a.length ? b : a), "")];
}

async function readModelFacts(modelDir: string): Promise<ModelFacts> {
  const specPath = `${modelDir}/embbench_model.json`;
  const refPath = `${modelDir}/reference/embeddings.json`;
  const spec = JSON.parse(await Deno.readTextFile(specPath));
  if (
    !isRecord(spec) || typeof spec.name !== "string" || !Number.isInteger(spec.embedding_dim) ||
    !Number.isInteger(spec.max_seq_length)
  ) {
    throw new Error(`${specPath} lacks name, embedding_dim or max_seq_length`);
  }
  const ref = JSON.parse(await Deno.readTextFile(refPath));
  if (
    !isRecord(ref) || !Array.isArray(ref.texts) || !Array.isArray(ref.embeddings) ||
    ref.texts.length !== ref.embeddings.length || ref.texts.length === 0 ||
    !ref.texts.every((t: unknown) => typeof t === "string")
  ) {
    throw new Error(`${refPath} must hold "texts" and as many "embeddings" rows`);
  }
  const shape = embeddingShapeProblem(ref.embeddings, ref.texts.length, spec.embedding_dim as number);
  if (shape) throw new Error(`${refPath}: ${shape}`);
  const embeddingDim = spec.embedding_dim as number;
  const reference = readReferenceChecks(ref, ref.texts, embeddingDim, refPath);
  const [sampleTexts, sampleSource] = await readSampleTexts(modelDir, ref.texts);
  if (sampleTexts.length < 2) throw new Error(`${refPath} and payloads/ hold fewer than two different texts`);
  return {
    prompts: readPrompts(spec, specPath),
    dimensions: readDimensions(spec, embeddingDim, specPath),
    reference,
    name: spec.name,
    embeddingDim: spec.embedding_dim as number,
    maxSeqLength: spec.max_seq_length as number,
    texts: ref.texts,
    embeddings: ref.embeddings,
    sampleTexts,
    sampleSource,
    longTexts: await readLongTexts(modelDir, ref.texts),
    ...(typeof spec.ort_graph === "string" ? { ortGraph: spec.ort_graph } : {}),
  };
}

/** What `embbench convert` says of the ONNX Runtime graph: embbench_model.json's `ort_graph`, the manifest's record. */
export interface OrtGraphFacts {
  /** embbench_model.json's `ort_graph`; undefined when convert wrote no fused graph. */
  ortGraph?: string;
  /** manifest.json's `ort_graph.fused_ops` (op type: count). */
  fusedOps: Record<string, number>;
  /** manifest.json's `ort_graph.reason`: why there is no fused graph. */
  reason?: string;
}

export const ORT_GRAPH_CHECK = "info: the ONNX Runtime frontend loads the fused graph (ort_graph)";

/** The fused ops a graph needs to count as fused: attention at least (ONNX Runtime's contrib op). */
const REQUIRED_FUSED_OPS = ["Attention"];

/** The manifest's record of the fused graph, with embbench_model.json's `ort_graph` (already read). */
async function readOrtGraphFacts(
  modelDir: string,
  ortGraph: string | undefined,
): Promise<OrtGraphFacts | string> {
  try {
    const manifest = JSON.parse(await Deno.readTextFile(`${modelDir}/manifest.json`));
    const record = isRecord(manifest) && isRecord(manifest.ort_graph) ? manifest.ort_graph : {};
    const ops = isRecord(record.fused_ops) ? record.fused_ops : {};
    return {
      ortGraph,
      fusedOps: Object.fromEntries(Object.entries(ops).filter(([, n]) => Number.isInteger(n))) as Record<
        string,
        number
      >,
      reason: typeof record.reason === "string" ? record.reason : undefined,
    };
  } catch (e) {
    return `cannot read ${modelDir}/manifest.json: ${e instanceof Error ? e.message : e}`;
  }
}

/**
 * An ONNX Runtime frontend's /info against what convert wrote: with a fused graph, /info.build.model_file
 * must name it and the manifest must count its fused attention; without one, the plain graph and the
 * manifest's reason.
 */
export function ortGraphCheck(
  info: Record<string, unknown>,
  facts: OrtGraphFacts | string,
): { detail: string } | { problem: string } {
  if (typeof facts === "string") return { problem: facts };
  const build = isRecord(info.build) ? info.build : {};
  const loaded = build.model_file;
  if (facts.ortGraph === undefined) {
    return loaded === "onnx/model.onnx"
      ? { detail: `no fused graph (${facts.reason ?? "convert gave no reason"}): loads onnx/model.onnx` }
      : {
        problem: `build.model_file is ${JSON.stringify(loaded)}: expected "onnx/model.onnx" (no ort_graph)`,
      };
  }
  if (loaded !== facts.ortGraph) {
    return {
      problem: `build.model_file is ${
        JSON.stringify(loaded)
      }: expected "${facts.ortGraph}" (embbench_model.json's ort_graph)`,
    };
  }
  const missing = REQUIRED_FUSED_OPS.filter((op) => !(facts.fusedOps[op]! > 0));
  const ops = Object.entries(facts.fusedOps).map(([op, n]) => `${op} ${n}`).join(", ") || "none";
  return missing.length > 0
    ? {
      problem: `${facts.ortGraph} has no ${
        missing.join(", ")
      } node (manifest.json ort_graph.fused_ops: ${ops})`,
    }
    : { detail: `loads ${loaded}; fused ops ${ops}` };
}

/** A GET or POST with a time limit: the answer, or why there is none. */
async function request(
  baseUrl: string,
  method: string,
  path: string,
  body: string | undefined,
  timeoutMs: number,
): Promise<Answer | string> {
  try {
    const r = await fetch(`${baseUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: r.status, headers: r.headers, body: await r.text() };
  } catch (e) {
    const cause = e instanceof Error && e.cause ? ` (${e.cause})` : "";
    return `${method} ${path} failed: ${e instanceof Error ? e.message : e}${cause}`;
  }
}

/** GET /info as a JSON object, or why it is not one. */
export async function readInfo(
  baseUrl: string,
  timeoutMs = 30_000,
): Promise<Record<string, unknown> | string> {
  const answer = await request(baseUrl, "GET", "/info", undefined, timeoutMs);
  if (typeof answer === "string") return answer;
  if (answer.status !== 200) return `GET /info answered ${answer.status}: ${describe(answer.body)}`;
  try {
    const parsed = JSON.parse(answer.body);
    return isRecord(parsed) ? parsed : `GET /info is not a JSON object: ${describe(answer.body)}`;
  } catch {
    return `GET /info is not JSON: ${describe(answer.body)}`;
  }
}

/** /info's `startup` stamps in the order a start reaches them. */
const STAMP_ORDER = ["process_start", "runtime_ready", "model_loaded", "warmed", "now"] as const;

/**
 * Why /info's `warmup` and `startup` are not what docker/CONTRACT.md says of a healthy server started
 * with (`warmup` true) or without (WARMUP=0) the warm-up; empty when they are.
 */
export function startupProblems(info: Record<string, unknown>, warmup: boolean): string[] {
  const problems: string[] = [];
  if (info.warmup !== warmup) {
    problems.push(
      `warmup is ${JSON.stringify(info.warmup)}: expected ${warmup}${
        warmup ? "" : " (started with WARMUP=0)"
      }`,
    );
  }
  const startup = info.startup;
  if (!isRecord(startup)) {
    problems.push(`startup is ${describe(startup ?? null)}: expected an object of CLOCK_MONOTONIC stamps`);
    return problems;
  }
  if (startup.clock !== "monotonic") {
    problems.push(`startup.clock is ${JSON.stringify(startup.clock)}: expected "monotonic"`);
  }
  const stamps: [string, number][] = [];
  for (const stage of STAMP_ORDER) {
    const value = startup[stage];
    if (stage === "warmed" && !warmup) {
      if (value !== null) {
        problems.push(`startup.warmed is ${JSON.stringify(value)}: expected null with WARMUP=0`);
      }
    } else if (typeof value !== "number" || !Number.isFinite(value)) {
      problems.push(
        `startup.${stage} is ${JSON.stringify(value ?? null)}: expected seconds (the server is healthy, so ` +
          `it has reached every stage)`,
      );
    } else stamps.push([stage, value]);
  }
  for (let i = 1; i < stamps.length; i++) {
    const [before, a] = stamps[i - 1]!;
    const [after, b] = stamps[i]!;
    if (b < a) problems.push(`startup.${after} ${b} is earlier than startup.${before} ${a}`);
  }
  return problems;
}

/** Stamps reached, in ms after process_start: "runtime_ready +870 ms, ...". */
function describeStartup(startup: Record<string, unknown>): string {
  const start = startup.process_start as number;
  return STAMP_ORDER.slice(1)
    .filter((k) => typeof startup[k] === "number")
    .map((k) => `${k} +${(((startup[k] as number) - start) * 1000).toFixed(0)} ms`)
    .join(", ") + " after process_start";
}

/** One entry of /info's `os_threads`. */
export interface OsThread {
  tid: number;
  name: string;
  cpuSeconds: number;
}

/** /info's `os_threads`, or why it is not a non-empty list of {tid, name, cpu_seconds}. */
export function parseOsThreads(value: unknown): OsThread[] | string {
  if (!Array.isArray(value) || value.length === 0) {
    return `os_threads is ${describe(value ?? null)}: expected a non-empty list of {tid, name, cpu_seconds}`;
  }
  const threads: OsThread[] = [];
  const seen = new Set<number>();
  for (const [i, t] of value.entries()) {
    if (
      !isRecord(t) || !Number.isInteger(t.tid) || (t.tid as number) < 1 || typeof t.name !== "string" ||
      typeof t.cpu_seconds !== "number" || !Number.isFinite(t.cpu_seconds) || t.cpu_seconds < 0
    ) {
      return `os_threads[${i}] is ${
        describe(t)
      }: expected {tid: integer >= 1, name: string, cpu_seconds: >= 0}`;
    }
    if (seen.has(t.tid as number)) return `os_threads lists thread ${t.tid} twice`;
    seen.add(t.tid as number);
    threads.push({ tid: t.tid as number, name: t.name, cpuSeconds: t.cpu_seconds });
  }
  return threads;
}

/** Why a /metrics Content-Type is not the Prometheus text format 0.0.4, or "" when it is. */
function metricsContentTypeProblem(contentType: string): string {
  const [type, ...params] = contentType.split(";").map((p) => p.trim().toLowerCase());
  return type === "text/plain" && params.includes("version=0.0.4")
    ? ""
    : `Content-Type ${JSON.stringify(contentType)}: expected "text/plain; version=0.0.4"`;
}

/** The batch-size histogram's buckets by upper bound (`le`), as cumulative counts. */
function batchSizeBuckets(reading: MetricsReading): Map<number, number> {
  const buckets = new Map<number, number>();
  for (const [key, value] of Object.entries(reading)) {
    const m = /^embbench_batch_size_bucket\{.*\ble="([^"]*)".*\}$/.exec(key);
    if (!m) continue;
    const le = m[1] === "+Inf" ? Infinity : Number(m[1]);
    if (!Number.isNaN(le)) buckets.set(le, value);
  }
  return buckets;
}

/** GET /metrics parsed, with its Content-Type; or why it cannot be read. */
async function readMetricsAnswer(
  baseUrl: string,
  timeoutMs: number,
): Promise<{ reading: MetricsReading; contentType: string } | string> {
  const answer = await request(baseUrl, "GET", "/metrics", undefined, timeoutMs);
  if (typeof answer === "string") return answer;
  if (answer.status !== 200) return `GET /metrics answered ${answer.status}: ${describe(answer.body)}`;
  try {
    return { reading: parsePrometheus(answer.body), contentType: answer.headers.get("content-type") ?? "" };
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

const METRICS_FORMAT = "metrics: Prometheus text with every metric of the contract";
const METRICS_COUNT = "metrics: counters move with the answered requests only";

/**
 * GET /metrics: status 200, Content-Type text/plain; version=0.0.4, Prometheus text with every
 * metric and batch-size bucket of docker/CONTRACT.md. Then, with nothing else talking to the server,
 * three POST /embed of 1, 2 and 3 of `texts` (made unique, so no cache answers them): the requests and
 * inputs counters move by exactly those, tokens by at least one per input, the request and phase
 * seconds by a positive amount within the requests' wall time (the phases within `request`), the
 * batch-size histogram by at least one inference holding all the inputs; and a 422 answer moves no
 * counter.
 */
export async function checkMetrics(
  baseUrl: string,
  texts: string[],
  o: { maxBatch: number; timeoutMs?: number },
): Promise<ConformanceCheck[]> {
  const timeoutMs = o.timeoutMs ?? 300_000;
  const first = await readMetricsAnswer(baseUrl, timeoutMs);
  if (typeof first === "string") {
    return [
      { name: METRICS_FORMAT, ok: false, detail: first },
      { name: METRICS_COUNT, ok: false, detail: "no readable /metrics to count with" },
    ];
  }
  const checks: ConformanceCheck[] = [];
  {
    const problems: string[] = [];
    const typeProblem = metricsContentTypeProblem(first.contentType);
    if (typeProblem) problems.push(typeProblem);
    const missing = METRIC_NAMES.filter((n) => first.reading[n] === undefined);
    if (missing.length > 0) problems.push(`missing ${missing.join(", ")}`);
    const buckets = batchSizeBuckets(first.reading);
    const missingBuckets = BATCH_SIZE_BUCKETS.filter((le) => !buckets.has(le));
    if (missingBuckets.length > 0) {
      problems.push(
        `embbench_batch_size_bucket lacks le=${
          missingBuckets.map((le) => (le === Infinity ? '"+Inf"' : `"${le}"`)).join(", ")
        }`,
      );
    }
    const negative = Object.entries(first.reading).filter(([k, v]) => k.startsWith("embbench_") && !(v >= 0));
    if (negative.length > 0) {
      problems.push(`not a count: ${negative.map(([k, v]) => `${k} ${v}`).join(", ")}`);
    }
    checks.push({
      name: METRICS_FORMAT,
      ok: problems.length === 0,
      detail: problems.length === 0
        ? `${first.contentType}, ${Object.keys(first.reading).length} samples`
        : problems.join("; "),
    });
  }

  const nonce = crypto.randomUUID().slice(0, 8);
  const sizes = [1, 2, 3].map((n) => Math.min(n, o.maxBatch));
  const inputs = sizes.reduce((a, b) => a + b, 0);
  const started = performance.now();
  for (const [i, n] of sizes.entries()) {
    const batch = Array.from({ length: n }, (_, j) => `${texts[(i + j) % texts.length]} ${nonce}${i}${j}`);
    const answer = await request(baseUrl, "POST", "/embed", JSON.stringify({ inputs: batch }), timeoutMs);
    const problem = typeof answer === "string"
      ? answer
      : answer.status !== 200
      ? `answered ${answer.status}: ${describe(answer.body)}`
      : "";
    if (problem) {
      checks.push({ name: METRICS_COUNT, ok: false, detail: `POST /embed of ${n} inputs ${problem}` });
      return checks;
    }
  }
  const wallS = (performance.now() - started) / 1000;
  const afterOk = await readMetricsAnswer(baseUrl, timeoutMs);
  const rejected = await request(baseUrl, "POST", "/embed", '{"inputs": ["a",', timeoutMs);
  const afterError = await readMetricsAnswer(baseUrl, timeoutMs);
  if (typeof afterOk === "string" || typeof afterError === "string") {
    checks.push({
      name: METRICS_COUNT,
      ok: false,
      detail: `reading /metrics again: ${afterOk}, ${afterError}`,
    });
    return checks;
  }
  const d = metricsDelta(first.reading, afterOk.reading);
  const get = (k: string) => d[k] ?? NaN;
  const k = sizes.length;
  const problems: string[] = [];
  const moved = (name: string, wanted: string) => `${name} moved by ${get(name)}: expected ${wanted}`;
  if (get("embbench_requests_total") !== k) {
    problems.push(moved("embbench_requests_total", `${k}, the requests answered 200`));
  }
  if (get("embbench_inputs_total") !== inputs) {
    problems.push(moved("embbench_inputs_total", `${inputs}, the inputs sent`));
  }
  if (!(get("embbench_tokens_total") >= inputs)) {
    problems.push(moved("embbench_tokens_total", `at least ${inputs}, a token per input`));
  }
  const requestS = get("embbench_request_seconds_total");
  if (!(requestS > 0 && requestS <= wallS)) {
    problems.push(
      moved(
        "embbench_request_seconds_total",
        `more than 0 and at most the ${wallS.toFixed(4)} s the requests took`,
      ),
    );
  }
  let phaseSum = 0;
  for (const p of PHASES) {
    const name = `embbench_${p}_seconds_total`;
    const s = get(name);
    if (!(s >= 0)) problems.push(moved(name, "0 or more"));
    else if (p === "inference" && s === 0) problems.push(moved(name, "more than 0: the model ran"));
    phaseSum += s;
  }
  if (!(phaseSum > 0 && phaseSum <= wallS)) {
    problems.push(
      `the phase counters moved by ${phaseSum} s in all: expected more than 0 and at most the ` +
        `${wallS.toFixed(4)} s the requests took`,
    );
  } else if (phaseSum > requestS + PHASE_SUM_SLACK_S) {
    problems.push(
      `the phase counters moved by ${phaseSum} s in all, more than embbench_request_seconds_total's ` +
        `${requestS} s: the phases are parts of the request`,
    );
  }
  const batches = get("embbench_batch_size_count");
  if (!(batches >= 1 && batches <= inputs)) {
    problems.push(moved("embbench_batch_size_count", `between 1 and ${inputs}, the inferences that ran`));
  }
  if (get("embbench_batch_size_sum") !== inputs) {
    problems.push(moved("embbench_batch_size_sum", `${inputs}, each input inferred once`));
  }
  const buckets = [...batchSizeBuckets(d).entries()].sort((a, b) => a[0] - b[0]);
  if (buckets.some(([, v], i) => v < 0 || (i > 0 && v < buckets[i - 1]![1]))) {
    problems.push(`the batch-size buckets moved by ${describe(Object.fromEntries(buckets))}: not cumulative`);
  }
  const inf = buckets.find(([le]) => le === Infinity)?.[1];
  if (inf !== undefined && inf !== batches) {
    problems.push(`embbench_batch_size_bucket{le="+Inf"} moved by ${inf}, the count by ${batches}`);
  }
  const e = metricsDelta(afterOk.reading, afterError.reading);
  const rejectedStatus = typeof rejected === "string" ? rejected : `status ${rejected.status}`;
  for (const name of ["embbench_requests_total", "embbench_inputs_total"]) {
    if ((e[name] ?? NaN) !== 0) {
      problems.push(
        `a malformed body (answered ${rejectedStatus}) moved ${name} by ${e[name]}: only 200 answers count`,
      );
    }
  }
  const times = phaseTimes(d);
  const figures = times
    ? `${
      [...PHASES, "request" as const].map((p) => `${p} ${times.ms[p].toFixed(3)}`).join(", ")
    } ms per request`
    : "";
  checks.push({
    name: METRICS_COUNT,
    ok: problems.length === 0,
    detail: problems.length === 0
      ? `${k} requests of ${inputs} inputs in ${(wallS * 1000).toFixed(1)} ms: ${figures}; ${batches} ` +
        `inferences, ${
          get("embbench_tokens_total")
        } tokens; the malformed body (${rejectedStatus}) moved nothing`
      : problems.join("; "),
    metrics: {
      requests: get("embbench_requests_total"),
      inputs: get("embbench_inputs_total"),
      wallS,
      phaseSum,
      requestS,
    },
  });
  return checks;
}

/** The server's CPUs from /info's `cpus`, or why they are unreadable. */
function infoCpus(info: Record<string, unknown>): number[] | string {
  if (typeof info.cpus !== "string") {
    return `/info's cpus is ${JSON.stringify(info.cpus ?? null)}: expected a cpuset`;
  }
  try {
    return parseCpuset(info.cpus);
  } catch (e) {
    return `/info's cpus ${JSON.stringify(info.cpus)}: ${e instanceof Error ? e.message : e}`;
  }
}

const BUSY_THREADS = "busy threads under load fit the CPUs";

/**
 * Reads /info's `os_threads`, loads the server with `concurrency` loops of POST /embed over `bodies`
 * for `durationMs` (and the requests still in flight), reads them again: a thread whose CPU time grew
 * by BUSY_SHARE of the wall time between the readings (the server's `startup.now`, else the client's
 * clock) is busy. More busy threads than the CPUs of the server's affinity (/info `cpus`) fail: they
 * take turns on the cores, and the benchmark would measure their contention.
 */
export async function checkBusyThreads(
  baseUrl: string,
  bodies: string[],
  o: { durationMs?: number; concurrency?: number; timeoutMs?: number } = {},
): Promise<ConformanceCheck> {
  const durationMs = o.durationMs ?? BUSY_LOAD_MS;
  const concurrency = o.concurrency ?? BUSY_LOAD_CONCURRENCY;
  const timeoutMs = o.timeoutMs ?? 300_000;
  const fail = (detail: string): ConformanceCheck => ({ name: BUSY_THREADS, ok: false, detail });
  const before = await readInfo(baseUrl, timeoutMs);
  if (typeof before === "string") return fail(before);
  const cpus = infoCpus(before);
  if (typeof cpus === "string") return fail(cpus);
  const threadsBefore = parseOsThreads(before.os_threads);
  if (typeof threadsBefore === "string") return fail(threadsBefore);
  const clientStart = performance.now();
  let answered = 0;
  const failures: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() - clientStart < durationMs && failures.length === 0) {
      const body = bodies[next++ % bodies.length]!;
      const answer = await request(baseUrl, "POST", "/embed", body, timeoutMs);
      if (typeof answer === "string") failures.push(answer);
      else if (answer.status !== 200) failures.push(`answered ${answer.status}: ${describe(answer.body)}`);
      else answered++;
    }
  }));
  const clientWallS = (performance.now() - clientStart) / 1000;
  if (failures.length > 0) return fail(`a POST /embed under load ${failures[0]}`);
  const after = await readInfo(baseUrl, timeoutMs);
  if (typeof after === "string") return fail(after);
  const threadsAfter = parseOsThreads(after.os_threads);
  if (typeof threadsAfter === "string") return fail(threadsAfter);
  const nowOf = (info: Record<string, unknown>) => isRecord(info.startup) ? info.startup.now : undefined;
  const [n0, n1] = [nowOf(before), nowOf(after)];
  const wallS = typeof n0 === "number" && typeof n1 === "number" && n1 > n0 ? n1 - n0 : clientWallS;
  const cpuBefore = new Map(threadsBefore.map((t) => [t.tid, t.cpuSeconds]));
  const shares = threadsAfter
    .map((t) => ({ ...t, share: (t.cpuSeconds - (cpuBefore.get(t.tid) ?? 0)) / wallS }))
    .sort((a, b) => b.share - a.share);
  const busy = shares.filter((t) => t.share >= BUSY_SHARE);
  const list = (ts: typeof shares) =>
    ts.map((t) => `${t.name} (tid ${t.tid}) ${(t.share * 100).toFixed(0)}%`).join(", ");
  // Not a verdict: on n CPUs only n < busy <= 2n can show, so threads sharing cores evenly pass; their count
  // is recorded for the reader.
  const active = shares.filter((t) => t.share >= ACTIVE_SHARE).length;
  const load = `${answered} requests from ${concurrency} loops in ${wallS.toFixed(2)} s; ${active} ` +
    `thread${active === 1 ? "" : "s"} used >= ${ACTIVE_SHARE * 100}% of it`;
  const ok = busy.length <= cpus.length;
  const cpuText = `${cpus.length} CPU${cpus.length === 1 ? "" : "s"} (cpus ${before.cpus})`;
  return {
    name: BUSY_THREADS,
    ok,
    detail:
      (busy.length > 0
        ? `${busy.length} busy (CPU >= ${BUSY_SHARE * 100}% of the wall time): ${list(busy)}`
        : `no thread busy (CPU >= ${BUSY_SHARE * 100}% of the wall time); most active: ${
          list(shares.slice(0, 3))
        }`) +
      (ok
        ? `; within ${cpuText}; ${load}`
        : `: more busy threads than the ${cpuText} they run on, so they take turns on the cores; ${load}`),
    metrics: {
      busyThreads: busy.length,
      activeThreads: active,
      cpus: cpus.length,
      requests: answered,
      wallS,
    },
  };
}

/** The name of checkNoWarmup's check. */
export const NO_WARMUP_CHECK = "WARMUP=0: no warm-up ran, and the first request answers 200";

/**
 * For a server just started with WARMUP=0 (nothing sent to it but /health and /info): /info says
 * `warmup: false`, `startup.warmed` is null and the other stamps are in order, and the first
 * POST /embed it ever serves answers 200. metrics.firstRequestMs is that request's latency.
 */
export async function checkNoWarmup(
  baseUrl: string,
  body: string,
  timeoutMs = 300_000,
): Promise<ConformanceCheck> {
  const name = NO_WARMUP_CHECK;
  const info = await readInfo(baseUrl, timeoutMs);
  if (typeof info === "string") return { name, ok: false, detail: info };
  const problems = startupProblems(info, false);
  const started = performance.now();
  const answer = await request(baseUrl, "POST", "/embed", body, timeoutMs);
  const firstRequestMs = performance.now() - started;
  if (typeof answer === "string") problems.push(`the first POST /embed: ${answer}`);
  else if (answer.status !== 200) {
    problems.push(`the first POST /embed answered ${answer.status}: ${describe(answer.body)}`);
  }
  return {
    name,
    ok: problems.length === 0,
    detail: problems.length === 0
      ? `warmup false, warmed null; the first request answered 200 in ${firstRequestMs.toFixed(0)} ms`
      : problems.join("; "),
    metrics: { firstRequestMs },
  };
}

/**
 * A prompt_name the model does not have (any one when it has none) and sizes it does not support: each
 * must be rejected, or a server that ignores the field would answer rows of the wrong kind silently.
 */
function promptAndDimensionRequests(
  facts: Pick<ModelFacts, "prompts" | "dimensions">,
): { name: string; body: string }[] {
  const names = Object.keys(facts.prompts);
  const unknown = unknownPromptName(facts.prompts);
  return [
    {
      name: `prompt_name ${JSON.stringify(unknown)} (${
        names.length > 0 ? `the model's prompts are ${names.join(", ")}` : "the model has no prompts"
      })`,
      body: JSON.stringify({ inputs: "a", prompt_name: unknown }),
    },
    ...unsupportedDimensions(facts.dimensions).map((n) => ({
      name: `dimensions ${n} (expected ${describeDimensions(facts.dimensions)})`,
      body: JSON.stringify({ inputs: "a", dimensions: n }),
    })),
  ];
}

/** A request the contract rejects, and how it must be answered. */
interface BadRequest {
  name: string;
  method?: string;
  path?: string;
  contentType?: string;
  body?: string | Uint8Array;
  status: number;
  errorType: string;
}

function badRequests(
  o: ConformanceOptions,
  overlong: string,
  facts: Pick<ModelFacts, "prompts" | "dimensions">,
): BadRequest[] {
  const json = (v: unknown) => JSON.stringify(v);
  const tooMany = Math.max(10_000, o.maxBatch + 1);
  const bigBytes = Math.max(10 * 1024 * 1024, o.maxBodyBytes + 1);
  const utf8 = new TextEncoder();
  const invalidUtf8 = new Uint8Array([...utf8.encode('{"inputs": "caf'), 0xff, 0xfe, ...utf8.encode('"}')]);
  const v = { status: 422, errorType: "Validation" };
  return [
    { name: "malformed JSON", body: '{"inputs": ["a",', ...v },
    { name: "empty body", body: "", ...v },
    { name: "body is a JSON array, not an object", body: json(["a", "b"]), ...v },
    { name: "missing inputs", body: json({ text: "a" }), ...v },
    { name: "inputs is null", body: json({ inputs: null }), ...v },
    { name: "inputs is a number", body: json({ inputs: 42 }), ...v },
    { name: "inputs is an object", body: json({ inputs: { text: "a" } }), ...v },
    { name: "null inside inputs", body: json({ inputs: ["a", null] }), ...v },
    { name: "number inside inputs", body: json({ inputs: ["a", 1] }), ...v },
    { name: "nested arrays in inputs", body: json({ inputs: [["a", "b"]] }), ...v },
    { name: "empty inputs list", body: json({ inputs: [] }), ...v },
    { name: "truncate is a string", body: json({ inputs: "a", truncate: "no" }), ...v },
    { name: "normalize: false", body: json({ inputs: "a", normalize: false }), ...v },
    ...promptAndDimensionRequests(facts).map((r) => ({ ...r, ...v })),
    { name: "invalid UTF-8", body: invalidUtf8, ...v },
    {
      name: "truncate: false with an over-long text",
      body: json({ inputs: [overlong], truncate: false }),
      ...v,
    },
    {
      name: `${tooMany} inputs (MAX_BATCH ${o.maxBatch})`,
      body: json({ inputs: Array(tooMany).fill("a") }),
      status: 413,
      errorType: "PayloadTooLarge",
    },
    {
      name: `a ${(bigBytes / 1024 / 1024).toFixed(0)} MB body (MAX_BODY_BYTES ${o.maxBodyBytes})`,
      body: `{"inputs": "${"a".repeat(bigBytes)}"}`,
      status: 413,
      errorType: "PayloadTooLarge",
    },
    {
      name: "Content-Type text/plain",
      contentType: "text/plain",
      body: json({ inputs: "a" }),
      status: 415,
      errorType: "UnsupportedMediaType",
    },
    { name: "GET /embed", method: "GET", status: 405, errorType: "MethodNotAllowed" },
    {
      name: "POST /metrics",
      path: "/metrics",
      body: json({ inputs: "a" }),
      status: 405,
      errorType: "MethodNotAllowed",
    },
    { name: "unknown path", method: "GET", path: "/no-such-path", status: 404, errorType: "NotFound" },
    {
      name: "POST to an unknown path",
      path: "/v1/embeddings",
      body: json({ input: "a" }),
      status: 404,
      errorType: "NotFound",
    },
  ];
}

/**
 * Runs every check against a healthy server: /info (its start-up stamps and OS threads too),
 * embeddings against the PyTorch reference (a mismatch names the reference's known mistake the rows
 * match), each reference case of a prompt or a Matryoshka size (lib/server/reference.ts), an unknown
 * prompt_name and unsupported dimensions rejected, single string vs list of one, rows that follow their
 * texts (no wrongly keyed cache), keep-alive, timing headers, /metrics and its counters, busy
 * threads under load within the CPUs, accepted edge cases (empty string, unknown fields,
 * null flags, truncation), at least 12 rejected requests with their status and JSON error, and
 * /health still 200 afterwards. Never throws for a misbehaving server: that is a failed check.
 */
export async function runConformance(o: ConformanceOptions): Promise<ConformanceCheck[]> {
  const checks: ConformanceCheck[] = [];
  const timeoutMs = o.requestTimeoutMs ?? 300_000;
  const add = (name: string, ok: boolean, detail: string, metrics?: Record<string, number>) =>
    checks.push(metrics ? { name, ok, detail, metrics } : { name, ok, detail });

  let facts: ModelFacts;
  try {
    facts = await readModelFacts(o.modelDir);
  } catch (e) {
    add("model folder", false, `cannot read the model's facts: ${e instanceof Error ? e.message : e}`);
    return checks;
  }

  async function call(
    method: string,
    path: string,
    body?: string | Uint8Array,
    contentType: string | undefined = "application/json",
  ): Promise<Answer | string> {
    try {
      const headers: Record<string, string> = {};
      if (contentType !== undefined && body !== undefined) headers["content-type"] = contentType;
      const r = await fetch(`${o.baseUrl}${path}`, {
        method,
        headers,
        body: body as BodyInit | undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
      return { status: r.status, headers: r.headers, body: await r.text() };
    } catch (e) {
      // fetch's own message is "fetch failed"; the cause says what the connection did.
      const cause = e instanceof Error && e.cause ? ` (${e.cause})` : "";
      return `${method} ${path} failed: ${e instanceof Error ? e.message : e}${cause}`;
    }
  }

  /** POSTs inputs to /embed; the rows (of `width` numbers, null: any), or why there are none. */
  async function embed(
    payload: Record<string, unknown>,
    rows: number,
    width: number | null = facts.embeddingDim,
  ): Promise<Embedded | string> {
    const answer = await call("POST", "/embed", JSON.stringify(payload));
    if (typeof answer === "string") return answer;
    if (answer.status !== 200) return `answered ${answer.status}: ${describe(answer.body)}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.body);
    } catch {
      return `200 answer is not JSON: ${describe(answer.body)}`;
    }
    const problem = embeddingShapeProblem(parsed, rows, width);
    return problem ? problem : { rows: parsed as number[][], answer };
  }

  // /info
  {
    const answer = await call("GET", "/info");
    const problems: string[] = [];
    let info: Record<string, unknown> = {};
    if (typeof answer === "string") problems.push(answer);
    else if (answer.status !== 200) problems.push(`answered ${answer.status}: ${describe(answer.body)}`);
    else {
      try {
        const parsed = JSON.parse(answer.body);
        if (isRecord(parsed)) info = parsed;
        else problems.push(`not a JSON object: ${describe(answer.body)}`);
      } catch {
        problems.push(`not JSON: ${describe(answer.body)}`);
      }
    }
    if (problems.length === 0) {
      const expect = (field: string, ok: boolean, wanted: string) => {
        if (!ok) problems.push(`${field} is ${JSON.stringify(info[field])}: expected ${wanted}`);
      };
      const positiveInt = (x: unknown) => Number.isInteger(x) && (x as number) >= 1;
      const nonEmpty = (x: unknown) => typeof x === "string" && x !== "";
      expect("framework", nonEmpty(info.framework), "a name");
      expect("framework_version", nonEmpty(info.framework_version), "a version");
      expect("model", info.model === facts.name, `"${facts.name}" (embbench_model.json)`);
      expect(
        "embedding_dim",
        info.embedding_dim === facts.embeddingDim,
        `${facts.embeddingDim} (embbench_model.json)`,
      );
      expect(
        "max_seq_length",
        info.max_seq_length === facts.maxSeqLength,
        `${facts.maxSeqLength} (embbench_model.json)`,
      );
      expect("dtype", nonEmpty(info.dtype), "a dtype name");
      expect(
        "threads",
        positiveInt(info.threads) && (o.threads === undefined || info.threads === o.threads),
        o.threads === undefined ? "an integer >= 1" : `${o.threads} (NUM_THREADS)`,
      );
      expect(
        "cpus",
        typeof info.cpus === "string" && /^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(info.cpus),
        'a cpuset string such as "0-1,4"',
      );
      expect("max_batch", info.max_batch === o.maxBatch, `${o.maxBatch} (MAX_BATCH)`);
      expect(
        "max_inflight",
        positiveInt(info.max_inflight) &&
          (o.maxInflight === undefined || info.max_inflight === o.maxInflight),
        o.maxInflight === undefined ? "an integer >= 1" : `${o.maxInflight} (MAX_INFLIGHT)`,
      );
      expect("build", isRecord(info.build), "an object");
    }
    add(
      "info: shape and values",
      problems.length === 0,
      problems.length === 0
        ? `${info.framework} ${info.framework_version}, cpus ${info.cpus}`
        : problems.join("; "),
    );
    const unread = problems.length > 0 && Object.keys(info).length === 0 ? "no /info to read" : "";
    const warmup = o.warmup ?? true;
    const startup = unread ? [unread] : startupProblems(info, warmup);
    add(
      "info: warmup, and startup stamps in order",
      startup.length === 0,
      startup.length === 0
        ? `warmup ${warmup}; ${describeStartup(info.startup as Record<string, unknown>)}`
        : startup.join("; "),
    );
    const threads = unread || parseOsThreads(info.os_threads);
    add(
      "info: os_threads lists the server's threads",
      typeof threads !== "string",
      typeof threads === "string"
        ? threads
        : `${threads.length} threads: ${[...new Set(threads.map((t) => t.name))].join(", ")}`,
    );
    if (o.onnxRuntime) {
      const graph = unread
        ? { problem: unread }
        : ortGraphCheck(info, await readOrtGraphFacts(o.modelDir, facts.ortGraph));
      add(ORT_GRAPH_CHECK, !("problem" in graph), "problem" in graph ? graph.problem : graph.detail);
    }
  }

  // Embeddings against the reference, in batches of at most MAX_BATCH (one padded batch when it fits).
  let timingAnswer: Answer | undefined;
  {
    const name = "embeddings match the reference";
    const got = await embedAll(embed, facts.texts, {}, o.maxBatch, facts.embeddingDim);
    if (typeof got === "string") add(name, false, got);
    else {
      timingAnswer = got.answer;
      const c = compareEmbeddings(got.rows, facts.embeddings);
      const figures = comparisonFigures(c);
      const mistakes = (facts.reference.mistakes ?? []).filter((m) => m.caseKey === undefined);
      const cause = facts.reference.mistakes === undefined
        ? "reference/embeddings.json lists no known mistakes to name a cause (converted before they existed)"
        : likelyMistake(got.rows, c, mistakes);
      add(
        name,
        c.failingRows.length === 0,
        c.failingRows.length === 0
          ? `${figures}; limits cosine >= ${MIN_COSINE}, max |Δ| <= ${MAX_ABS_DIFF}`
          : `${cause ? `${cause}; ` : ""}rows ${
            c.failingRows.join(", ")
          } outside cosine >= ${MIN_COSINE} and max |Δ| <= ${MAX_ABS_DIFF}: ${figures}`,
        { worstCosine: c.worstCosine, worstAbsDiff: c.worstAbsDiff, rows: c.rows },
      );
    }
  }

  // The reference's prompt and Matryoshka cases, within the same limits.
  const cases = facts.reference.cases;
  if (cases === undefined || cases.length === 0) {
    add(
      REFERENCE_CASES_CHECK,
      true,
      cases === undefined
        ? "nothing to check: reference/embeddings.json has no cases (converted before prompts and dimensions " +
          "were checked; convert the model again to check them)"
        : "nothing to check: reference/embeddings.json holds no cases (the model has no prompts and one size)",
    );
  }
  for (const rc of cases ?? []) checks.push(await checkReferenceCase(embed, rc, facts, o.maxBatch));

  // Timing headers of a 200 answer.
  {
    const name = "timing headers: present, milliseconds";
    if (!timingAnswer) add(name, false, "no 200 answer from /embed to read them from");
    else {
      const values: Record<string, number> = {};
      const problems: string[] = [];
      for (const header of TIMING_HEADERS) {
        const raw = timingAnswer.headers.get(header);
        const ms = raw === null || raw.trim() === "" ? NaN : Number(raw);
        if (!Number.isFinite(ms) || ms < 0) {
          problems.push(`${header} is ${JSON.stringify(raw)}: expected ms >= 0`);
        } else values[header] = ms;
      }
      const total = values["x-total-time"];
      for (const part of ["x-tokenization-time", "x-inference-time"]) {
        const v = values[part];
        if (total !== undefined && v !== undefined && v > total + 0.01) {
          problems.push(`${part} ${v} exceeds x-total-time ${total}`);
        }
      }
      add(
        name,
        problems.length === 0,
        problems.length === 0
          ? TIMING_HEADERS.map((h) => `${h}: ${values[h]}`).join(", ")
          : problems.join("; "),
      );
    }
  }

  // Answers are never compressed, whatever the client offers.
  {
    const name = "answers are not compressed when the client offers gzip and br";
    try {
      const r = await rawPostHead(o.baseUrl, "/embed", JSON.stringify({ inputs: "compression check" }), {
        "accept-encoding": "gzip, deflate, br",
      }, timeoutMs);
      const encoding = r.headers["content-encoding"] ?? "identity";
      add(
        name,
        r.status === 200 && encoding === "identity",
        `status ${r.status}, content-encoding ${encoding}${encoding === "identity" ? "" : ": expected none"}`,
      );
    } catch (e) {
      add(name, false, `request failed: ${e instanceof Error ? e.message : e}`);
    }
  }

  // A single string is a list of one.
  {
    const text = facts.texts[0]!;
    const single = await embed({ inputs: text }, 1);
    const listed = await embed({ inputs: [text] }, 1);
    const name = "single string equals a list of one";
    if (typeof single === "string") add(name, false, `single string: ${single}`);
    else if (typeof listed === "string") add(name, false, `list of one: ${listed}`);
    else {
      const diff = Math.max(...single.rows[0]!.map((x, j) => Math.abs(x - listed.rows[0]![j]!)));
      add(
        name,
        diff <= SINGLE_VS_LIST_MAX_DIFF,
        `max |Δ| ${diff.toExponential(2)} (limit ${SINGLE_VS_LIST_MAX_DIFF})`,
        { maxAbsDiff: diff },
      );
    }
  }

  // Each row is computed from its own text: not cached under a wrong key, not copied from another row.
  {
    const name = "answers follow the texts";
    const [t1, t2] = facts.sampleTexts as [string, string];
    const t2Edited = changeLastWord(t2);
    const quote = (t: string) => JSON.stringify(describe(t, 40));
    const first = await embed({ inputs: [t1, t1, t2] }, 3);
    const second = typeof first === "string" ? first : await embed({ inputs: [t1, t2Edited] }, 2);
    if (typeof first === "string") add(name, false, `[t1, t1, t2]: ${first}`);
    else if (typeof second === "string") add(name, false, `[t1, t2 with its last word changed]: ${second}`);
    else {
      const sameText = maxAbsDiff(first.rows[0]!, first.rows[1]!);
      const otherText = maxAbsDiff(first.rows[0]!, first.rows[2]!);
      const editedText = maxAbsDiff(second.rows[1]!, first.rows[2]!);
      const t1Again = maxAbsDiff(second.rows[0]!, first.rows[0]!);
      const problems: string[] = [];
      if (sameText > SINGLE_VS_LIST_MAX_DIFF) {
        problems.push(
          `rows 0 and 1 of [t1, t1, t2] hold the same text but differ by max |Δ| ${
            sameText.toExponential(2)
          } ` +
            `(limit ${SINGLE_VS_LIST_MAX_DIFF}): rows are mixed up or depend on their position in the batch`,
        );
      }
      if (otherText <= DIFFERENT_TEXTS_MIN_DIFF) {
        problems.push(
          `rows 0 and 2 of [t1, t1, t2] hold different texts but differ by only max |Δ| ` +
            `${otherText.toExponential(2)}: the server answers the same rows whatever the input`,
        );
      }
      if (editedText <= DIFFERENT_TEXTS_MIN_DIFF) {
        problems.push(
          `t2 with its last word changed (${quote(t2Edited)}) got t2's embedding back (max |Δ| ` +
            `${editedText.toExponential(2)}): a cache keyed on part of the request (a prefix, the length, ` +
            `the batch shape) answers instead of the model`,
        );
      }
      if (t1Again > SINGLE_VS_LIST_MAX_DIFF) {
        problems.push(
          `t1's row changed by max |Δ| ${t1Again.toExponential(2)} (limit ${SINGLE_VS_LIST_MAX_DIFF}) when ` +
            `only the other row changed: a row depends on the other texts in its batch`,
        );
      }
      add(
        name,
        problems.length === 0,
        problems.length === 0
          ? `texts from ${facts.sampleSource}: same text max |Δ| ${sameText.toExponential(2)}, other text ` +
            `${otherText.toExponential(2)}, one word changed ${editedText.toExponential(2)}, t1 in another ` +
            `batch ${t1Again.toExponential(2)}`
          : `t1 = ${quote(t1)}, t2 = ${quote(t2)}: ${problems.join("; ")}`,
        {
          sameTextMaxDiff: sameText,
          otherTextMaxDiff: otherText,
          editedTextMaxDiff: editedText,
          t1AgainMaxDiff: t1Again,
        },
      );
    }
  }

  // One connection carries several requests, as it does under oha.
  checks.push(
    await checkKeepAlive(
      o.baseUrl,
      [JSON.stringify({ inputs: facts.sampleTexts[0] }), JSON.stringify({ inputs: [facts.sampleTexts[1]] })],
      timeoutMs,
    ),
  );

  // Phase counters, with nothing else talking to the server.
  checks.push(...await checkMetrics(o.baseUrl, facts.sampleTexts, { maxBatch: o.maxBatch, timeoutMs }));

  // No more busy threads than CPUs under load.
  checks.push(
    await checkBusyThreads(o.baseUrl, facts.longTexts.map((t) => JSON.stringify({ inputs: [t] })), {
      durationMs: o.busyLoadMs,
      timeoutMs,
    }),
  );

  // Accepted edge cases: the contract's policies.
  // Every word is at least one token, so twice max_seq_length words is over-long for any tokenizer.
  const overlong = Array(facts.maxSeqLength * 2).fill("hello").join(" ");
  {
    const accepted: [string, Record<string, unknown>, number][] = [
      ["accepts an empty string", { inputs: ["", "a"] }, 2],
      ["ignores unknown fields", { inputs: "a", unknown_field: [1, 2], instruction: { text: "b" } }, 1],
      ["null truncate and normalize mean the defaults", { inputs: "a", truncate: null, normalize: null }, 1],
      ["null prompt_name and dimensions mean the defaults", {
        inputs: "a",
        prompt_name: null,
        dimensions: null,
      }, 1],
      ["accepts truncate: true and normalize: true", { inputs: ["a"], truncate: true, normalize: true }, 1],
    ];
    for (const [name, payload, rows] of accepted) {
      const got = await embed(payload, rows);
      add(name, typeof got !== "string", typeof got === "string" ? got : `200 with ${rows} row(s)`);
    }
    // Two texts that agree on their first max_seq_length tokens must embed alike once truncated.
    const longer = Array(facts.maxSeqLength * 3).fill("hello").join(" ");
    const got = await embed({ inputs: [overlong, longer] }, 2);
    const name = `truncates over-long texts to max_seq_length (${facts.maxSeqLength})`;
    if (typeof got === "string") add(name, false, got);
    else {
      const diff = Math.max(...got.rows[0]!.map((x, j) => Math.abs(x - got.rows[1]![j]!)));
      add(
        name,
        diff <= MAX_ABS_DIFF,
        `texts of ${facts.maxSeqLength * 2} and ${facts.maxSeqLength * 3} words: max |Δ| ${
          diff.toExponential(2)
        }`,
      );
    }
  }

  // Rejected requests.
  for (const bad of badRequests(o, overlong, facts)) {
    const method = bad.method ?? "POST";
    const path = bad.path ?? "/embed";
    const answer = await call(method, path, bad.body, bad.contentType ?? "application/json");
    const name = `rejects ${bad.name}: ${bad.status} ${bad.errorType}`;
    if (typeof answer === "string") {
      add(name, false, answer);
      continue;
    }
    const problems: string[] = [];
    if (answer.status !== bad.status) problems.push(`status ${answer.status}: expected ${bad.status}`);
    const contentType = answer.headers.get("content-type") ?? "";
    if (!contentType.toLowerCase().startsWith("application/json")) {
      problems.push(`Content-Type ${JSON.stringify(contentType)}: expected application/json`);
    }
    const bodyProblem = errorBodyProblem(answer.body, bad.errorType);
    if (bodyProblem) problems.push(bodyProblem);
    add(name, problems.length === 0, problems.length === 0 ? describe(answer.body) : problems.join("; "));
  }

  // Still serving.
  {
    const answer = await call("GET", "/health");
    const ok = typeof answer !== "string" && answer.status === 200;
    add(
      "health still 200 after the rejected requests",
      ok,
      typeof answer === "string" ? answer : `${answer.status} ${describe(answer.body)}`,
    );
  }
  if (o.serving === "batched") checks.push(await checkBatchedRows(o.baseUrl, facts, timeoutMs));
  return checks;
}

/** Concurrent rounds the batched-rows check sends at most, waiting for the server to form a batch. */
const BATCH_ROUNDS = 10;

/**
 * Batched mode must batch, and padding inside a batch must not change any row: each text is first
 * embedded alone (a batch of one), then all of them are sent at once as separate requests, round
 * after round, until /metrics shows that inferences held several requests' rows; every answer of
 * every round must match the text's answer alone within the parity tolerance (MAX_ABS_DIFF), and
 * /info must say `serving.mode` "batched".
 */
export async function checkBatchedRows(
  baseUrl: string,
  facts: Pick<ModelFacts, "sampleTexts" | "texts">,
  timeoutMs: number,
): Promise<ConformanceCheck> {
  const name = "batched: concurrent requests share inferences, and every row equals the text's row alone";
  const fail = (detail: string): ConformanceCheck => ({ name, ok: false, detail });
  const info = await readInfo(baseUrl, timeoutMs);
  if (typeof info === "string") return fail(info);
  const serving = isRecord(info.serving) ? info.serving : undefined;
  if (serving?.mode !== "batched") {
    return fail(`/info serving is ${describe(info.serving)}: expected mode "batched"`);
  }
  const texts = [...new Set([...facts.sampleTexts, ...facts.texts].filter((t) => t !== ""))].slice(0, 8);
  const embedOne = async (text: string): Promise<number[] | string> => {
    const a = await request(baseUrl, "POST", "/embed", JSON.stringify({ inputs: [text] }), timeoutMs);
    if (typeof a === "string") return a;
    if (a.status !== 200) return `POST /embed answered ${a.status}: ${a.body.slice(0, 200)}`;
    const rows = JSON.parse(a.body);
    return Array.isArray(rows) && Array.isArray(rows[0])
      ? rows[0] as number[]
      : `unexpected answer ${describe(rows)}`;
  };
  const alone: number[][] = [];
  for (const t of texts) {
    const row = await embedOne(t);
    if (typeof row === "string") return fail(`embedding a text alone: ${row}`);
    alone.push(row);
  }
  let worst = 0;
  let shared = 0;
  let rounds = 0;
  let inferences = 0;
  let requests = 0;
  // Each round first sends a blocker: one request of MAX_BATCH copies of the longest text. The texts sent
  // while it runs queue behind it, so they meet in the queue even when a small model answers a lone text
  // faster than a starved client can send the next one.
  const longest = texts.reduce((a, b) => (b.length > a.length ? b : a), "");
  const blockerRows = Number.isInteger(info.max_batch) && (info.max_batch as number) >= 1
    ? Math.min(info.max_batch as number, 16)
    : 1;
  const blockerBody = JSON.stringify({ inputs: Array(blockerRows).fill(longest) });
  for (; rounds < BATCH_ROUNDS && shared === 0; rounds++) {
    const before = await readMetrics(baseUrl);
    const blocker = request(baseUrl, "POST", "/embed", blockerBody, timeoutMs);
    const rows = await Promise.all(texts.map(embedOne));
    const blocked = await blocker;
    const after = await readMetrics(baseUrl);
    if (typeof blocked === "string" || blocked.status !== 200) {
      return fail(
        `round ${rounds + 1}, the blocker request of ${blockerRows} texts: ${
          typeof blocked === "string" ? blocked : `answered ${blocked.status}: ${blocked.body.slice(0, 200)}`
        }`,
      );
    }
    for (const [i, row] of rows.entries()) {
      if (typeof row === "string") return fail(`round ${rounds + 1}, text ${i}: ${row}`);
      worst = Math.max(worst, maxAbsDiff(row, alone[i]!));
    }
    if (!before || !after) return fail("/metrics did not answer: cannot tell whether requests were batched");
    const d = metricsDelta(before, after);
    const n = d["embbench_requests_total"] ?? 0;
    const k = d["embbench_batch_size_count"] ?? n;
    requests += n;
    inferences += k;
    if (k < n) shared++;
  }
  const detail =
    `${requests} concurrent requests (${texts.length} texts, each round behind a request of ${blockerRows}) in ${rounds} round(s) ran as ${inferences} ` +
    `inferences; worst |Δ| to the text alone ${worst.toExponential(2)} (tolerance ${MAX_ABS_DIFF})`;
  const metrics = { rounds, requests, inferences, worstAbsDiff: worst };
  if (shared === 0) return { name, ok: false, detail: `never batched: ${detail}`, metrics };
  return { name, ok: worst <= MAX_ABS_DIFF, detail, metrics };
}
