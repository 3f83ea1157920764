import { deepStrictEqual, equal, match, ok, throws } from "node:assert/strict";
import {
  type ConformanceCheck,
  REFERENCE_CASES_CHECK,
  referenceCaseCheckName,
  runConformance,
} from "./conformance.ts";
import {
  caseKey,
  compareEmbeddings,
  describeDimensions,
  likelyMistake,
  MISTAKE_MARGIN,
  readDimensions,
  readReferenceChecks,
  unknownPromptName,
  unsupportedDimensions,
} from "./reference.ts";

Deno.test("unsupportedDimensions() takes one size above the largest and one inside the range that is not allowed", () => {
  deepStrictEqual(unsupportedDimensions({ min: 16, max: 64, sizes: [16, 32, 48, 64] }), [65, 17]);
  deepStrictEqual(unsupportedDimensions({ min: 32, max: 1024 }), [1025, 31]);
  deepStrictEqual(unsupportedDimensions({ min: 384, max: 384, sizes: [384] }), [385, 383]);
  deepStrictEqual(unsupportedDimensions({ min: 1, max: 8 }), [9]);
});

Deno.test("describeDimensions() words the allowed sizes as the contract's 422 messages do", () => {
  equal(describeDimensions({ min: 128, max: 768, sizes: [128, 256, 512, 768] }), "one of 128, 256, 512, 768");
  equal(describeDimensions({ min: 32, max: 1024 }), "an integer from 32 to 1024");
});

Deno.test("readDimensions() defaults to the embedding size alone and refuses a malformed entry", () => {
  deepStrictEqual(readDimensions({}, 64, "m.json"), { min: 64, max: 64, sizes: [64] });
  deepStrictEqual(readDimensions({ dimensions: { min: 16, max: 64, sizes: [64, 16, 32] } }, 64, "m.json"), {
    min: 16,
    max: 64,
    sizes: [16, 32, 64],
  });
  throws(() => readDimensions({ dimensions: [16, 64] }, 64, "m.json"), /m\.json: dimensions is \[16,64\]/);
});

Deno.test("unknownPromptName() picks query for a model without prompts, else a name the model lacks", () => {
  equal(unknownPromptName({}), "query");
  equal(unknownPromptName({ query: "q: ", document: "" }), "summary");
});

Deno.test("readReferenceChecks() reads cases and mistakes, and names the entry that is malformed", () => {
  const texts = ["a", "b"];
  const rows = [[1, 0], [0, 1]];
  const ref = {
    cases: [{ prompt_name: "query", dimensions: null, texts: ["q"], embeddings: [[0.6, 0.8]] }, {
      prompt_name: null,
      dimensions: 1,
      texts,
      embeddings: [[1], [1]],
    }],
    mistakes: [
      { name: "dense layers skipped", cause: "no dense", embeddings: rows },
      { name: "prompt not applied", cause: "no prompt", prompt_name: "query", embeddings: [[1, 0]] },
    ],
  };
  const r = readReferenceChecks(ref, texts, 2, "ref.json");
  equal(r.cases!.length, 2);
  equal(caseKey(r.cases![1]!), "dimensions 1");
  equal(r.mistakes![0]!.caseKey, undefined);
  equal(r.mistakes![1]!.caseKey, 'prompt_name "query"');
  deepStrictEqual(readReferenceChecks({}, texts, 2, "ref.json"), {});
  throws(
    () => readReferenceChecks({ cases: [{ dimensions: 1, texts, embeddings: rows }] }, texts, 2, "ref.json"),
    /ref\.json: cases\[0\]\.embeddings row 0 is not 1 numbers/,
  );
  throws(
    () =>
      readReferenceChecks(
        { mistakes: [{ name: "x", cause: "y", dimensions: 4, embeddings: rows }] },
        texts,
        2,
        "ref.json",
      ),
    /mistakes\[0\] \("x"\) names the case dimensions 4, which cases does not hold/,
  );
});

