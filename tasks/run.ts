/** `embbench run`: benchmarks every active model × framework × scenario × sequence length with oha. */
import { basename, join, resolve } from "node:path";
import { applyQuick, closest, loadConfig, type LoadedConfig } from "../lib/config/config.ts";
import { type GlobalOptions, REPO_ROOT } from "../lib/context.ts";
import { readTopology, resolveCpus } from "../lib/config/cpuset.ts";
import { type ContainerEngine, DockerEngine } from "../lib/engine/docker.ts";
import { captureEnvironment } from "../lib/env.ts";
import { RunError, UsageError } from "../lib/errors.ts";
import { latestImage } from "../lib/frameworks.ts";
import { log } from "../lib/log.ts";
import { runBenchmark, type RunSummary } from "../lib/runner.ts";
import { newRunId, readRun } from "../lib/results/results.ts";
import { verifyGate } from "./verify.ts";

/** Flags of `run` (and of `all`, which passes them on). */
export interface RunFlags {
  resume?: string;
  framework?: string[];
  skipVerify?: boolean;
  strict?: boolean;
  /** framework=image overrides, e.g. to benchmark a custom build. */
  image?: string[];
  modelsDir?: string;
}

/** Parses --image framework=tag flags. */
export function parseImages(flags: string[] | undefined, frameworks: string[]): Record<string, string> {
  const images: Record<string, string> = {};
  for (const f of flags ?? []) {
    const m = /^([^=]+)=(.+)$/.exec(f);
    if (!m) throw new UsageError(`--image "${f}" is not framework=image`);
    if (!frameworks.includes(m[1]!)) {
      throw new UsageError(`--image "${f}": "${m[1]}" is not a configured framework`);
    }
    images[m[1]!] = m[2]!;
  }
  return images;
}

/** Runs or resumes a benchmark with the loaded configuration. */
export async function runWith(
  opts: GlobalOptions,
  loaded: LoadedConfig,
  flags: RunFlags,
  engine: ContainerEngine = new DockerEngine(),
): Promise<RunSummary> {
  await engine.serverVersion();
  const topology = readTopology();
  let config = opts.quick ? applyQuick(loaded.config) : loaded.config;
  let runDir: string;
  let runId: string;
  if (flags.resume) {
    runDir = resolve(flags.resume);
    let previous;
    try {
      previous = await readRun(runDir);
    } catch {
      throw new UsageError(
        `--resume ${flags.resume}: no run.json there, expected a folder made by 'embbench run'`,
      );
    }
    // The run's own config snapshot decides its cells, so a resumed run completes what it started.
    config = previous.config;
    runId = previous.runId;
  } else {
    runId = newRunId(new Date(), opts.quick);
    runDir = join(opts.results, runId);
  }
  const frameworks = flags.framework ?? config.frameworks;
  for (const f of frameworks) {
    if (!config.frameworks.includes(f)) {
      const s = closest(f, config.frameworks);
      throw new UsageError(`--framework "${f}" is not configured${s ? `: did you mean "${s}"?` : ""}`);
    }
  }
  const images = parseImages(flags.image, config.frameworks);
  for (const f of frameworks) {
    const image = images[f] ?? latestImage(f);
    if (!(await engine.imageId(image))) {
      throw new UsageError(`Image ${image} for ${f} does not exist: run 'embbench build ${f}'`);
    }
  }
  const cpus = resolveCpus(config.cpus, topology, Boolean(flags.strict));
  const ac = new AbortController();
  const onSignal = () => {
    log.warn("stopping: removing containers, keeping every finished cell");
    ac.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const modelsDir = flags.modelsDir ? resolve(flags.modelsDir) : join(REPO_ROOT, "models");
  try {
    return await runBenchmark({
      engine,
      config,
      models: loaded.models,
      runDir,
      runId,
      quick: opts.quick,
      frameworks,
      images,
      modelsDir,
      cpus,
      environment: await captureEnvironment(),
      signal: ac.signal,
      gate: flags.skipVerify ? undefined : (framework, model) =>
        verifyGate({
          engine,
          framework,
          model,
          image: images[framework],
          modelsDir,
          results: opts.results,
          config,
          serverCpus: cpus.server,
        }),
    });
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

export async function run(opts: GlobalOptions, _args: string[], flags: RunFlags): Promise<number> {
  const loaded = await loadConfig(opts.models, opts.config, { topology: readTopology() });
  const summary = await runWith(opts, loaded, flags);
  log.info(
    `run ${
      basename(summary.runDir)
    }: ${summary.ok} cells ok, ${summary.failed} failed, ${summary.skipped} complete before; results in ${summary.runDir}`,
  );
  if (summary.interrupted) {
    throw new RunError(`run interrupted; resume with: embbench run --resume ${summary.runDir}`);
  }
  return summary.failed > 0 ? 1 : 0;
}
