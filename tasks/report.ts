/** `embbench report [run-dir]`: writes <run-dir>/report.html and report.md from run.json and the cell files. */
import { join, resolve } from "node:path";
import type { GlobalOptions } from "../lib/context.ts";
import { UsageError } from "../lib/errors.ts";
import { log, output } from "../lib/log.ts";
import { latestRun, readCells, readRun, type RunInfo } from "../lib/results/results.ts";
import { renderReport } from "../report/render.ts";

/** Reads a run folder, or says plainly why it is not one. */
export async function loadRun(
  runDir: string,
): Promise<{ run: RunInfo; cells: Awaited<ReturnType<typeof readCells>> }> {
  let run: RunInfo;
  try {
    run = await readRun(runDir);
  } catch (e) {
    throw new UsageError(
      e instanceof SyntaxError
        ? `Cannot read ${join(runDir, "run.json")}: ${e.message}`
        : `${runDir} holds no run.json: expected a folder made by 'embbench run'`,
    );
  }
  try {
    return { run, cells: await readCells(runDir) };
  } catch (e) {
    throw new UsageError(`Cannot read the cells of ${runDir}: ${(e as Error).message}`);
  }
}

/** Renders a run folder's report (report.html and report.md) and returns the HTML's path. */
export async function writeReport(
  runDir: string,
  loaded?: Awaited<ReturnType<typeof loadRun>>,
): Promise<string> {
  const { run, cells } = loaded ?? await loadRun(runDir);
  const { html, markdown } = await renderReport(run, [...cells.values()]);
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
