/**
 * `embbench convert [model...]`: runs the conversion pipeline (docker/convert, Python) for each model,
 * in the conversion image (the host needs only Docker) or natively in the project's .venv. The
 * Python side writes models/<model>/ atomically and fails on the parity gate.
 */
import { join } from "node:path";
import { applyQuick, closest, loadConfig } from "../lib/config/config.ts";
import { type GlobalOptions, REPO_ROOT } from "../lib/context.ts";
import { RunError, UsageError } from "../lib/errors.ts";
import { latestImage } from "../lib/frameworks.ts";
import { exists } from "../lib/fs.ts";
import { log } from "../lib/log.ts";
import { buildAll } from "./build.ts";
import { DockerEngine } from "../lib/engine/docker.ts";

const CONVERT_IMAGE = latestImage("convert");
const VENV_PYTHON = join(REPO_ROOT, ".venv", "bin", "python");

/** Where conversion runs. */
export type ConvertMode = "auto" | "docker" | "native";

/** The Hugging Face cache the conversion image mounts: HF_HOME, else ~/.cache/huggingface. */
function hfHome(): string {
  return Deno.env.get("HF_HOME") ?? join(Deno.env.get("HOME") ?? "/root", ".cache", "huggingface");
}

/** auto: native when the project's .venv exists (scripts/install.sh makes it), else the image. */
export async function chooseMode(mode: ConvertMode): Promise<"docker" | "native"> {
  if (mode !== "auto") return mode;
  return (await exists(VENV_PYTHON)) ? "native" : "docker";
}

/** The command that converts one model. */
export function convertCommand(o: {
  mode: "docker" | "native";
  model: string;
  modelsFile: string;
  modelsDir: string;
  fp16?: boolean;
  force?: boolean;
  /** Distinct request bodies per payloads/*.jsonl file (the converter's default, 64, when absent). */
  bodies?: number;
}): { cmd: string; args: string[]; env?: Record<string, string> } {
  const flags = [
    ...(o.fp16 ? ["--fp16"] : []),
    ...(o.force ? ["--force"] : []),
    ...(o.bodies !== undefined ? ["--bodies", String(o.bodies)] : []),
  ];
  if (o.mode === "native") {
    return {
      cmd: VENV_PYTHON,
      args: [
        "-m",
        "embbench_convert",
        "convert",
        "--model",
        o.model,
        "--models-file",
        o.modelsFile,
        "--out",
        join(o.modelsDir, o.model),
        "--corpus-dir",
        join(REPO_ROOT, "data", "corpus"),
        ...flags,
      ],
      env: { PYTHONPATH: join(REPO_ROOT, "docker", "convert") },
    };
  }
  const env = ["HF_TOKEN", "HF_ENDPOINT", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"]
    .filter((k) => Deno.env.get(k))
    .flatMap((k) => ["-e", k]);
  return {
    cmd: "docker",
    args: [
      "run",
      "--rm",
      "--network",
      "host",
      "--user",
      `${Deno.uid() ?? 0}:${Deno.gid() ?? 0}`,
      "-e",
      "HF_HOME=/hf",
      "-e",
      "HOME=/tmp",
      ...env,
      "-v",
      `${hfHome()}:/hf`,
      "-v",
      `${o.modelsFile}:/in/models.yaml:ro`,
      "-v",
      `${join(REPO_ROOT, "data", "corpus")}:/in/corpus:ro`,
      "-v",
      `${o.modelsDir}:/models`,
      CONVERT_IMAGE,
      "convert",
      "--model",
      o.model,
      "--models-file",
      "/in/models.yaml",
      "--out",
      `/models/${o.model}`,
      "--corpus-dir",
      "/in/corpus",
      ...flags,
    ],
  };
}

/** Converts the models; progress streams through to stderr, each model's JSON summary to stdout. */
export async function convertModels(
  opts: GlobalOptions,
  models: string[],
  flags: { mode?: ConvertMode; fp16?: boolean; force?: boolean; bodies?: number; modelsDir?: string },
): Promise<void> {
  const mode = await chooseMode(flags.mode ?? "auto");
  const modelsDir = flags.modelsDir ?? join(REPO_ROOT, "models");
  await Deno.mkdir(modelsDir, { recursive: true });
  if (mode === "docker") {
    await Deno.mkdir(hfHome(), { recursive: true });
    const engine = new DockerEngine();
    await engine.serverVersion();
    if (!(await engine.imageId(CONVERT_IMAGE))) {
      log.info(
        `the conversion image is missing: building it (PyTorch, transformers, ONNX Runtime, OpenVINO)`,
      );
      await buildAll(["convert"], { logDir: join(opts.results, "logs") });
    }
  } else if (!(await exists(VENV_PYTHON))) {
    throw new UsageError(`--mode native needs ${VENV_PYTHON}: run 'bash docker/convert/install.sh'`);
  }
  for (const model of models) {
    log.info(`convert ${model} (${mode})`);
    const c = convertCommand({
      mode,
      model,
      modelsFile: opts.models,
      modelsDir,
      fp16: flags.fp16,
      force: flags.force,
      bodies: flags.bodies,
    });
    const started = performance.now();
    const status = await new Deno.Command(c.cmd, {
      args: c.args,
      env: c.env,
      stdout: "inherit",
      stderr: "inherit",
    })
      .spawn().status;
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (status.code === 2) throw new UsageError(`convert ${model} refused the request (see above)`);
    if (!status.success) {
      throw new RunError(`convert ${model} failed after ${seconds} s (exit ${status.code}; see above)`);
    }
    log.info(`convert ${model}: done in ${seconds} s`);
  }
}

export async function run(
  opts: GlobalOptions,
  args: string[],
  flags: { mode?: ConvertMode; fp16?: boolean; force?: boolean; bodies?: string },
): Promise<number> {
  const bodies = flags.bodies === undefined ? undefined : Number(flags.bodies);
  if (bodies !== undefined && !(Number.isInteger(bodies) && bodies >= 1)) {
    throw new UsageError(`--bodies must be a positive integer, found "${flags.bodies}"`);
  }
  const loaded = await loadConfig(opts.models, opts.config);
  const known = Object.keys(loaded.models.models);
  for (const m of args) {
    if (!known.includes(m)) {
      const s = closest(m, known);
      throw new UsageError(
        `Unknown model "${m}": ${
          s ? `did you mean "${s}"?` : `expected one of ${known.join(", ")}`
        } (${loaded.modelsFile.name})`,
      );
    }
  }
  const config = opts.quick ? applyQuick(loaded.config) : loaded.config;
  await convertModels(opts, args.length ? args : config.active_models, { ...flags, bodies });
  return 0;
}
