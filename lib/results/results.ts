/**
 * The results layout and its types. Every field is documented here; this file is the schema.
 *
 *   results/<run-id>/run.json                      RunInfo: config snapshot, environment, times
 *   results/<run-id>/cells/<cell-id>.json          CellResult, written atomically when the cell ends
 *   results/<run-id>/logs/                         container logs, build logs
 */
import { dirname, join } from "node:path";
import type { BenchmarkConfig, ModelsFile } from "../config/config.ts";
import type { Environment } from "../env.ts";
import { exists } from "../fs.ts";
import type { Cell } from "../config/plan.ts";
import type { ServingMode } from "../frameworks.ts";
import type { PassResult } from "../load/pass.ts";
import type { CellFigures } from "../stats/cell.ts";
import type { CellResources, PassMemory } from "../stats/resources.ts";
import type { GemmPeak } from "../engine/gemm.ts";
import type { ColdStartSummary, StartupPhases } from "../server/startup.ts";

/**
 * Format version of run.json and the cell files. 3: CPU bracketed per window, memory from
 * smaps_rollup and the cgroup peak, start-up phases, phase counters (version 2 sampled docker
 * stats; version 1 took medians of per-repetition percentiles).
 */
export const RESULTS_VERSION = 3;

/** results/<run-id>/run.json. */
export interface RunInfo {
  version: typeof RESULTS_VERSION;
  /** Folder name: UTC start time, e.g. 2026-11-29T12-00-00Z (plus -quick for --quick runs). */
  runId: string;
  /** True when run with --quick. */
  quick: boolean;
  /** The effective benchmark config (after --quick) and the models it uses. */
  config: BenchmarkConfig;
  models: ModelsFile["models"];
  /** The cpusets actually used (after "auto" is resolved). */
  cpus: { server: string; loadgen: string };
  environment: Environment;
  /**
   * True when every framework had to pass `embbench verify` before it was timed; false when the run
   * (or a resume of it) was started with --skip-verify. Absent in runs made before it was recorded.
   */
  verifyGate?: boolean;
  /**
   * Where the harness's own processes and the container engine's ran: moved off the server cpuset
   * where the host allowed, and what could not be moved (with the reason).
   */
  placement?: { cpus: string; moved: string[]; notMoved: string[] };
  /** The server cpuset's fp32 GEMM peak, measured once per run (lib/engine/gemm.ts); absent when skipped or impossible. */
  gemmPeak?: GemmPeak;
  /**
   * Whether each container's model files were evicted from the page cache before it started (so
   * mapped weights are charged to the container that maps them): "evicted", or why not.
   */
  pageCache?: string;
  /** Fresh WARMUP=0 starts per model and framework: start-up phases and the true cold first request. */
  coldStarts?: Record<string, Record<string, ColdStartSummary>>;
  /** Image id and /info answer per framework, filled as each framework starts. */
  frameworks: Record<string, { image: string; imageId?: string; info?: Record<string, unknown> }>;
  /** ISO 8601 times. endedAt is absent while the run is in progress or was interrupted. */
  startedAt: string;
  endedAt?: string;
  /** Why the run stopped early (signal, error), if it did. */
  interrupted?: string;
}

/**
 * results/<run-id>/cells/<cell-id>.json: the cell as planned (lib/config/plan.ts), then what was
 * measured. Every request of every pass is in logs/requests/<cell-id>.p<pass>.csv.gz.
 */
export interface CellResult extends Omit<Cell, "sweep" | "serving">, Partial<CellFigures> {
  /** The serving mode; absent in cells written before modes existed, which were sequential. */
  serving?: ServingMode;
  version: typeof RESULTS_VERSION;
  status: "ok" | "failed";
  /** Why a failed cell failed: container crash, OOM kill, health timeout, error rate above threshold. */
  failure?: string;
  startedAt: string;
  endedAt: string;
  /** Container start to first healthy /health, ms: the median over the cell's passes (each a fresh container). */
  loadTimeMs?: number;
  /** The passes' start-up phases, medians (each pass a fresh container, warm-up included). */
  startup?: Omit<StartupPhases, "healthyMs"> & { healthyMs?: number };
  /** Open-loop cells: the closed-loop capacity the rate was taken from, and the offered rate. */
  openLoop?: { fraction: number; capacityRps: number; offeredRps: number };
  /** Each pass: its warm-up, its windows, whether it reached steady state. */
  passes?: (PassResult & { loadTimeMs?: number; memory?: PassMemory; startup?: StartupPhases })[];
  /** CPU, memory, phase times, efficiency and cost (lib/stats/resources.ts). */
  resources?: CellResources;
}

