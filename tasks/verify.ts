/**
 * `embbench verify`: starts each built image with each converted model and checks the contract and
 * the embeddings against the PyTorch reference. `run` refuses frameworks that fail it.
 */
import { join } from "node:path";
import { applyQuick, type BenchmarkConfig, loadConfig, parseMemory } from "../lib/config/config.ts";
import {
  checkNoWarmup,
  type ConformanceCheck,
  NO_WARMUP_CHECK,
  runConformance,
  SUITE_VERSION,
} from "../lib/server/conformance.ts";
import { type GlobalOptions, REPO_ROOT } from "../lib/context.ts";
import { parseCpuset, readTopology, resolveCpus, threadsFor } from "../lib/config/cpuset.ts";
import { type ContainerEngine, DockerEngine } from "../lib/engine/docker.ts";
import { RunError, UsageError } from "../lib/errors.ts";
import { findFramework, latestImage } from "../lib/frameworks.ts";
import { sha256Hex } from "../lib/fs.ts";
import { log, output } from "../lib/log.ts";
import { writeJsonAtomic } from "../lib/results/results.ts";
import { type RunningServer, type ServerOptions, startServer } from "../lib/server/server.ts";

/** results/verify/<framework>__<model>.json. */
export interface VerifyRecord {
  framework: string;
  model: string;
  image: string;
  imageId: string;
  /** sha256 of the model's manifest.json: a re-converted model needs verifying again. */
  modelManifest: string;
  /** The serving modes checked (each in its own container). */
  serving?: string[];
  /** The conformance suite's SUITE_VERSION (absent: 1); an older record is verified again. */
  suite?: number;
  ok: boolean;
  checks: ConformanceCheck[];
  at: string;
}

async function sha256File(path: string): Promise<string> {
  return await sha256Hex(await Deno.readFile(path));
}

function recordPath(results: string, framework: string, model: string): string {
  return join(results, "verify", `${framework}__${model}.json`);
}

/** Verifies one framework image with one model and saves the record. */
export async function verifyOne(o: {
  engine: ContainerEngine;
  framework: string;
  model: string;
  image?: string;
  modelsDir: string;
  results: string;
  config: BenchmarkConfig;
  /** The server cpuset, resolved once by the caller: the same one `run` uses. */
  serverCpus: string;
}): Promise<VerifyRecord> {
  const image = o.image ?? latestImage(o.framework);
  const imageId = await o.engine.imageId(image);
  if (!imageId) throw new UsageError(`Image ${image} does not exist: run 'embbench build ${o.framework}'`);
  const modelDir = join(o.modelsDir, o.model);
  let modelManifest: string;
  try {
    modelManifest = await sha256File(join(modelDir, "manifest.json"));
  } catch {
    throw new UsageError(
      `Model ${o.model} is not converted (${modelDir}/manifest.json): run 'embbench convert ${o.model}'`,
    );
  }
  const checks: ConformanceCheck[] = [];
  // NUM_THREADS as `run` sets it: one per physical core of the cpuset, or per logical CPU.
  const threads = threadsFor(parseCpuset(o.serverCpus), o.config.container.threads, readTopology());
  const serverOptions: ServerOptions = {
    framework: o.framework,
    image,
    modelDir,
    cpuset: o.serverCpus,
    memoryBytes: parseMemory(o.config.container.memory_limit),
    maxBatch: o.config.container.max_batch,
    maxInflight: o.config.container.max_inflight,
    healthTimeoutS: o.config.container.health_timeout_s,
    runId: `verify-${o.framework}-${o.model}`,
    threads,
  };
  // Every configured serving mode is checked in its own container; the first start also shows the
  // 503 phase (LOAD_DELAY_MS). Checks of another mode than the first carry its name.
  for (const [i, serving] of o.config.serving.entries()) {
    const env: Record<string, string> = {
      SERVING: serving,
      MAX_BATCH_TOKENS: String(o.config.container.max_batch_tokens),
      MAX_WAIT_US: String(o.config.container.max_wait_us),
      ...(i === 0 ? { LOAD_DELAY_MS: "1500" } : {}),
    };
    const tag = (c: ConformanceCheck): ConformanceCheck =>
      i === 0 ? c : { ...c, name: `[${serving}] ${c.name}` };
    log.info(
      `verify ${o.framework} with ${o.model}: starting ${image} (NUM_THREADS=${threads}, SERVING=${serving})`,
    );
    const s = await startServer(o.engine, { ...serverOptions, env });
    try {
      if (i === 0) {
        checks.push({
          name: "health answers 503 while loading, then 200",
          ok: s.saw503,
          detail: s.saw503
            ? `healthy after ${s.loadTimeMs.toFixed(0)} ms`
            : "never saw 503 although LOAD_DELAY_MS=1500",
        });
      }
      checks.push(
        ...(await runConformance({
          baseUrl: s.baseUrl,
          modelDir,
          maxBatch: o.config.container.max_batch,
          maxBodyBytes: 2 * 1024 * 1024,
          threads,
          maxInflight: o.config.container.max_inflight,
          serving,
          onnxRuntime: findFramework(o.framework)?.runtime === "onnxruntime",
        })).map(tag),
      );
    } finally {
      await o.engine.remove(s.containerId);
    }
  }
  checks.push(await verifyNoWarmup(o.engine, serverOptions, modelDir));
  const record: VerifyRecord = {
    framework: o.framework,
    model: o.model,
    image,
    imageId,
    modelManifest,
    serving: [...o.config.serving],
    suite: SUITE_VERSION,
    ok: checks.every((c) => c.ok),
    checks,
    at: new Date().toISOString(),
  };
  await writeJsonAtomic(recordPath(o.results, o.framework, o.model), record);
  for (const c of checks) {
    log.plain(`  ${c.ok ? "ok  " : "FAIL"}  ${c.name}${c.detail ? `: ${c.detail}` : ""}`);
  }
  log.info(
    `verify ${o.framework} with ${o.model}: ${record.ok ? "passed" : "FAILED"} (${
      checks.filter((c) => c.ok).length
    }/${checks.length} checks)`,
  );
  return record;
}

