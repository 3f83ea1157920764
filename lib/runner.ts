/**
 * The benchmark run. Every cell is measured in `measurement.passes` passes; each pass takes the
 * frameworks in turn (round robin, starting one further each pass) and starts each framework's
 * container afresh, so drift over time and one container's luck are not blamed on a framework. A
 * cell is written the moment its last pass ends; every pass is kept in logs/ so an interrupted run
 * resumes where it stopped, and no container is left behind.
 */
import { join } from "node:path";
import { type BenchmarkConfig, type ModelsFile, parseMemory } from "./config/config.ts";
import { parseCpuset, readTopology, threadsFor } from "./config/cpuset.ts";
import { type Cell, planCells, RATE_SCENARIO } from "./config/plan.ts";
import type { ContainerEngine } from "./engine/docker.ts";
import { keepOffServer, restorePlacement } from "./engine/placement.ts";
import { memoryPeakBytes } from "./engine/cgroup.ts";
import { calibrateGemm, GEMM_FRAMEWORKS } from "./engine/gemm.ts";
import { residentMemory } from "./engine/memory.ts";
import type { Environment } from "./env.ts";
import { ConfigError, RunError } from "./errors.ts";
import { latestImage, serverId, type ServingMode } from "./frameworks.ts";
import { type MeasurementRules, measurePass, type PassResult } from "./load/pass.ts";
import { payloadFile, promptPayloadProblems, readCellRequests } from "./load/requests.ts";
import { log } from "./log.ts";
import {
  type CellResult,
  type PassRecord,
  readCells,
  readPassRecords,
  readRun,
  RESULTS_VERSION,
  type RunInfo,
  runPaths,
  writeJsonAtomic,
} from "./results/results.ts";
import { measureColdStarts } from "./server/coldstart.ts";
import { serverProbe } from "./server/probe.ts";
import { RUN_LABEL, type RunningServer, type ServerOptions, startServer } from "./server/server.ts";
import { medianPhases } from "./server/startup.ts";
import { cellFigures } from "./stats/cell.ts";
import { flopsPerSequence, shapeFromConfig, type TransformerShape } from "./stats/flops.ts";
import { cellResources } from "./stats/resources.ts";

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
  /** Extra environment for every server container (test servers take their behaviour from it). */
  serverEnv?: Record<string, string>;
}

export { payloadFile } from "./load/requests.ts";

/** Summary of a run, for the CLI. */
export interface RunSummary {
  runDir: string;
  ok: number;
  failed: number;
  skipped: number;
  interrupted: boolean;
}

/** "3m05s". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m${sec}s`;
}

/**
 * Seconds a pass of a cell takes at least and at most under the measurement rules (warm-up about
 * one window, then steady_windows to max_s of windows), for the plan's time estimate.
 */
export function passSeconds(m: Omit<MeasurementRules, "warmup_requests">): { min: number; max: number } {
  const overhead = 1;
  return { min: m.window_s * (m.steady_windows + 1) + overhead, max: m.window_s + m.max_s + overhead };
}

/**
 * Stops oha processes a killed run left behind (their output goes under `ohaDir`), and waits until
 * they are gone, so none loads the server or writes into the resumed run's files.
 */
export async function stopLeftoverLoad(ohaDir: string): Promise<number> {
  const find = async () => {
    try {
      const out = await new Deno.Command("pgrep", { args: ["-f", `oha .*${ohaDir}/`], stdout: "piped" })
        .output();
      return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map(Number)
        .filter((pid) => pid !== Deno.pid);
    } catch {
      return [];
    }
  };
  const found = await find();
  for (const pid of found) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (let i = 0; i < 50 && (await find()).length; i++) await new Promise((r) => setTimeout(r, 100));
  if (found.length) log.warn(`stopped ${found.length} load generator(s) a killed run had left running`);
  return found.length;
}

/** A block of cells measured in one container: one model on one framework in one serving mode. */
interface Block {
  model: string;
  framework: string;
  serving: ServingMode;
  cells: Cell[];
}

