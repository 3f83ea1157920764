/**
 * `embbench all`: convert → build → verify → run → report for the active models and frameworks.
 * Each stage skips what is already done and valid (conversion by hashes, images by the layer cache,
 * verify by image id and model manifest), and the report path is printed at the end.
 */
import { join } from "node:path";
import { applyQuick, loadConfig } from "../lib/config/config.ts";
import { type GlobalOptions, REPO_ROOT } from "../lib/context.ts";
import { readTopology } from "../lib/config/cpuset.ts";
import { RunError } from "../lib/errors.ts";
import { exists } from "../lib/fs.ts";
import { log, output } from "../lib/log.ts";
import { planCells } from "../lib/config/plan.ts";
import type { CellResult } from "../lib/results/results.ts";
import { duration, passSeconds } from "../lib/runner.ts";
import { buildAll } from "./build.ts";
import { convertModels } from "./convert.ts";
import { loadRun, writeReport } from "./report.ts";
import { type RunFlags, runWith } from "./run.ts";

/** The harness's stages, in order; each says what it did. */
interface Stage {
  name: string;
  run(): Promise<string>;
}

/** A plain-text table of a run's cells, for the terminal; an unsupported percentile shows "n/a". */
export function cellTable(cells: CellResult[]): string {
  const width = Math.max(10, ...cells.map((c) => c.id.length));
  const pct = (c: CellResult, k: "p50" | "p99") => {
    const v = c.latencyMs?.percentiles[k].value;
    return (v === undefined ? "n/a" : v.toFixed(2)).padStart(8);
  };
  const lines = [`${"cell".padEnd(width)}  status  req/s      p50 ms    p99 ms  requests  steady`];
  for (const c of cells) {
    lines.push(
      c.status === "ok" && c.latencyMs
        ? `${c.id.padEnd(width)}  ok      ${(c.throughputRps ?? 0).toFixed(1).padStart(8)}  ${
          pct(c, "p50")
        }  ${pct(c, "p99")}  ${String(c.counts?.successful ?? 0).padStart(8)}  ${c.steady ? "yes" : "no"}`
        : `${c.id.padEnd(width)}  FAILED  ${c.failure ?? ""}`,
    );
  }
  return lines.join("\n");
}

export async function run(opts: GlobalOptions, _args: string[], flags: RunFlags): Promise<number> {
  const loaded = await loadConfig(opts.models, opts.config, { topology: readTopology() });
  const config = opts.quick ? applyQuick(loaded.config) : loaded.config;
  const wanted = flags.framework ?? config.frameworks;
  const available: string[] = [];
  for (const f of wanted) {
    if (await exists(join(REPO_ROOT, "docker", f, "Dockerfile"))) available.push(f);
    else log.warn(`${f}: docker/${f}/Dockerfile does not exist yet, so it is left out of this run`);
  }
  const planned = planCells(config, loaded.models, available).length;
  const est = passSeconds(config.measurement);
  const passes = planned * config.measurement.passes;
  log.info(
    `plan: ${planned} cells × ${config.measurement.passes} passes on ${available.length} frameworks; measuring takes ` +
      `about ${duration(passes * est.min)} (every pass steady at once) to ${
        duration(passes * est.max)
      } (every pass to its time limit), plus conversion, image builds, verify and container starts`,
  );
  const buildFailures: string[] = [];
  let runDir = "";
  let failedCells = 0;
  const stages: Stage[] = [
    {
      name: "convert",
      async run() {
        await convertModels(opts, config.active_models, {});
        return `${config.active_models.join(", ")} converted`;
      },
    },
    {
      name: "build",
      async run() {
        for (const f of [...available]) {
          try {
            await buildAll([f], { logDir: join(opts.results, "logs") });
          } catch (e) {
            log.error((e as Error).message);
            buildFailures.push(f);
            available.splice(available.indexOf(f), 1);
          }
        }
        return `${available.length} images ready${
          buildFailures.length ? `, ${buildFailures.join(", ")} failed to build` : ""
        }`;
      },
    },
    {
      name: "verify + run",
      async run() {
        if (available.length === 0) throw new RunError("no framework image could be built: nothing to run");
        const summary = await runWith(opts, loaded, { ...flags, framework: available });
        runDir = summary.runDir;
        failedCells = summary.failed;
        if (summary.interrupted) {
          throw new RunError(`run interrupted; resume with: embbench run --resume ${runDir}`);
        }
        return `${summary.ok} cells ok, ${summary.failed} failed`;
      },
    },
    {
      name: "report",
      async run() {
        const loaded = await loadRun(runDir);
        log.plain(cellTable([...loaded.cells.values()].sort((a, b) => a.id.localeCompare(b.id))));
        return await writeReport(runDir, loaded);
      },
    },
  ];
  let last = "";
  for (const [i, stage] of stages.entries()) {
    log.info(`== stage ${i + 1}/${stages.length}: ${stage.name}`);
    last = await stage.run();
    log.info(`== ${stage.name}: ${last}`);
  }
  output(last);
  return failedCells > 0 || buildFailures.length > 0 ? 1 : 0;
}
