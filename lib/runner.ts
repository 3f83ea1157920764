/**
 * The benchmark run: every cell of the plan, one framework at a time on the same server cpuset, a
 * framework's container kept up across its cells, each cell written the moment it ends. Failed cells
 * are recorded with their reason and the run moves on; an interrupted run keeps every finished cell
 * and leaves no container behind.
 */
import { join } from "node:path";
import { type BenchmarkConfig, type ModelsFile, parseMemory } from "./config/config.ts";
import type { ContainerEngine, ContainerState } from "./engine/docker.ts";
import type { Environment } from "./env.ts";
import { latestImage } from "./frameworks.ts";
import { RunError } from "./errors.ts";
import { log } from "./log.ts";
import { cellNoise, combineOha, combineResources, type Repetition, splitRequests } from "./stats/noise.ts";
import { type OhaSummary, runOha } from "./load/oha.ts";
import { type Cell, planCells } from "./config/plan.ts";
import {
  type CellResult,
  readCells,
  readRun,
  RESULTS_VERSION,
  type RunInfo,
  runPaths,
  writeJsonAtomic,
} from "./results/results.ts";
import { RUN_LABEL, type RunningServer, startServer, timedEmbed, warmup } from "./server/server.ts";
import { sampleStats } from "./engine/sampler.ts";

/** Everything a run needs; the engine is injectable so tests can pass a fake. */
export interface RunOptions {
  engine: ContainerEngine;
  config: BenchmarkConfig;
  models: ModelsFile;
  runDir: string;
  runId: string;
  quick: boolean;
  frameworks: string[];
  /** Image per framework (default embbench/<framework>:latest). */
  images: Record<string, string>;
  /** Folder holding models/<model>/ from convert. */
  modelsDir: string;
  cpus: { server: string; loadgen: string };
  environment: Environment;
  signal: AbortSignal;
  /** Called before a framework is benchmarked with a model; throwing skips it (its cells fail with the reason). */
  gate?: (framework: string, model: string) => Promise<void>;
}

/** The request body file for a cell: written by convert's payload generator. */
export function payloadFile(
  modelsDir: string,
  cell: Pick<Cell, "model" | "sequenceLength" | "batchSize">,
): string {
  return join(modelsDir, cell.model, "payloads", `seq${cell.sequenceLength}_b${cell.batchSize}.json`);
}

/** Summary of a run, for the CLI. */
export interface RunSummary {
  runDir: string;
  ok: number;
  failed: number;
  skipped: number;
  interrupted: boolean;
}