Deno.test("likelyMistake() names a mistake only when the rows are clearly closer to it than to the reference", () => {
  const reference = [[1, 0, 0], [0, 1, 0]];
  const skipped = { name: "dense layers skipped", cause: "no dense", embeddings: [[0, 0, 1], [0, 1, 0]] };
  const causal = { name: "causal attention", cause: "causal", embeddings: [[0.6, 0.8, 0], [0, 0, 1]] };
  // Served exactly as the skipped-dense model.
  const served = skipped.embeddings;
  match(likelyMistake(served, compareEmbeddings(served, reference), [causal, skipped]), /^rows match 'dense/);
  // Slightly off the reference (imprecise, not a known mistake): nothing is blamed.
  const noisy = [[0.9998, 0.02, 0], [0, 1, 0]];
  match(
    likelyMistake(noisy, compareEmbeddings(noisy, reference), [skipped, causal]),
    /match none of the reference's 2 known mistakes \(closest/,
  );
  // Nearer a mistake, but not MISTAKE_MARGIN times nearer than to the reference: not named.
  const between = [[Math.SQRT1_2, 0, Math.SQRT1_2], [0, 1, 0]];
  ok(MISTAKE_MARGIN > 1);
  match(likelyMistake(between, compareEmbeddings(between, reference), [skipped]), /match none/);
  equal(likelyMistake(served, compareEmbeddings(served, reference), []), "");
  // Near a mistake but outside its limits, and far from the reference: the closest, said so.
  const near = [[0, 0.01, 1], [0, 1, 0]];
  match(
    likelyMistake(near, compareEmbeddings(near, reference), [causal, skipped]),
    /^rows are closest to 'dense layers skipped' \(worst cosine 0\.99995\d+ to it, 0\.0000000 to the reference\): no dense$/,
  );
  // Two mistakes that give these texts the same rows are both named.
  const twin = { ...skipped, name: "window ignored", cause: "no window" };
  match(
    likelyMistake(served, compareEmbeddings(served, reference), [causal, skipped, twin]),
    /^rows match 2 known mistakes alike \(1 of the 1 rows that miss the reference are within the limits of each\): 'dense layers skipped': no dense; or 'window ignored': no window$/,
  );
});

// --- A synthetic model whose every pipeline step can be left out, and a fake server of it ----------

/** How the fake serves the synthetic model: the right pipeline, or with one step wrong. */
interface Pipeline {
  dense: boolean;
  attention: "bidirectional" | "causal";
  pooling: "mean" | "last_token";
  /** false: prompt_name is accepted but not prepended (and unknown names are not rejected). */
  prompts: boolean;
  /** false: dimensions is accepted but the rows keep every number (and bad sizes are not rejected). */
  dimensions: boolean;
  /** false: rows are cut to `dimensions` but not normalised again. */
  renormalize: boolean;
}

const RIGHT: Pipeline = {
  dense: true,
  attention: "bidirectional",
  pooling: "mean",
  prompts: true,
  dimensions: true,
  renormalize: true,
};

const PROMPTS = { query: "task: search result | query: ", document: "" };
const SIZES = [4, 6, 8];
const TEXTS = [
  "The morning train was late because of the snow on the tracks",
  "Die Bibliothek bleibt heute bis Mitternacht geöffnet, sagt die Stadt",
  "Le marché du samedi vend des fromages de toute la région",
];

const normalize = (x: number[]) => {
  const n = Math.hypot(...x);
  return x.map((v) => v / n);
};

/** The "encoder": 8 numbers from every character; the attention and pooling variants give other numbers. */
function hidden(text: string, p: Pipeline): number[] {
  const shift = (p.attention === "causal" ? 0.5 : 0) + (p.pooling === "last_token" ? 1.3 : 0);
  const row = Array.from({ length: 8 }, (_, j) => Math.sin(j + 1));
  for (let i = 0; i < text.length; i++) {
    row[i % 8] = row[i % 8]! + Math.sin(text.charCodeAt(i) * (i + 1) + shift);
  }
  return row;
}

/** Two Dense layers, 8 → 12 → 8, no bias. */
function dense(x: number[]): number[] {
  const layer = (v: number[], out: number, seed: number) =>
    Array.from({ length: out }, (_, k) => v.reduce((a, vi, i) => a + vi * Math.sin(seed * k + 5 * i + 1), 0));
  return layer(layer(x, 12, 3), 8, 7);
}

function embedText(
  text: string,
  p: Pipeline,
  promptName: string | null,
  dimensions: number | null,
): number[] {
  const prompt = p.prompts && promptName !== null ? PROMPTS[promptName as keyof typeof PROMPTS] : "";
  let x = hidden(prompt + text, p);
  if (p.dense) x = dense(x);
  x = normalize(x);
  if (dimensions !== null && p.dimensions) {
    x = x.slice(0, dimensions);
    if (p.renormalize) x = normalize(x);
  }
  return x;
}

/** The synthetic model's folder: embbench_model.json, and a reference with cases and mistakes unless `old`. */
function writeModel(o: { old?: boolean } = {}): string {
  const dir = Deno.makeTempDirSync({ prefix: "embbench-reference-" });
  Deno.mkdirSync(`${dir}/reference`);
  Deno.writeTextFileSync(
    `${dir}/embbench_model.json`,
    JSON.stringify({
      name: "pipeline",
      architecture: "gemma3",
      pooling: "mean",
      normalize: true,
      max_seq_length: 64,
      embedding_dim: 8,
      ...(o.old ? {} : {
        attention: "bidirectional",
        dense: [{ in: 8, out: 12, bias: false, activation: "identity" }, {
          in: 12,
          out: 8,
          bias: false,
          activation: "identity",
        }],
        prompts: PROMPTS,
        dimensions: { min: 4, max: 8, sizes: SIZES },
      }),
    }),
  );
  const rows = (p: Pipeline, prompt: string | null = null, dims: number | null = null, texts = TEXTS) =>
    texts.map((t) => embedText(t, p, prompt, dims));
  const queries = ["how late is the train", "wann schließt die Bibliothek"];
  const cases = [
    {
      prompt_name: "query",
      dimensions: null,
      texts: queries,
      embeddings: rows(RIGHT, "query", null, queries),
    },
    { prompt_name: "document", dimensions: null, texts: TEXTS, embeddings: rows(RIGHT, "document") },
    { prompt_name: null, dimensions: 4, texts: TEXTS, embeddings: rows(RIGHT, null, 4) },
    { prompt_name: null, dimensions: 6, texts: TEXTS, embeddings: rows(RIGHT, null, 6) },
  ];
  const mistakes = [
    { name: "dense layers skipped", cause: DENSE_CAUSE, embeddings: rows({ ...RIGHT, dense: false }) },
    {
      name: "causal attention",
      cause: "the server likely uses causal attention where the model's is bidirectional",
      embeddings: rows({ ...RIGHT, attention: "causal" }),
    },
    {
      name: "last token pooled",
      cause: "the server likely pools the last token where the model takes the mean",
      embeddings: rows({ ...RIGHT, pooling: "last_token" }),
    },
    {
      name: "query prompt not applied",
      cause: "the server likely does not prepend the query prompt",
      prompt_name: "query",
      embeddings: rows(RIGHT, null, null, queries),
    },
  ];
  Deno.writeTextFileSync(
    `${dir}/reference/embeddings.json`,
    JSON.stringify({
      model: "pipeline",
      texts: TEXTS,
      embeddings: rows(RIGHT),
      token_counts: TEXTS.map((t) => t.length),
      ...(o.old ? {} : { cases, mistakes }),
    }),
  );
  return dir;
}

const DENSE_CAUSE = "the server likely does not apply embbench_model.json's dense";

const invalid = (error: string) => Response.json({ error, error_type: "Validation" }, { status: 422 });

/** A fake server of the synthetic model served through `p`; `prompts` are the prompts it knows. */
function pipelineServer(
  p: Pipeline,
  prompts: Record<string, string> = PROMPTS,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = await req.text().catch(() => "");
    const path = new URL(req.url).pathname;
    if (path === "/health") return Response.json({ status: "ok" });
    if (path !== "/embed") {
      return Response.json({ error: "no such path", error_type: "NotFound" }, { status: 404 });
    }
    let request: Record<string, unknown>;
    try {
      request = JSON.parse(body);
    } catch {
      return invalid("malformed JSON");
    }
    const inputs = request.inputs;
    const texts = typeof inputs === "string" ? [inputs] : Array.isArray(inputs) ? inputs.map(String) : [];
    if (texts.length === 0) return invalid("inputs is missing");
    const promptName = (request.prompt_name ?? null) as string | null;
    const dimensions = (request.dimensions ?? null) as number | null;
    if (p.prompts && promptName !== null && !(promptName in prompts)) {
      return invalid(
        `'prompt_name' is ${JSON.stringify(promptName)}: the model's prompts are query, document`,
      );
    }
    if (p.dimensions && dimensions !== null && !SIZES.includes(dimensions)) {
      return invalid(`'dimensions' is ${dimensions}: expected one of 4, 6, 8`);
    }
    return Response.json(texts.map((t) => embedText(t, p, promptName, dimensions)));
  });
}