/**
 * Starts the image a second time with WARMUP=0: /info must say no warm-up ran (`warmup` false,
 * `startup.warmed` null) and the first request the server ever serves must answer 200, as the cold
 * starts `run` measures need. A server that does not come up is a failed check.
 */
async function verifyNoWarmup(
  engine: ContainerEngine,
  options: ServerOptions,
  modelDir: string,
): Promise<ConformanceCheck> {
  let body: string;
  try {
    const ref = JSON.parse(await Deno.readTextFile(join(modelDir, "reference", "embeddings.json")));
    body = JSON.stringify({ inputs: [ref.texts[0] ?? "warm-up"] });
  } catch {
    body = JSON.stringify({ inputs: ["warm-up"] });
  }
  let started: RunningServer;
  try {
    started = await startServer(engine, {
      ...options,
      runId: `${options.runId}-nowarmup`,
      env: { WARMUP: "0" },
    });
  } catch (e) {
    return {
      name: NO_WARMUP_CHECK,
      ok: false,
      detail: `the server did not become healthy with WARMUP=0: ${e instanceof Error ? e.message : e}`,
    };
  }
  try {
    return await checkNoWarmup(started.baseUrl, body);
  } finally {
    await engine.remove(started.containerId);
  }
}

/**
 * The gate `run` applies: a framework must have passed verify with this image and this model;
 * verify runs now when there is no record for them.
 */
export async function verifyGate(o: Parameters<typeof verifyOne>[0]): Promise<void> {
  const image = o.image ?? latestImage(o.framework);
  let record: VerifyRecord | undefined;
  try {
    const saved = JSON.parse(
      await Deno.readTextFile(recordPath(o.results, o.framework, o.model)),
    ) as VerifyRecord;
    const current = await o.engine.imageId(image);
    const manifest = await sha256File(join(o.modelsDir, o.model, "manifest.json")).catch(() => "");
    const modes = o.config.serving.every((m) => saved.serving?.includes(m) ?? m === "sequential");
    const suite = (saved.suite ?? 1) === SUITE_VERSION;
    if (saved.imageId === current && saved.modelManifest === manifest && modes && suite) record = saved;
  } catch { /* no record yet */ }
  record ??= await verifyOne(o);
  if (!record.ok) {
    const failed = record.checks.filter((c) => !c.ok).map((c) => c.name).slice(0, 3).join("; ");
    throw new RunError(
      `${o.framework} failed verify with ${o.model} (${failed}): not benchmarked; fix it or pass --skip-verify`,
    );
  }
}

export async function run(
  opts: GlobalOptions,
  _args: string[],
  flags: { framework?: string[]; model?: string[]; json?: boolean },
): Promise<number> {
  const loaded = await loadConfig(opts.models, opts.config, { topology: readTopology() });
  const config = opts.quick ? applyQuick(loaded.config) : loaded.config;
  const frameworks = flags.framework ?? config.frameworks;
  const models = flags.model ?? config.active_models;
  const engine = new DockerEngine();
  await engine.serverVersion();
  // The same server cpuset `run` uses, so the figures verify records match the benchmark's setting.
  const { server: serverCpus } = resolveCpus(config.cpus, readTopology(), false);
  const records: VerifyRecord[] = [];
  for (const model of models) {
    if (!loaded.models.models[model]) {
      throw new UsageError(`--model "${model}" is not in ${loaded.modelsFile.name}`);
    }
    for (const framework of frameworks) {
      try {
        records.push(
          await verifyOne({
            engine,
            framework,
            model,
            modelsDir: join(REPO_ROOT, "models"),
            results: opts.results,
            config,
            serverCpus,
          }),
        );
      } catch (e) {
        if (e instanceof UsageError) throw e;
        const checks = [{
          name: "server starts and becomes healthy",
          ok: false,
          detail: (e as Error).message,
        }];
        records.push({
          framework,
          model,
          image: "",
          imageId: "",
          modelManifest: "",
          ok: false,
          checks,
          at: new Date().toISOString(),
        });
        log.error(`verify ${framework} with ${model}: ${(e as Error).message}`);
      }
    }
  }
  if (flags.json) output(JSON.stringify(records, null, 2));
  const failed = records.filter((r) => !r.ok);
  log.info(`verify: ${records.length - failed.length} passed, ${failed.length} failed`);
  return failed.length > 0 ? 1 : 0;
}
