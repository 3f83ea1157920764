/**
 * The reference embeddings `embbench convert` writes (reference/embeddings.json) and how served rows
 * are judged against them: the parity limits, the prompt and Matryoshka `cases`, and the known
 * `mistakes` that name the likely cause of a mismatch (docker/CONTRACT.md, "Model folder").
 */

/** Least cosine similarity to the PyTorch reference, per row. */
export const MIN_COSINE = 0.9999;
/** Largest absolute difference to the PyTorch reference, per row. */
export const MAX_ABS_DIFF = 1e-4;
/** A served row's L2 norm may differ from 1 by this much (float32 sums of up to a few thousand squares). */
export const NORM_TOLERANCE = 1e-3;
/**
 * A mistake that most rows do not match is named only when the served rows are at least this many
 * times closer to its rows than to the reference's, closeness being 1 − the worst row's cosine: a
 * server that is merely imprecise, or wrong in a way no mistake describes, is then not blamed on a
 * mistake that happens to be nearby.
 */
export const MISTAKE_MARGIN = 10;

/** Per-row agreement of served embeddings with reference embeddings. */
export interface EmbeddingComparison {
  rows: number;
  worstCosine: number;
  worstCosineRow: number;
  worstAbsDiff: number;
  worstAbsDiffRow: number;
  /** Rows under MIN_COSINE or over MAX_ABS_DIFF. */
  failingRows: number[];
}

/** Compares served rows with reference rows (same count and dimension, checked by the caller). */
export function compareEmbeddings(served: number[][], reference: number[][]): EmbeddingComparison {
  const result: EmbeddingComparison = {
    rows: reference.length,
    worstCosine: Infinity,
    worstCosineRow: -1,
    worstAbsDiff: -Infinity,
    worstAbsDiffRow: -1,
    failingRows: [],
  };
  reference.forEach((ref, i) => {
    const got = served[i]!;
    let dot = 0, nRef = 0, nGot = 0, maxDiff = 0;
    for (let j = 0; j < ref.length; j++) {
      const a = got[j]!, b = ref[j]!;
      dot += a * b;
      nRef += b * b;
      nGot += a * a;
      maxDiff = Math.max(maxDiff, Math.abs(a - b));
    }
    const cosine = nRef > 0 && nGot > 0 ? dot / Math.sqrt(nRef * nGot) : 0;
    if (cosine < result.worstCosine) [result.worstCosine, result.worstCosineRow] = [cosine, i];
    if (maxDiff > result.worstAbsDiff) [result.worstAbsDiff, result.worstAbsDiffRow] = [maxDiff, i];
    if (!(cosine >= MIN_COSINE && maxDiff <= MAX_ABS_DIFF)) result.failingRows.push(i);
  });
  return result;
}

/** "N rows, worst cosine …, worst max |Δ| …": a comparison's figures for a check's detail. */
export function comparisonFigures(c: EmbeddingComparison): string {
  return `${c.rows} rows, worst cosine ${c.worstCosine.toFixed(7)} (row ${c.worstCosineRow}), ` +
    `worst max |Δ| ${c.worstAbsDiff.toExponential(2)} (row ${c.worstAbsDiffRow})`;
}

/** The output sizes a model supports (embbench_model.json `dimensions`): `sizes`, or every size from min to max. */
export interface Dimensions {
  min: number;
  max: number;
  sizes?: number[];
}

/** A reference case: texts embedded with a prompt and/or at a Matryoshka size. */
export interface ReferenceCase {
  promptName: string | null;
  dimensions: number | null;
  texts: string[];
  embeddings: number[][];
}

/**
 * Rows as a wrongly served model gives them, so a mismatch can name its likely cause. Without a case
 * key they are rows of the reference's `texts`; with `prompt_name` and/or `dimensions` (an extension of
 * the contract's shape) they are rows of the case with that key.
 */
export interface ReferenceMistake {
  name: string;
  cause: string;
  embeddings: number[][];
  /** The case whose texts the rows belong to; undefined for the reference's own texts. */
  caseKey?: string;
}

/** What reference/embeddings.json holds beyond texts and embeddings; undefined when the file predates it. */
export interface ReferenceChecks {
  cases?: ReferenceCase[];
  mistakes?: ReferenceMistake[];
}