/** The checks about the reference, its cases, and prompt_name and dimensions. */
const isReferenceCheck = (c: ConformanceCheck) =>
  c.name === "embeddings match the reference" || c.name.startsWith("reference case") ||
  c.name.startsWith("rejects prompt_name") || c.name.startsWith("rejects dimensions") ||
  c.name.startsWith("null prompt_name");

async function referenceChecks(
  modelDir: string,
  p: Pipeline,
  prompts?: Record<string, string>,
): Promise<Map<string, ConformanceCheck>> {
  const server = pipelineServer(p, prompts);
  try {
    const checks = await runConformance({
      baseUrl: `http://127.0.0.1:${server.addr.port}`,
      modelDir,
      maxBatch: 2,
      maxBodyBytes: 1024 * 1024,
      busyLoadMs: 50,
      requestTimeoutMs: 10_000,
    });
    return new Map(checks.filter(isReferenceCheck).map((c) => [c.name, c]));
  } finally {
    await server.shutdown();
  }
}

function failed(checks: Map<string, ConformanceCheck>): string[] {
  return [...checks.values()].filter((c) => !c.ok).map((c) => c.name);
}

const QUERY_CASE = referenceCaseCheckName({ promptName: "query", dimensions: null });
const DOCUMENT_CASE = referenceCaseCheckName({ promptName: "document", dimensions: null });
const SMALLEST_CASE = referenceCaseCheckName({ promptName: null, dimensions: 4 });
const REJECT_PROMPT =
  'rejects prompt_name "summary" (the model\'s prompts are query, document): 422 Validation';
