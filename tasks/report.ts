/** `embbench report [run-dir]`: writes <run-dir>/report.html from run.json and the cell files. */
import { join, resolve } from "node:path";
import type { GlobalOptions } from "../lib/context.ts";
import { UsageError } from "../lib/errors.ts";
import { log, output } from "../lib/log.ts";
import { latestRun, readCells, readRun } from "../lib/results.ts";
import { renderReport } from "../report/render.ts";

/** Renders a run folder's report and returns its path. */
export async function writeReport(runDir: string): Promise<string> {
  let run;
  try {
    run = await readRun(runDir);
  } catch {
    throw new UsageError(`${runDir} holds no run.json: expected a folder made by 'embbench run'`);
  }
  const cells = [...(await readCells(runDir)).values()];
  const path = join(runDir, "report.html");
  await Deno.writeTextFile(path, await renderReport(run, cells));
  return path;
}

export async function run(opts: GlobalOptions, args: string[]): Promise<number> {
  const runDir = args[0] ? resolve(args[0]) : await latestRun(opts.results);
  if (!runDir) throw new UsageError(`No run in ${opts.results}: run 'embbench run' first`);
  const path = await writeReport(runDir);
  log.info(`report written: ${path}`);
  output(path);
  return 0;
}