function blocksOf(cells: Cell[]): Block[] {
  const blocks = new Map<string, Block>();
  for (const c of cells) {
    const key = `${c.model}\0${serverId(c.framework, c.serving)}`;
    if (!blocks.has(key)) {
      blocks.set(key, { model: c.model, framework: c.framework, serving: c.serving, cells: [] });
    }
    blocks.get(key)!.cells.push(c);
  }
  return [...blocks.values()];
}

/** Each pass's order of blocks: per model, the frameworks rotated by one more place each pass. */
export function passOrder<T extends { model: string }>(blocks: T[], pass: number): T[] {
  const models = [...new Set(blocks.map((b) => b.model))];
  return models.flatMap((m) => {
    const own = blocks.filter((b) => b.model === m);
    const k = (pass - 1) % own.length;
    return [...own.slice(k), ...own.slice(0, k)];
  });
}

/** Runs (or resumes) the benchmark; returns when every cell is done or the signal aborts. */
export async function runBenchmark(o: RunOptions): Promise<RunSummary> {
  const promptName = o.config.input.prompt_name;
  if (promptName !== undefined) {
    const problems = await promptPayloadProblems(o.modelsDir, o.config.active_models, promptName);
    if (problems.length > 0) throw new ConfigError(problems);
  }
  const paths = runPaths(o.runDir);
  await Deno.mkdir(paths.cells, { recursive: true });
  await Deno.mkdir(paths.logs, { recursive: true });
  const done = await readCells(o.runDir);
  const passRecords = await readPassRecords(o.runDir);
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
  const online = readTopology().online;
  const serverCpus = parseCpuset(o.cpus.server);
  info.placement = await keepOffServer(serverCpus, online);
  if (info.placement.notMoved.length) {
    log.warn(`not moved off the server CPUs: ${info.placement.notMoved.join("; ")}`);
  }
  await writeJsonAtomic(paths.run, info);
  // A run killed without cleanup may have left containers, and load generators still writing into
  // this run's logs: stop both before starting anew.
  await stopLeftoverLoad(join(paths.logs, "oha"));
  for (const id of await o.engine.findByLabel(RUN_LABEL, o.runId)) await o.engine.remove(id);

  const threads = threadsFor(serverCpus, o.config.container.threads, readTopology());
  if (!info.gemmPeak && o.config.measurement.gemm_seconds > 0) {
    const images = [];
    for (const f of GEMM_FRAMEWORKS) {
      const image = latestImage(f);
      if (await o.engine.imageId(image)) images.push({ framework: f, image });
    }
    log.info(
      `measuring the server CPUs' fp32 GEMM peak with ${
        images.map((i) => i.framework).join(", ") || "no image"
      }`,
    );
    const peak = await calibrateGemm(o.engine, images, {
      cpus: o.cpus.server,
      threads,
      seconds: o.config.measurement.gemm_seconds,
      runId: o.runId,
      labels: { [RUN_LABEL]: o.runId },
    });
    if (peak) {
      info.gemmPeak = peak;
      log.info(
        `GEMM peak of CPUs ${o.cpus.server}: ${
          peak.gflops.toFixed(1)
        } GFLOP/s (${peak.library}, ${threads} threads)`,
      );
      await writeJsonAtomic(paths.run, info);
    }
  }
  const shapes = new Map<string, TransformerShape | undefined>();
  const shapeOf = (model: string) => {
    if (!shapes.has(model)) {
      let shape: TransformerShape | undefined;
      try {
        const parsed = shapeFromConfig(
          JSON.parse(Deno.readTextFileSync(join(o.modelsDir, model, "pytorch", "config.json"))),
        );
        if (typeof parsed !== "string") shape = parsed;
        else log.warn(`${model}: no FLOP count (${parsed})`);
      } catch (e) {
        log.warn(`${model}: no FLOP count (${(e as Error).message})`);
      }
      shapes.set(model, shape);
    }
    return shapes.get(model);
  };
  const cpuShare = serverCpus.length / online.length;

  const rules = o.config.measurement;
  const passes = rules.passes;
  const cells = planCells(o.config, o.models, o.frameworks);
  const todo = cells.filter((c) => !done.has(c.id));
  const units = todo.length * passes;
  let unitsDone = todo.reduce((a, c) => a + (passRecords.get(c.id)?.size ?? 0), 0);
  // Time left: this process's wall time per pass it measured (a failed pass takes none), container
  // starts and verify included, times the passes left.
  let measuredUnits = 0;
  const t0 = performance.now();
  const est = passSeconds(rules);
  log.info(
    `run ${o.runId}: ${cells.length} cells × ${passes} passes, ${done.size} cells already complete, ${todo.length} to go; ` +
      `estimated ${duration(units * est.min)}–${duration(units * est.max)} plus container starts; ` +
      `server CPUs ${o.cpus.server}, loadgen CPUs ${o.cpus.loadgen}`,
  );
  let ok = 0;
  let failed = 0;
  const loadgenCount = parseCpuset(o.cpus.loadgen).length;

  const progress = () => {
    const elapsed = (performance.now() - t0) / 1000;
    const left = measuredUnits > 0 ? (elapsed / measuredUnits) * (units - unitsDone) : undefined;
    return `[${unitsDone}/${units}] ${duration(elapsed)} elapsed${
      left !== undefined ? `, about ${duration(left)} left` : ""
    }`;
  };

  const finish = async (cell: Cell, result: Partial<CellResult>, started: string) => {
    const { sweep: _, ...planned } = cell;
    const full: CellResult = {
      version: RESULTS_VERSION,
      ...planned,
      status: "ok",
      startedAt: started,
      endedAt: new Date().toISOString(),
      ...result,
    };
    await writeJsonAtomic(paths.cell(cell.id), full);
    done.set(cell.id, full);
    if (full.status === "ok") ok++;
    else failed++;
    log.info(
      `${cell.id}: ${
        full.status === "ok"
          ? `${full.throughputRps?.toFixed(1)} req/s, p50 ${
            full.latencyMs?.percentiles.p50.value?.toFixed(2)
          } ms, p99 ${
            full.latencyMs?.percentiles.p99.value?.toFixed(2) ??
              `needs ≥ ${full.latencyMs?.percentiles.p99.needs} requests`
          }, ${full.counts?.successful} requests over ${full.counts?.windows} windows${
            full.steady ? "" : ", NOT steady"
          }${
            full.resources?.cpu
              ? `, server CPU ${(full.resources.cpu.secondsPerRequest * 1000).toFixed(2)} ms/request (${
                full.resources.cpu.utilizationPercent.toFixed(0)
              } % of its CPUs)`
              : ""
          }${full.loadgen?.overloaded ? ", load generator over 60 % busy" : ""}${
            full.connections?.keepAliveDropped ? ", keep-alive dropped" : ""
          }`
          : `FAILED: ${full.failure}`
      }`,
    );
  };

  const recordPass = async (rec: PassRecord) => {
    await writeJsonAtomic(paths.pass(rec.cellId, rec.pass), rec);
    if (!passRecords.has(rec.cellId)) passRecords.set(rec.cellId, new Map());
    passRecords.get(rec.cellId)!.set(rec.pass, rec);
    unitsDone++;
    if (rec.status === "ok") measuredUnits++;
  };

  /** Writes the cell file once every pass is in, or at once when a pass failed. */
  const maybeFinish = async (cell: Cell) => {
    const recs = [...(passRecords.get(cell.id)?.values() ?? [])].sort((a, b) => a.pass - b.pass);
    const failedPass = recs.find((r) => r.status === "failed");
    const started = recs[0]?.startedAt ?? new Date().toISOString();
    if (failedPass) {
      unitsDone += passes - recs.length;
      await finish(
        cell,
        { status: "failed", failure: `pass ${failedPass.pass}: ${failedPass.failure}` },
        started,
      );
      return;
    }
    if (recs.length < passes) return;
    const results = recs.map((r) => r.result!);
    const requests = await readCellRequests(paths.logs, cell.id);
    const figures = cellFigures(results, requests, {
      batchSize: cell.batchSize,
      concurrency: cell.concurrency,
      tolerateFailures: o.config.max_error_rate > 0,
      timeoutMs: rules.timeout_s * 1000,
    });
    const loads = recs.map((r) => r.loadTimeMs).filter((v): v is number => v !== undefined).sort((a, b) =>
      a - b
    );
    const shape = shapeOf(cell.model);
    let failure: string | undefined;
    if (figures.errorRate > o.config.max_error_rate) {
      failure = `error rate ${(figures.errorRate * 100).toFixed(2)} % is above max_error_rate ${
        (o.config.max_error_rate * 100).toFixed(2)
      } % (errors ${JSON.stringify(figures.counts.errors)}, ${figures.counts.failedStatus} non-2xx answers)`;
    } else if (figures.counts.successful === 0) failure = "no successful request was measured";
    await finish(cell, {
      status: failure ? "failed" : "ok",
      failure,
      ...figures,
      loadTimeMs: loads.length ? loads[Math.floor((loads.length - 1) / 2)] : undefined,
      startup: medianPhases(recs.map((r) => r.startup)),
      openLoop: recs[0]!.openLoop,
      passes: recs.map((r) => ({
        ...r.result!,
        loadTimeMs: r.loadTimeMs,
        memory: r.memory,
        startup: r.startup,
      })),
      resources: cellResources(results.flatMap((r) => r.windows), recs.map((r) => r.memory ?? {}), {
        batchSize: cell.batchSize,
        sequenceLength: cell.sequenceLength,
        cpusetCpus: serverCpus.length,
        throughputRps: figures.throughputRps,
        clientMeanMs: figures.latencyMs.mean,
        flopsPerSequence: shape ? flopsPerSequence(shape, cell.sequenceLength) : undefined,
        peakGflops: info.gemmPeak?.gflops,
        pricePerHour: o.config.cost.price_per_hour,
        cpuShare,
      }),
    }, started);
  };

  /** Records a failed pass for each cell (nothing measured) and writes the cells, which have failed. */
  const failPasses = async (failing: Cell[], pass: number, reason: string) => {
    for (const c of failing) {
      const now = new Date().toISOString();
      await recordPass({
        cellId: c.id,
        pass,
        status: "failed",
        failure: reason,
        startedAt: now,
        endedAt: now,
      });
      await maybeFinish(c);
    }
  };

  /** The rate of an open-loop cell: its fraction of the framework's best closed-loop batch-1 throughput. */
  const openLoopRate = (cell: Cell, pass: number) => {
    const first = passRecords.get(cell.id)?.get(1)?.openLoop;
    if (first) return first;
    const capacity = Math.max(
      0,
      ...cells.filter((c) =>
        c.model === cell.model && c.framework === cell.framework && c.serving === cell.serving &&
        c.sequenceLength === cell.sequenceLength &&
        c.rateFraction === undefined && c.batchSize === 1
      ).map((c) => passRecords.get(c.id)?.get(pass)?.result)
        .filter((r): r is PassResult => r !== undefined)
        .map((r) => {
          const span = r.windows.reduce((a, w) => a + w.durationS, 0);
          return span > 0 ? r.windows.reduce((a, w) => a + w.throughputRps * w.durationS, 0) / span : 0;
        }),
    );
    if (!(capacity > 0)) return undefined;
    return { fraction: cell.rateFraction!, capacityRps: capacity, offeredRps: capacity * cell.rateFraction! };
  };

  // A run killed after a cell's last pass was kept but before its cell file was written: write it now.
  for (const c of todo) {
    const recs = passRecords.get(c.id);
    if (recs && (recs.size >= passes || [...recs.values()].some((r) => r.status === "failed"))) {
      await maybeFinish(c);
    }
  }
  const blocks = blocksOf(todo);
  const gated = new Map<string, string | undefined>();
  try {
    for (let pass = 1; pass <= passes && !o.signal.aborted; pass++) {
      for (const block of passOrder(blocks, pass)) {
        if (o.signal.aborted) break;
        const pending = block.cells.filter((c) => !done.has(c.id) && !passRecords.get(c.id)?.has(pass));
        if (pending.length === 0) continue;
        const { model, framework, serving } = block;
        const name = serverId(framework, serving);
        const key = `${model}\0${framework}`;
        if (!gated.has(key)) {
          try {
            await o.gate?.(framework, model);
            gated.set(key, undefined);
          } catch (e) {
            gated.set(key, (e as Error).message);
          }
        }
        const gateFailure = gated.get(key);
        const failPending = (reason: string) => failPasses(pending, pass, reason);
        if (gateFailure !== undefined) {
          await failPending(gateFailure);
          continue;
        }
        const image = o.images[framework] ?? latestImage(framework);
        const serverOptions: ServerOptions = {
          framework,
          image,
          modelDir: join(o.modelsDir, model),
          cpuset: o.cpus.server,
          memoryBytes: parseMemory(o.config.container.memory_limit),
          maxBatch: o.config.container.max_batch,
          maxInflight: o.config.container.max_inflight,
          healthTimeoutS: o.config.container.health_timeout_s,
          runId: o.runId,
          threads,
          env: {
            SERVING: serving,
            MAX_BATCH_TOKENS: String(o.config.container.max_batch_tokens),
            MAX_WAIT_US: String(o.config.container.max_wait_us),
            ...o.serverEnv,
          },
        };
        if (rules.cold_starts > 0 && !info.coldStarts?.[model]?.[framework]) {
          // The true cold first request, before this framework serves any cell of the model.
          const probeCell = [...block.cells].sort((a, b) =>
            a.batchSize - b.batchSize || a.sequenceLength - b.sequenceLength
          )[0]!;
          try {
            const body = (await Deno.readTextFile(payloadFile(o.modelsDir, probeCell))).split("\n")[0]!;
            const cold = await measureColdStarts(
              o.engine,
              serverOptions,
              model,
              body,
              rules.cold_starts,
              o.signal,
            );
            if (cold.starts.length === rules.cold_starts) {
              ((info.coldStarts ??= {})[model] ??= {})[framework] = cold;
              await writeJsonAtomic(paths.run, info);
              log.info(
                `${framework} serving ${model}: cold first request ${
                  cold.median.firstRequestMs.toFixed(1)
                } ms ` +
                  `(then ${cold.median.secondRequestMs.toFixed(1)} ms), healthy after ${
                    cold.median.healthyMs.toFixed(0)
                  } ms ` +
                  `without warm-up (medians of ${cold.starts.length} starts)`,
              );
            }
          } catch (e) {
            if (o.signal.aborted) break;
            log.warn(`${framework} serving ${model}: cold starts not measured: ${(e as Error).message}`);
          }
        }
        let server: RunningServer | undefined;
        try {
          try {
            server = await startServer(o.engine, serverOptions);
            if (server.eviction.problem || server.eviction.residentBytes > 0) {
              info.pageCache = `not fully evicted before ${framework} started with ${model}: ${
                server.eviction.problem ??
                  `${
                    (server.eviction.residentBytes / 2 ** 20).toFixed(1)
                  } MiB of the model's files stayed in the page cache`
              }`;
            } else info.pageCache ??= "evicted";
          } catch (e) {
            if (o.signal.aborted) break;
            await failPending(`${framework} did not start: ${(e as Error).message}`);
            continue;
          }
          // The new container's shim started on any CPU: move it off the server's.
          await keepOffServer(serverCpus, online);
          info.frameworks[name] = { image, imageId: await o.engine.imageId(image), info: server.info };
          await writeJsonAtomic(paths.run, info);
          log.info(
            `pass ${pass}/${passes}: ${name} serving ${model}, healthy after ${
              server.loadTimeMs.toFixed(0)
            } ms`,
          );
          for (const cell of pending) {
            if (o.signal.aborted) break;
            const started = new Date().toISOString();
            const s: RunningServer = server;
            try {
              const bodiesFile = payloadFile(o.modelsDir, cell);
              try {
                await Deno.stat(bodiesFile);
              } catch {
                throw new RunError(`no request bodies ${bodiesFile}: run 'embbench convert ${model}'`);
              }
              let openLoop: PassRecord["openLoop"];
              if (cell.scenario === RATE_SCENARIO) {
                openLoop = openLoopRate(cell, pass);
                if (!openLoop) {
                  throw new RunError(
                    `no closed-loop batch-1 throughput of ${framework} at ${cell.sequenceLength} tokens to take the rate from`,
                  );
                }
              }
              let alive = true;
              const result: PassResult = await measurePass({
                cellId: cell.id,
                pass,
                url: `${s.baseUrl}/embed`,
                bodiesFile,
                concurrency: cell.concurrency,
                rateQps: openLoop?.offeredRps,
                loadgenCpus: o.cpus.loadgen,
                loadgenCpuCount: loadgenCount,
                minRequests: Math.ceil(cell.numRequests / passes),
                maxErrorRate: o.config.max_error_rate,
                rules: { ...rules, warmup_requests: o.config.input.warmup_requests },
                logsDir: paths.logs,
                probe: serverProbe(o.engine, s.containerId, s.baseUrl),
                afterWindow: async () => {
                  alive = (await o.engine.state(s.containerId)).running;
                  return alive && !o.signal.aborted;
                },
              }, o.signal);
              if (o.signal.aborted) break;
              if (!alive) {
                const st = await o.engine.state(s.containerId);
                throw new RunError(
                  `container exited with code ${st.exitCode}${
                    st.oomKilled ? " (OOM killed)" : ""
                  } during the cell`,
                );
              }
              await recordPass({
                cellId: cell.id,
                pass,
                status: "ok",
                startedAt: started,
                endedAt: new Date().toISOString(),
                result,
                loadTimeMs: s.loadTimeMs,
                startup: s.startup,
                memory: {
                  loadPeakBytes: s.loadPeakBytes,
                  peakBytes: memoryPeakBytes(s.containerId),
                  steady: await residentMemory(o.engine, s.containerId),
                },
                openLoop,
              });
              const last = result.windows.at(-1);
              log.info(
                `${progress()} pass ${pass} ${cell.id}: ${result.windows.length} windows of ${result.windowS} s, ` +
                  `${result.endedBy}${last ? `, last window ${last.throughputRps.toFixed(1)} req/s` : ""}`,
              );
            } catch (e) {
              if (o.signal.aborted) break;
              await recordPass({
                cellId: cell.id,
                pass,
                status: "failed",
                failure: (e as Error).message,
                startedAt: started,
                endedAt: new Date().toISOString(),
              });
              if (!(await o.engine.state(s.containerId)).running) {
                // The container is gone: the block's remaining cells fail in this pass.
                await failPasses(
                  pending.slice(pending.indexOf(cell) + 1),
                  pass,
                  `${framework} stopped during an earlier cell: ${(e as Error).message}`,
                );
                await maybeFinish(cell);
                break;
              }
            }
            await maybeFinish(cell);
          }
        } finally {
          if (server) await o.engine.remove(server.containerId);
        }
      }
    }
  } finally {
    await restorePlacement(online, serverCpus);
  }
  const interrupted = o.signal.aborted;
  if (interrupted) info.interrupted = "stopped by a signal; resume with --resume " + o.runDir;
  else info.endedAt = new Date().toISOString();
  await writeJsonAtomic(paths.run, info);
  for (const id of await o.engine.findByLabel(RUN_LABEL, o.runId)) await o.engine.remove(id);
  return { runDir: o.runDir, ok, failed, skipped: done.size - ok - failed, interrupted };
}
