import { deepStrictEqual, equal, throws } from "node:assert/strict";
import { fileURLToPath as fromFileUrl } from "node:url";
import { ConfigError } from "../errors.ts";
import { applyQuick, closest, loadConfig, parseYaml, topologyWarnings, validateSources } from "./config.ts";
import type { CpuTopology } from "./cpuset.ts";
import { runCli } from "../testing.ts";

const MODELS = `models:
  tiny:
    name: "Tiny"
    type: text_embedding
    architecture: xlm-roberta
    source: embedded
    max_seq_length: 128
    embedding_dim: 64
    multilingual: true
    pooling: cls
    normalize: true
    attention: bidirectional
    dense: []
    prompts: {}
    dimensions: [64]
`;

const CONFIG = `active_models: [tiny]
frameworks: [torch, candle]
scenarios:
  - name: single_query
    concurrency: 1
    num_requests: 10
    batch_size: 1
input:
  sequence_lengths: [32]
  warmup_requests: 5
cpus:
  server: "0"
  loadgen: "1"
container:
  memory_limit: "2g"
  max_batch: 64
  max_inflight: 1
  health_timeout_s: 60
max_error_rate: 0.01
measurement:
  window_s: 1
  steady_windows: 3
  steady_tolerance: 0.05
  max_s: 10
  passes: 2
  timeout_s: 30
`;

const HOST: CpuTopology = {
  online: [0, 1, 2, 3],
  coreOf: new Map([[0, "0,2"], [1, "1,3"], [2, "0,2"], [3, "1,3"]]),
};

