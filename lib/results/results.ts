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
import type { CellNoise, Repetition } from "../stats/noise.ts";
import type { OhaSummary } from "../load/oha.ts";
import type { Cell } from "../config/plan.ts";

/** Format version of run.json and the cell files. */
export const RESULTS_VERSION = 1;

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
  /** Image id and /info answer per framework, filled as each framework starts. */
  frameworks: Record<string, { image: string; imageId?: string; info?: Record<string, unknown> }>;
  /** ISO 8601 times. endedAt is absent while the run is in progress or was interrupted. */
  startedAt: string;
  endedAt?: string;
  /** Why the run stopped early (signal, error), if it did. */
  interrupted?: string;
}

/** Resource use sampled from docker stats during a cell's measured load. */
export interface ResourceStats {
  /** Number of samples the figures come from. */
  samples: number;
  /** CPU use in percent of one CPU (200 = two CPUs busy): Δcpu / Δsystem × online CPUs × 100. */
  cpuPercentMean: number;
  cpuPercentPeak: number;
  /** Resident memory (cgroup v1 total_rss/rss, v2 anon), bytes. */
  rssBytesMean: number;
  rssBytesPeak: number;
  /** Memory usage minus inactive file cache, bytes (what `docker stats` shows). */
  workingSetBytesMean: number;
  workingSetBytesPeak: number;
}

/** results/<run-id>/cells/<cell-id>.json: the cell as planned (lib/config/plan.ts), then what was measured. */
export interface CellResult extends Omit<Cell, "sweep"> {
  version: typeof RESULTS_VERSION;
  status: "ok" | "failed";
  /** Why a failed cell failed: container crash, OOM kill, health timeout, error rate above threshold. */
  failure?: string;
  startedAt: string;
  endedAt: string;
  /** Container start to first healthy /health, ms (the framework's model load time). Same for every cell of a container. */
  loadTimeMs?: number;
  /** The first /embed after healthy (cold), ms. */
  firstRequestMs?: number;
  /** oha's measured load, parsed. */
  oha?: OhaSummary;
  resources?: ResourceStats;
  /** Texts per second: successful requests per second × batch size. */
  textsPerSecond?: number;
  /**
   * The cell's load as measured: `repetitions` back-to-back oha runs sharing num_requests. `oha` and
   * `resources` above combine them (lib/stats/noise.ts says how); `noise` is their spread per figure.
   */
  repetitions?: Repetition[];
  noise?: CellNoise;
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

/** Reads run.json. */
export async function readRun(runDir: string): Promise<RunInfo> {
  return JSON.parse(await Deno.readTextFile(runPaths(runDir).run)) as RunInfo;
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