/** A pass of a cell kept until the cell's last pass: results/<run-id>/logs/passes/<cell>.p<k>.json. */
export interface PassRecord {
  cellId: string;
  pass: number;
  status: "ok" | "failed";
  failure?: string;
  startedAt: string;
  endedAt: string;
  result?: PassResult;
  loadTimeMs?: number;
  startup?: StartupPhases;
  memory?: PassMemory;
  openLoop?: { fraction: number; capacityRps: number; offeredRps: number };
}

/** Writes JSON atomically: a temporary file in the same folder, then a rename. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(tmp, JSON.stringify(value, null, 2) + "\n");
  await Deno.rename(tmp, path);
}

/** A run folder's paths. */
export function runPaths(runDir: string) {
  return {
    run: join(runDir, "run.json"),
    cells: join(runDir, "cells"),
    logs: join(runDir, "logs"),
    cell: (id: string) => join(runDir, "cells", `${id}.json`),
    pass: (id: string, pass: number) => join(runDir, "logs", "passes", `${id}.p${pass}.json`),
  };
}

/** A new run id from the current time. */
export function newRunId(now = new Date(), quick = false): string {
  return now.toISOString().replace(/\.\d+Z$/, "Z").replaceAll(":", "-") + (quick ? "-quick" : "");
}

/** Reads the completed cells of a run (ok or failed), keyed by cell id. Temporary files are ignored. */
export async function readCells(runDir: string): Promise<Map<string, CellResult>> {
  const cells = new Map<string, CellResult>();
  const dir = runPaths(runDir).cells;
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const file = join(dir, entry.name);
      let cell: CellResult;
      try {
        cell = JSON.parse(await Deno.readTextFile(file)) as CellResult;
      } catch (e) {
        throw new Error(`${file} is not a cell file: ${(e as Error).message}`);
      }
      cells.set(cell.id, cell);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return cells;
}

/** Reads run.json; a run made by an older format version is refused with a one-line reason. */
export async function readRun(runDir: string): Promise<RunInfo> {
  const run = JSON.parse(await Deno.readTextFile(runPaths(runDir).run)) as RunInfo;
  if (run.version !== RESULTS_VERSION) {
    throw new Error(
      `${runPaths(runDir).run} has results format ${run.version}, this embbench reads ${RESULTS_VERSION}: ` +
        `re-run the benchmark (see RESULTS_VERSION in lib/results/results.ts for what changed)`,
    );
  }
  return run;
}

/** Every pass record kept for a run (logs/passes/), keyed by cell id then pass. */
export async function readPassRecords(runDir: string): Promise<Map<string, Map<number, PassRecord>>> {
  const out = new Map<string, Map<number, PassRecord>>();
  const dir = join(runDir, "logs", "passes");
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || !e.name.endsWith(".json")) continue;
      const rec = JSON.parse(await Deno.readTextFile(join(dir, e.name))) as PassRecord;
      if (!out.has(rec.cellId)) out.set(rec.cellId, new Map());
      out.get(rec.cellId)!.set(rec.pass, rec);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/** The newest run folder under the results folder, if any. */
export async function latestRun(resultsDir: string): Promise<string | undefined> {
  const runs: string[] = [];
  try {
    for await (const e of Deno.readDir(resultsDir)) {
      if (e.isDirectory && (await exists(join(resultsDir, e.name, "run.json")))) runs.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  runs.sort();
  return runs.length ? join(resultsDir, runs[runs.length - 1]!) : undefined;
}