function problems(models: string, config: string): string[] {
  try {
    validateSources(parseYaml("models.yaml", models), parseYaml("benchmark_config.yaml", config), {
      topology: HOST,
    });
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

Deno.test("validateSources() accepts a minimal valid pair", () => {
  deepStrictEqual(problems(MODELS, CONFIG), []);
});

Deno.test("validateSources() accepts input.prompt_name when every active model has that prompt", () => {
  const models = MODELS.replace("prompts: {}", 'prompts: { query: "q: ", document: "" }');
  const config = CONFIG.replace("warmup_requests: 5", "warmup_requests: 5\n  prompt_name: query");
  deepStrictEqual(problems(models, config), []);
  deepStrictEqual(problems(models, config.replace("prompt_name: query", "prompt_name: document")), []);
  // --quick with its own input: its prompt is checked against its models.
  const quick =
    `${CONFIG}quick:\n  input: { sequence_lengths: [32], warmup_requests: 1, prompt_name: passage }\n`;
  deepStrictEqual(problems(models, quick), [
    'Cannot load benchmark_config.yaml: quick.input.prompt_name is "passage", which model "tiny" does not have (models.yaml models.tiny.prompts: query, document) (line 28:69)',
  ]);
});

Deno.test("loadConfig() accepts the committed models.yaml and benchmark_config.yaml", async () => {
  const root = fromFileUrl(new URL("../..", import.meta.url));
  const loaded = await loadConfig(`${root}/models.yaml`, `${root}/benchmark_config.yaml`);
  equal(loaded.config.scenarios.length, 5);
  deepStrictEqual(loaded.config.concurrency_sweep?.levels, [1, 2, 4, 8, 16, 32, 64, 128]);
  for (
    const id of [
      "bge-m3",
      "embeddinggemma-300m",
      "qwen3-embedding-0.6b",
      "siglip",
      "clip",
      "tiny-xlmr",
      "minilm",
    ]
  ) {
    equal(typeof loaded.models.models[id], "object", id);
  }
  deepStrictEqual(applyQuick(loaded.config).active_models, ["tiny-xlmr"]);
});

/** Malformed configurations: each must be refused with exactly these messages. */
const CASES: { name: string; models?: [string, string]; config?: [string, string]; expect: string[] }[] = [
  {
    name: "a text model that leaves part of its pipeline unstated",
    models: ["    attention: bidirectional\n", ""],
    expect: [
      "Cannot load models.yaml: models.tiny.attention is required: a text model states its whole pipeline (line 3:5)",
    ],
  },
  {
    name: "Dense layers that do not chain to embedding_dim",
    models: [
      "dense: []",
      "dense:\n      - { in: 64, out: 256, bias: false, activation: identity }\n      - { in: 128, out: 32, bias: false, activation: identity }",
    ],
    expect: [
      "Cannot load models.yaml: models.tiny.dense[1].in is 128: expected 256, the previous layer's out (line 15:15)",
      "Cannot load models.yaml: models.tiny.dense[1].out is 32: expected embedding_dim (64) (line 15:25)",
    ],
  },
  {
    name: "Matryoshka sizes without the full size, or above it",
    models: ["dimensions: [64]", "dimensions: [32, 128]"],
    expect: [
      "Cannot load models.yaml: models.tiny.dimensions must include embedding_dim (64) (line 15:17)",
      "Cannot load models.yaml: models.tiny.dimensions[1] is 128: above embedding_dim (64) (line 15:22)",
    ],
  },
  {
    name: "an enum value outside its choices",
    models: ["pooling: cls", "pooling: max"],
    expect: [
      'Cannot load models.yaml: models.tiny.pooling is "max", expected one of cls, mean, last_token (line 10:14)',
    ],
  },
  {
    name: "a string where an integer belongs",
    models: ["embedding_dim: 64", 'embedding_dim: "sixty-four"'],
    expect: [
      'Cannot load models.yaml: models.tiny.embedding_dim is "sixty-four", expected a number (line 8:20)',
    ],
  },
  {
    name: "an unknown key with a suggestion",
    models: ["normalize: true", "normalise: true"],
    expect: [
      "Cannot load models.yaml: models.tiny.normalize is missing, expected true or false (line 3:5)",
      'Cannot load models.yaml: models.tiny.normalise is not a known field, did you mean "normalize"? (line 11:5)',
    ],
  },
  {
    name: "a missing required field",
    models: ["    multilingual: true\n", ""],
    expect: [
      "Cannot load models.yaml: models.tiny.multilingual is missing, expected true or false (line 3:5)",
    ],
  },
  {
    name: "a huggingface model without its id",
    models: ["source: embedded", "source: huggingface"],
    expect: [
      "Cannot load models.yaml: models.tiny.huggingface_id is required when source is huggingface (line 3:5)",
    ],
  },
  {
    name: "a YAML syntax error",
    config: ["frameworks: [torch, candle]", "frameworks: [torch, candle"],
    expect: [
      "Cannot load benchmark_config.yaml: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ] (line 3:1)",
    ],
  },
  {
    name: "a duplicate key",
    config: ["max_error_rate: 0.01", "max_error_rate: 0.01\nmax_error_rate: 0.02"],
    expect: ["Cannot load benchmark_config.yaml: YAML syntax error: Map keys must be unique (line 20:1)"],
  },
  {
    name: "an unknown active model",
    config: ["active_models: [tiny]", "active_models: [tiyn]"],
    expect: [
      'Cannot load benchmark_config.yaml: active_models[0] is "tiyn", which models.yaml does not define: did you mean "tiny"? (line 1:17)',
    ],
  },
  {
    name: "an unknown framework",
    config: ["frameworks: [torch, candle]", "frameworks: [torch, tensorflow]"],
    expect: [
      'Cannot load benchmark_config.yaml: frameworks[1] is "tensorflow", expected one of torch, onnxruntime, onnx-cpp, ort-rust, candle, openvino (line 2:21)',
    ],
  },
  {
    name: "a negative request count",
    config: ["num_requests: 10", "num_requests: -10"],
    expect: [
      "Cannot load benchmark_config.yaml: scenarios[0].num_requests is -10, expected a number > 0 (line 6:19)",
    ],
  },
  {
    name: "a fractional concurrency",
    config: ["concurrency: 1", "concurrency: 1.5"],
    expect: [
      "Cannot load benchmark_config.yaml: scenarios[0].concurrency is 1.5, expected an integer (line 5:18)",
    ],
  },
  {
    name: "a malformed cpuset",
    config: ['server: "0"', 'server: "0-"'],
    expect: [
      'Cannot load benchmark_config.yaml: cpus.server is "0-": "0-" is not a CPU number or range, expected forms such as "3" or "0-3" (line 12:11)',
    ],
  },
  {
    name: "a cpuset naming CPUs the host lacks",
    config: ['loadgen: "1"', 'loadgen: "1,7-8"'],
    expect: [
      'Cannot load benchmark_config.yaml: cpus.loadgen is "1,7-8", but CPU 7, 8 does not exist on this host (online: 0,1,2,3) (line 13:12)',
    ],
  },
  {
    name: "overlapping server and loadgen cpusets",
    config: ['loadgen: "1"', 'loadgen: "0-1"'],
    expect: [
      'Cannot load benchmark_config.yaml: cpus.loadgen is "0-1", which overlaps cpus.server "0" on CPU 0, expected disjoint sets (line 13:12)',
    ],
  },
  {
    name: "an empty list",
    config: ["sequence_lengths: [32]", "sequence_lengths: []"],
    expect: [
      "Cannot load benchmark_config.yaml: input.sequence_lengths is an empty list, expected at least 1 item(s) (line 9:21)",
    ],
  },
  {
    name: "a prompt_name the active model does not have",
    config: ["warmup_requests: 5", "warmup_requests: 5\n  prompt_name: query"],
    expect: [
      'Cannot load benchmark_config.yaml: input.prompt_name is "query", which model "tiny" does not have (models.yaml models.tiny.prompts: none) (line 11:16)',
    ],
  },
  {
    name: "a prompt_name that cannot be a payload file's suffix",
    models: ["prompts: {}", 'prompts: { "a b": "x " }'],
    config: ["warmup_requests: 5", 'warmup_requests: 5\n  prompt_name: "a b"'],
    expect: [
      'Cannot load benchmark_config.yaml: input.prompt_name is "a b", expected a different format (line 11:16)',
    ],
  },
  {
    name: "an error rate above one",
    config: ["max_error_rate: 0.01", "max_error_rate: 5"],
    expect: ["Cannot load benchmark_config.yaml: max_error_rate is 5, expected a number ≤ 1 (line 19:17)"],
  },
  {
    name: "a malformed memory limit",
    config: ['memory_limit: "2g"', 'memory_limit: "two gigs"'],
    expect: [
      'Cannot load benchmark_config.yaml: container.memory_limit is "two gigs", expected a size such as "16g", "512m" or "1073741824" (line 15:17)',
    ],
  },
  {
    name: "a duplicate scenario name",
    config: [
      "    batch_size: 1\ninput:",
      "    batch_size: 1\n  - name: single_query\n    concurrency: 2\n    num_requests: 10\n    batch_size: 1\ninput:",
    ],
    expect: [
      'Cannot load benchmark_config.yaml: scenarios[1].name is "single_query", which an earlier scenario uses (line 8:11)',
    ],
  },
  {
    name: "a pass too short for its steady-state windows",
    config: ["max_s: 10", "max_s: 2"],
    expect: [
      "Cannot load benchmark_config.yaml: measurement.max_s is 2, shorter than 3 steady windows of 1 s (line 24:10)",
    ],
  },
  {
    name: "a single pass (a cell spans two container starts at least)",
    config: ["passes: 2", "passes: 1"],
    expect: [
      "Cannot load benchmark_config.yaml: measurement.passes is 1, expected a number ≥ 2 (line 25:11)",
    ],
  },
  {
    name: "an open-loop fraction above one and a sequence length without a p99 target",
    config: [
      "  timeout_s: 30\n",
      '  timeout_s: 30\nopen_loop: { fractions: [0.5, 1.5], connections: 8, num_requests: 10, p99_target_ms: { "64": 10 } }\n',
    ],
    expect: [
      "Cannot load benchmark_config.yaml: open_loop.fractions[1] is 1.5, expected a number ≤ 1 (line 27:31)",
    ],
  },
  {
    name: "a measurement section missing",
    config: [
      "measurement:\n  window_s: 1\n  steady_windows: 3\n  steady_tolerance: 0.05\n  max_s: 10\n  passes: 2\n  timeout_s: 30\n",
      "",
    ],
    expect: ["Cannot load benchmark_config.yaml: measurement is missing, expected a mapping (line 1:1)"],
  },
  {
    name: "a mapping where a list belongs",
    config: ["active_models: [tiny]", "active_models: {tiny: true}"],
    expect: ["Cannot load benchmark_config.yaml: active_models is a mapping, expected a list (line 1:16)"],
  },
  {
    name: "several errors in one file, all reported",
    config: ["concurrency: 1", "concurrency: 0\n    think_time: 3"],
    expect: [
      "Cannot load benchmark_config.yaml: scenarios[0].concurrency is 0, expected a number > 0 (line 5:18)",
      "Cannot load benchmark_config.yaml: scenarios[0].think_time is not a known field, expected one of name, concurrency, num_requests, batch_size (line 6:5)",
    ],
  },
];

for (const c of CASES) {
  Deno.test(`validateSources() refuses ${c.name}`, () => {
    const models = c.models ? replaceOnce(MODELS, ...c.models) : MODELS;
    const config = c.config ? replaceOnce(CONFIG, ...c.config) : CONFIG;
    deepStrictEqual(problems(models, config), c.expect);
  });
}

function replaceOnce(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`fixture lacks ${JSON.stringify(from)}`);
  return text.replace(from, to);
}

Deno.test("the CLI exits 2 and prints every message for each malformed configuration", async () => {
  const dir = await Deno.makeTempDir();
  const results = await Promise.all(CASES.map(async (c, i) => {
    const models = `${dir}/models${i}.yaml`;
    const config = `${dir}/config${i}.yaml`;
    await Deno.writeTextFile(models, c.models ? replaceOnce(MODELS, ...c.models) : MODELS);
    await Deno.writeTextFile(config, c.config ? replaceOnce(CONFIG, ...c.config) : CONFIG);
    return await runCli("validate", "--models", models, "--config", config);
  }));
  CASES.forEach((c, i) => {
    const r = results[i]!;
    equal(r.code, 2, `${c.name}: ${r.stderr}`);
    // The CLI names files as given; the host-dependent cpuset case may differ on small hosts.
    if (c.name.includes("host lacks")) return;
    const expected = c.expect.map((m) =>
      "error: " + m.replace("models.yaml:", `${dir}/models${i}.yaml:`)
        .replace("benchmark_config.yaml:", `${dir}/config${i}.yaml:`)
    );
    deepStrictEqual(r.stderr.trim().split("\n"), expected, c.name);
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("topologyWarnings() flags server and loadgen on hyperthread siblings", () => {
  const { config } = validateSources(
    parseYaml("models.yaml", MODELS),
    parseYaml("benchmark_config.yaml", CONFIG.replace('loadgen: "1"', 'loadgen: "2"')),
    { topology: HOST },
  );
  deepStrictEqual(topologyWarnings(config, HOST), [
    "cpus.server and cpus.loadgen share physical core(s) {0,2} (hyperthread siblings): the load generator steals cycles from the server",
  ]);
  throws(() => parseYaml("x.yaml", "a: [1"), ConfigError);
});

Deno.test("closest() suggests near names only", () => {
  equal(closest("valdate", ["validate", "verify"]), "validate");
  equal(closest("zzzzzz", ["validate", "verify"]), undefined);
});