const REJECT_DIMENSIONS = [
  "rejects dimensions 9 (expected one of 4, 6, 8): 422 Validation",
  "rejects dimensions 5 (expected one of 4, 6, 8): 422 Validation",
];

Deno.test("runConformance() passes a server of the whole pipeline: reference, every case, and the 422s", async () => {
  const modelDir = writeModel();
  try {
    const checks = await referenceChecks(modelDir, RIGHT);
    // The reference, 4 cases, the null defaults, one unknown prompt_name and two unsupported sizes.
    equal(checks.size, 1 + 4 + 1 + 1 + 2, [...checks.keys()].join("\n"));
    deepStrictEqual(failed(checks), []);
    for (const name of [REJECT_PROMPT, ...REJECT_DIMENSIONS]) ok(checks.has(name), name);
    match(checks.get(SMALLEST_CASE)!.detail, /3 rows, worst cosine 1\.0000000 .* of 4 numbers, norm 1/);
  } finally {
    Deno.removeSync(modelDir, { recursive: true });
  }
});

for (
  const [mistake, flaw, cause] of [
    ["dense layers skipped", { dense: false }, /likely does not apply embbench_model\.json's dense/],
    ["causal attention", { attention: "causal" }, /likely uses causal attention/],
    ["last token pooled", { pooling: "last_token" }, /likely pools the last token/],
  ] as const
) {
  Deno.test(`runConformance() fails a server with its ${mistake}, naming that mistake`, async () => {
    const modelDir = writeModel();
    try {
      const checks = await referenceChecks(modelDir, { ...RIGHT, ...flaw });
      const reference = checks.get("embeddings match the reference")!;
      ok(!reference.ok);
      match(
        reference.detail,
        new RegExp(
          `^rows match '${mistake}' \\(3 of the 3 rows that miss the reference are within the limits of it`,
        ),
      );
      match(reference.detail, cause);
      match(reference.detail, /rows 0, 1, 2 outside cosine >= 0\.9999/);
    } finally {
      Deno.removeSync(modelDir, { recursive: true });
    }
  });
}

Deno.test("runConformance() fails a server that ignores dimensions, or does not normalise the cut rows", async () => {
  const modelDir = writeModel();
  try {
    const ignoring = await referenceChecks(modelDir, { ...RIGHT, dimensions: false });
    deepStrictEqual(
      failed(ignoring).sort(),
      [
        ...REJECT_DIMENSIONS,
        referenceCaseCheckName({ promptName: null, dimensions: 6 }),
        SMALLEST_CASE,
      ].sort(),
    );
    match(
      ignoring.get(SMALLEST_CASE)!.detail,
      /row 0 has 8 numbers: expected 4: the server ignores 'dimensions'/,
    );
    match(ignoring.get(REJECT_DIMENSIONS[0]!)!.detail, /status 200: expected 422/);

    const unnormalised = await referenceChecks(modelDir, { ...RIGHT, renormalize: false });
    const smallest = unnormalised.get(SMALLEST_CASE)!;
    ok(!smallest.ok);
    match(
      smallest.detail,
      /L2 norm 0\.\d+: expected 1: the server cuts the rows to 'dimensions' without normalising/,
    );
  } finally {
    Deno.removeSync(modelDir, { recursive: true });
  }
});

Deno.test("runConformance() fails a server that ignores prompt_name, naming the cause", async () => {
  const modelDir = writeModel();
  try {
    const checks = await referenceChecks(modelDir, { ...RIGHT, prompts: false });
    deepStrictEqual(failed(checks).sort(), [QUERY_CASE, REJECT_PROMPT].sort());
    const query = checks.get(QUERY_CASE)!;
    match(
      query.detail,
      /the rows equal those without prompt_name: the server ignores 'prompt_name' \(it must prepend "task: search result \| query: "/,
    );
    match(query.detail, /rows match 'query prompt not applied'/);
    // The document prompt is empty (as Qwen3's): ignoring it changes nothing.
    ok(checks.get(DOCUMENT_CASE)!.ok);
    match(checks.get(REJECT_PROMPT)!.detail, /status 200: expected 422/);
  } finally {
    Deno.removeSync(modelDir, { recursive: true });
  }
});

Deno.test("runConformance() verifies a folder converted before cases and mistakes: nothing to check, said so", async () => {
  const modelDir = writeModel({ old: true });
  try {
    const server = pipelineServer(RIGHT, {});
    let checks: ConformanceCheck[];
    try {
      checks = await runConformance({
        baseUrl: `http://127.0.0.1:${server.addr.port}`,
        modelDir,
        maxBatch: 8,
        maxBodyBytes: 1024 * 1024,
        busyLoadMs: 50,
      });
    } finally {
      await server.shutdown();
    }
    const byName = new Map(checks.map((c) => [c.name, c]));
    ok(!checks.some((c) => c.name.startsWith("reference case ")));
    const cases = byName.get(REFERENCE_CASES_CHECK)!;
    ok(cases.ok);
    match(cases.detail, /nothing to check: reference\/embeddings\.json has no cases/);
    // No prompts in embbench_model.json: any prompt_name is refused; one size: its neighbours are too.
    ok(byName.get('rejects prompt_name "query" (the model has no prompts): 422 Validation')!.ok);
    ok(byName.get("rejects dimensions 9 (expected one of 8): 422 Validation"));
    ok(byName.get("embeddings match the reference")!.ok);
  } finally {
    Deno.removeSync(modelDir, { recursive: true });
  }
});

Deno.test("runConformance() says an old reference has no mistakes to name when its rows do not match", async () => {
  const modelDir = writeModel({ old: true });
  try {
    const checks = await referenceChecks(modelDir, { ...RIGHT, dense: false }, {});
    const reference = checks.get("embeddings match the reference")!;
    ok(!reference.ok);
    match(reference.detail, /lists no known mistakes to name a cause/);
  } finally {
    Deno.removeSync(modelDir, { recursive: true });
  }
});