/** Runs (or resumes) the benchmark; returns when every cell is done or the signal aborts. */
export async function runBenchmark(o: RunOptions): Promise<RunSummary> {
  const paths = runPaths(o.runDir);
  await Deno.mkdir(paths.cells, { recursive: true });
  await Deno.mkdir(paths.logs, { recursive: true });
  const done = await readCells(o.runDir);
  let info: RunInfo;
  try {
    info = await readRun(o.runDir);
    delete info.interrupted;
    delete info.endedAt;
  } catch {
    info = {
      version: RESULTS_VERSION,
      runId: o.runId,
      quick: o.quick,
      config: o.config,
      models: Object.fromEntries(o.config.active_models.map((m) => [m, o.models.models[m]!])),
      cpus: o.cpus,
      environment: o.environment,
      frameworks: {},
      startedAt: new Date().toISOString(),
    };
  }
  info.verifyGate = (info.verifyGate ?? true) && o.gate !== undefined;
  await writeJsonAtomic(paths.run, info);
  // A run killed without cleanup may have left containers: remove them before starting anew.
  for (const id of await o.engine.findByLabel(RUN_LABEL, o.runId)) await o.engine.remove(id);

  const cells = planCells(o.config, o.models, o.frameworks);
  const todo = cells.filter((c) => !done.has(c.id));
  log.info(
    `run ${o.runId}: ${cells.length} cells, ${done.size} already complete, ${todo.length} to go; server CPUs ${o.cpus.server}, loadgen CPUs ${o.cpus.loadgen}`,
  );
  let ok = 0;
  let failed = 0;
  const groups = new Map<string, Cell[]>();
  for (const c of todo) {
    const key = `${c.model}\0${c.framework}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  let index = done.size;
  for (const [key, group] of groups) {
    if (o.signal.aborted) break;
    const [model, framework] = key.split("\0") as [string, string];
    const image = o.images[framework] ?? latestImage(framework);
    const record = async (cell: Cell, partial: Partial<CellResult>, started: Date) => {
      const { sweep: _, ...planned } = cell;
      const result: CellResult = {
        version: RESULTS_VERSION,
        ...planned,
        status: "ok",
        startedAt: started.toISOString(),
        endedAt: new Date().toISOString(),
        ...partial,
      };
      await writeJsonAtomic(paths.cell(cell.id), result);
      index++;
      if (result.status === "ok") ok++;
      else failed++;
      const o_ = result.oha;
      log.info(
        `[${index}/${cells.length}] ${cell.id}: ${
          result.status === "ok" && o_
            ? `${o_.throughputRps.toFixed(1)} req/s, p50 ${o_.latencyMs.p50.toFixed(2)} ms, p99 ${
              o_.latencyMs.p99.toFixed(2)
            } ms, CPU ${result.resources?.cpuPercentMean.toFixed(0) ?? "?"} %${
              result.noise?.throughputRps && result.noise.throughputRps.n > 1
                ? `; req/s range ${
                  result.noise.throughputRps.relativeRangePercent.toFixed(1)
                } % over ${result.noise.throughputRps.n} repetitions`
                : ""
            }`
            : `FAILED: ${result.failure}`
        }`,
      );
    };
    const failAll = async (cellsLeft: Cell[], reason: string) => {
      for (const c of cellsLeft) await record(c, { status: "failed", failure: reason }, new Date());
    };

    try {
      await o.gate?.(framework, model);
    } catch (e) {
      await failAll(group, (e as Error).message);
      continue;
    }
    let server: RunningServer | undefined;
    let firstRequestMs: number | undefined;
    const warmed = new Set<string>();
    const start = async () => {
      server = await startServer(o.engine, {
        framework,
        image,
        modelDir: join(o.modelsDir, model),
        cpuset: o.cpus.server,
        memoryBytes: parseMemory(o.config.container.memory_limit),
        maxBatch: o.config.container.max_batch,
        maxInflight: o.config.container.max_inflight,
        healthTimeoutS: o.config.container.health_timeout_s,
        runId: o.runId,
      });
      firstRequestMs = undefined;
      warmed.clear();
      info.frameworks[framework] = {
        image,
        imageId: await o.engine.imageId(image),
        info: server.info,
      };
      await writeJsonAtomic(paths.run, info);
      log.info(`${framework} serving ${model}: healthy after ${server.loadTimeMs.toFixed(0)} ms`);
    };
    try {
      for (const cell of group) {
        if (o.signal.aborted) break;
        const started = new Date();
        if (!server) {
          try {
            await start();
          } catch (e) {
            // A server that does not come up will not for the next cell either: fail them all now
            // rather than wait out the health timeout once per cell.
            if (o.signal.aborted) break;
            await failAll(
              group.slice(group.indexOf(cell)),
              `${framework} did not start: ${(e as Error).message}`,
            );
            break;
          }
        }
        try {
          const s = server!;
          const bodyFile = payloadFile(o.modelsDir, cell);
          let body: string;
          try {
            body = await Deno.readTextFile(bodyFile);
          } catch {
            throw new RunError(`no request body ${bodyFile}: run 'embbench convert ${model}'`);
          }
          if (firstRequestMs === undefined) firstRequestMs = await timedEmbed(s.baseUrl, body);
          if (!warmed.has(bodyFile)) {
            await warmup(s.baseUrl, body, o.config.input.warmup_requests);
            warmed.add(bodyFile);
          }
          const repetitions: Repetition[] = [];
          // The container's state after the latest repetition (there is at least one): a crash ends the cell early.
          let state!: ContainerState;
          const counts = splitRequests(cell.numRequests, o.config.repetitions);
          for (const [r, requests] of counts.entries()) {
            const sampler = await sampleStats(o.engine, s.containerId);
            let oha: OhaSummary;
            try {
              oha = await runOha(
                {
                  url: `${s.baseUrl}/embed`,
                  bodyFile,
                  concurrency: cell.concurrency,
                  requests,
                  timeoutS: 120,
                  cpus: o.cpus.loadgen,
                },
                join(paths.logs, `oha-${cell.id}${counts.length > 1 ? `.r${r + 1}` : ""}.json`),
                o.signal,
              );
            } catch (e) {
              await sampler.stop();
              throw e;
            }
            const resources = await sampler.stop();
            repetitions.push({
              requests,
              oha,
              resources,
              textsPerSecond: oha.throughputRps * cell.batchSize,
            });
            state = await o.engine.state(s.containerId);
            if (o.signal.aborted || !state.running) break;
          }
          const oha = combineOha(repetitions.map((r) => r.oha));
          const resources = combineResources(
            repetitions.map((r) => ({ resources: r.resources, durationS: r.oha.durationS })),
          );
          if (o.signal.aborted) break;
          let failure: string | undefined;
          if (!state.running) {
            failure = `container exited with code ${state.exitCode}${
              state.oomKilled ? " (OOM killed)" : ""
            } during the cell`;
          } else if (oha.errorRate > o.config.max_error_rate) {
            failure = `error rate ${(oha.errorRate * 100).toFixed(2)} % is above max_error_rate ${
              (o.config.max_error_rate * 100).toFixed(2)
            } % (status codes ${JSON.stringify(oha.statusCodes)}, errors ${JSON.stringify(oha.errors)})`;
          }
          await record(cell, {
            status: failure ? "failed" : "ok",
            failure,
            loadTimeMs: s.loadTimeMs,
            firstRequestMs,
            oha,
            resources,
            textsPerSecond: oha.throughputRps * cell.batchSize,
            repetitions,
            noise: cellNoise(repetitions),
          }, started);
          if (!state.running) {
            await o.engine.remove(s.containerId);
            server = undefined;
          }
        } catch (e) {
          if (o.signal.aborted) break;
          await record(cell, { status: "failed", failure: (e as Error).message }, started);
          if (server && !(await o.engine.state(server.containerId)).running) {
            await o.engine.remove(server.containerId);
            server = undefined;
          }
        }
      }
    } finally {
      if (server) await o.engine.remove(server.containerId);
    }
  }
  const interrupted = o.signal.aborted;
  if (interrupted) info.interrupted = "stopped by a signal; resume with --resume " + o.runDir;
  else info.endedAt = new Date().toISOString();
  await writeJsonAtomic(paths.run, info);
  for (const id of await o.engine.findByLabel(RUN_LABEL, o.runId)) await o.engine.remove(id);
  return { runDir: o.runDir, ok, failed, skipped: done.size, interrupted };
}