/** A case's key: `prompt_name "query", dimensions 16`, `dimensions 16`, or `no prompt, full size`. */
export function caseKey(c: { promptName: string | null; dimensions: number | null }): string {
  const parts = [
    ...(c.promptName === null ? [] : [`prompt_name ${JSON.stringify(c.promptName)}`]),
    ...(c.dimensions === null ? [] : [`dimensions ${c.dimensions}`]),
  ];
  return parts.length > 0 ? parts.join(", ") : "no prompt, full size";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Why `rows` is not `count` rows of `width` finite numbers, or "". */
function rowsProblem(rows: unknown, count: number, width: number): string {
  if (!Array.isArray(rows)) return "is not a list of rows";
  if (rows.length !== count) return `has ${rows.length} rows: expected ${count}`;
  for (const [i, row] of rows.entries()) {
    if (!Array.isArray(row) || row.length !== width) {
      return `row ${i} is not ${width} numbers`;
    }
    if (!row.every((x) => typeof x === "number" && Number.isFinite(x))) {
      return `row ${i} holds something other than finite numbers`;
    }
  }
  return "";
}

/**
 * embbench_model.json's `dimensions`; absent (folders converted before Matryoshka sizes were recorded):
 * the embedding size alone.
 */
export function readDimensions(
  spec: Record<string, unknown>,
  embeddingDim: number,
  where: string,
): Dimensions {
  const d = spec.dimensions;
  if (d === undefined) return { min: embeddingDim, max: embeddingDim, sizes: [embeddingDim] };
  const int = (x: unknown) => Number.isInteger(x) && (x as number) >= 1;
  if (!isRecord(d) || !int(d.min) || !int(d.max) || (d.min as number) > (d.max as number)) {
    throw new Error(`${where}: dimensions is ${JSON.stringify(d)}: expected {"min", "max"[, "sizes"]}`);
  }
  if (d.sizes !== undefined && !(Array.isArray(d.sizes) && d.sizes.length > 0 && d.sizes.every(int))) {
    throw new Error(`${where}: dimensions.sizes is ${JSON.stringify(d.sizes)}: expected a list of sizes`);
  }
  return {
    min: d.min as number,
    max: d.max as number,
    ...(d.sizes ? { sizes: [...(d.sizes as number[])].sort((a, b) => a - b) } : {}),
  };
}

/** embbench_model.json's `prompts` (name → text); absent: none. */
export function readPrompts(spec: Record<string, unknown>, where: string): Record<string, string> {
  const p = spec.prompts;
  if (p === undefined) return {};
  if (!isRecord(p) || !Object.values(p).every((t) => typeof t === "string")) {
    throw new Error(`${where}: prompts is ${JSON.stringify(p)}: expected an object of prompt name to text`);
  }
  return p as Record<string, string>;
}

/** "one of 16, 32, 48, 64" or "an integer from 32 to 1024", as the contract's 422 messages say it. */
export function describeDimensions(d: Dimensions): string {
  return d.sizes ? `one of ${d.sizes.join(", ")}` : `an integer from ${d.min} to ${d.max}`;
}

/**
 * Sizes a server must refuse: one above the largest, and one inside the range that is not a listed size
 * (or one below the smallest), so neither a missing check nor a check of the range alone passes.
 */
export function unsupportedDimensions(d: Dimensions): number[] {
  const out = [d.max + 1];
  let gap: number | undefined;
  if (d.sizes) {
    for (let n = d.min + 1; n < d.max && gap === undefined; n++) if (!d.sizes.includes(n)) gap = n;
  }
  if (gap !== undefined) out.push(gap);
  else if (d.min > 1) out.push(d.min - 1);
  return out;
}

/** A prompt name the model does not have: "query" when it has none (the likeliest to be accepted wrongly). */
export function unknownPromptName(prompts: Record<string, string>): string {
  return ["query", "document", "summary", "embbench-no-such-prompt"].find((n) => !(n in prompts))!;
}

/**
 * Reads `cases` and `mistakes` of a parsed reference/embeddings.json (`where` names it in errors).
 * Absent keys stay undefined: the folder was converted before they existed. A case's rows hold
 * `dimensions` numbers (else `embeddingDim`); a mistake's rows are those of the texts it names.
 */
export function readReferenceChecks(
  ref: Record<string, unknown>,
  texts: string[],
  embeddingDim: number,
  where: string,
): ReferenceChecks {
  const out: ReferenceChecks = {};
  if (ref.cases !== undefined) {
    if (!Array.isArray(ref.cases)) throw new Error(`${where}: cases is not a list`);
    out.cases = ref.cases.map((c: unknown, i: number) => {
      const at = `${where}: cases[${i}]`;
      if (!isRecord(c)) throw new Error(`${at} is not an object`);
      const promptName = c.prompt_name ?? null;
      const dimensions = c.dimensions ?? null;
      if (promptName !== null && typeof promptName !== "string") {
        throw new Error(`${at}.prompt_name is ${JSON.stringify(promptName)}: expected a name or null`);
      }
      if (dimensions !== null && !(Number.isInteger(dimensions) && (dimensions as number) >= 1)) {
        throw new Error(`${at}.dimensions is ${JSON.stringify(dimensions)}: expected a size or null`);
      }
      if (
        !Array.isArray(c.texts) || c.texts.length === 0 || !c.texts.every((t) => typeof t === "string")
      ) {
        throw new Error(`${at}.texts is not a non-empty list of strings`);
      }
      const width = (dimensions as number | null) ?? embeddingDim;
      const problem = rowsProblem(c.embeddings, c.texts.length, width);
      if (problem) throw new Error(`${at}.embeddings ${problem}`);
      return {
        promptName: promptName as string | null,
        dimensions: dimensions as number | null,
        texts: c.texts as string[],
        embeddings: c.embeddings as number[][],
      };
    });
  }
  if (ref.mistakes !== undefined) {
    if (!Array.isArray(ref.mistakes)) throw new Error(`${where}: mistakes is not a list`);
    out.mistakes = ref.mistakes.map((m: unknown, i: number) => {
      const at = `${where}: mistakes[${i}]`;
      if (!isRecord(m) || typeof m.name !== "string" || typeof m.cause !== "string") {
        throw new Error(`${at} lacks a "name" and a "cause"`);
      }
      const keyed = m.prompt_name != null || m.dimensions != null;
      let rows = texts.length, width = embeddingDim, key: string | undefined;
      if (keyed) {
        key = caseKey({
          promptName: (m.prompt_name ?? null) as string | null,
          dimensions: (m.dimensions ?? null) as number | null,
        });
        const target = out.cases?.find((c) => caseKey(c) === key);
        if (!target) throw new Error(`${at} ("${m.name}") names the case ${key}, which cases does not hold`);
        [rows, width] = [target.texts.length, target.dimensions ?? embeddingDim];
      }
      const problem = rowsProblem(m.embeddings, rows, width);
      if (problem) throw new Error(`${at} ("${m.name}"): embeddings ${problem}`);
      return {
        name: m.name,
        cause: m.cause,
        embeddings: m.embeddings as number[][],
        ...(key === undefined ? {} : { caseKey: key }),
      };
    });
  }
  return out;
}

/** 1 − the worst row's cosine, never below 0 (rounding can take a cosine of equal rows past 1). */
function distance(c: EmbeddingComparison): number {
  return Math.max(0, 1 - c.worstCosine);
}

/**
 * Which known mistake the served rows match, for the detail of a failed comparison. A mistake
 * matches when more than half of the rows that miss the reference are within the parity limits of
 * its rows ("rows match"; every such mistake when several match as many rows): a degenerate row (an
 * empty text) then cannot hide the cause. Otherwise the mistake closest by the worst row's cosine is
 * named only when the rows are at least MISTAKE_MARGIN times closer to it than to the reference
 * ("rows are closest to"). "" when there are no mistakes to compare with; otherwise says that none
 * matches.
 */
export function likelyMistake(
  served: number[][],
  reference: EmbeddingComparison,
  mistakes: ReferenceMistake[],
): string {
  if (mistakes.length === 0) return "";
  const missing = reference.failingRows;
  const scored = mistakes.map((m) => {
    const c = compareEmbeddings(served, m.embeddings);
    return { m, c, matched: missing.filter((i) => !c.failingRows.includes(i)).length };
  });
  const cosine = (c: EmbeddingComparison) => c.worstCosine.toFixed(7);
  const toReference = `${cosine(reference)} to the reference`;
  const most = Math.max(...scored.map((s) => s.matched));
  if (most * 2 > missing.length) {
    const alike = scored.filter((s) => s.matched === most);
    const rows = `${most} of the ${missing.length} rows that miss the reference are within the limits of ` +
      (alike.length > 1 ? "each" : "it");
    if (alike.length > 1) {
      return `rows match ${alike.length} known mistakes alike (${rows}): ` +
        alike.map((s) => `'${s.m.name}': ${s.m.cause}`).join("; or ");
    }
    const best = alike[0]!;
    return `rows match '${best.m.name}' (${rows}; worst cosine ${cosine(best.c)} to it, ${toReference}): ` +
      best.m.cause;
  }
  const closest = scored.sort((a, b) => distance(a.c) - distance(b.c))[0]!;
  if (distance(reference) > 0 && distance(closest.c) * MISTAKE_MARGIN <= distance(reference)) {
    return `rows are closest to '${closest.m.name}' (worst cosine ${
      cosine(closest.c)
    } to it, ${toReference}): ` +
      closest.m.cause;
  }
  return `the rows match none of the reference's ${mistakes.length} known mistakes (closest '${closest.m.name}', ` +
    `worst cosine ${cosine(closest.c)} to it, ${toReference})`;
}

/** The worst row's distance of its L2 norm from 1, and that row. */
export function worstNorm(rows: number[][]): { row: number; norm: number } {
  let worst = { row: -1, norm: 1 };
  rows.forEach((r, i) => {
    const norm = Math.hypot(...r);
    if (worst.row < 0 || Math.abs(norm - 1) > Math.abs(worst.norm - 1)) worst = { row: i, norm };
  });
  return worst;
}
