/** `embbench report [run-dir]`: writes <run-dir>/report.html and report.md from run.json and the cell files. */
import { serverId } from "../lib/frameworks.ts";
import { join, resolve } from "node:path";
import type { GlobalOptions } from "../lib/context.ts";
import { UsageError } from "../lib/errors.ts";
import { log, output } from "../lib/log.ts";
import { readCellRequests } from "../lib/load/requests.ts";
import {
  type CellResult,
  latestRun,
  readCells,
  readRun,
  type RunInfo,
  runPaths,
} from "../lib/results/results.ts";
import { type CellSample, cellSample } from "../lib/stats/verdicts.ts";
import { renderReport } from "../report/render.ts";

/** A run folder read: run.json, the cells, and each ok cell's per-request sample for the tests. */
export interface LoadedRun {
  run: RunInfo;
  cells: Map<string, CellResult>;
  samples: Map<string, CellSample>;
}

/** Reads a run folder, or says plainly why it is not one. */
export async function loadRun(runDir: string): Promise<LoadedRun> {
  let run: RunInfo;
  try {
    run = await readRun(runDir);
  } catch (e) {
    throw new UsageError(
      e instanceof SyntaxError
        ? `Cannot read ${join(runDir, "run.json")}: ${e.message}`
        : e instanceof Deno.errors.NotFound
        ? `${runDir} holds no run.json: expected a folder made by 'embbench run'`
        : (e as Error).message,
    );
  }
  try {
    const cells = await readCells(runDir);
    // The report ranks servers, a framework in a serving mode: a batched cell is shown as its own
    // series ("onnx-cpp+batched", labelled "ONNX Runtime (C++), batched").
    for (const c of cells.values()) c.framework = serverId(c.framework, c.serving ?? "sequential");
    const samples = new Map<string, CellSample>();
    for (const c of cells.values()) {
      if (c.status !== "ok") continue;
      const requests = await readCellRequests(runPaths(runDir).logs, c.id);
      if (requests.length) samples.set(c.id, cellSample(requests, c.passes ?? []));
    }
    return { run, cells, samples };
  } catch (e) {
    throw new UsageError(`Cannot read the cells of ${runDir}: ${(e as Error).message}`);
  }
}

/** Renders a run folder's report (report.html and report.md) and returns the HTML's path. */
export async function writeReport(
  runDir: string,
  loaded?: LoadedRun,
): Promise<string> {
  const { run, cells, samples } = loaded ?? await loadRun(runDir);
  const { html, markdown } = await renderReport(run, [...cells.values()], samples);
  const path = join(runDir, "report.html");
  await Deno.writeTextFile(path, html);
  await Deno.writeTextFile(join(runDir, "report.md"), markdown);
  return path;
}

export async function run(opts: GlobalOptions, args: string[]): Promise<number> {
  const runDir = args[0] ? resolve(args[0]) : await latestRun(opts.results);
  if (!runDir) throw new UsageError(`No run in ${opts.results}: run 'embbench run' first`);
  const path = await writeReport(runDir);
  log.info(`report written: ${path} (and report.md beside it)`);
  output(path);
  return 0;
}
