/** `embbench compare <run-a> <run-b>`: run b against run a, as compare.html and compare.md. */
import { basename, join, resolve } from "node:path";
import type { GlobalOptions } from "../lib/context.ts";
import { UsageError } from "../lib/errors.ts";
import { exists } from "../lib/fs.ts";
import { log, output } from "../lib/log.ts";
import { buildComparison } from "../report/compare.ts";
import { renderDocument } from "../report/render.ts";
import { loadRun } from "./report.ts";

/** A run folder from a path or a run id under the results folder. */
async function runFolder(arg: string, results: string): Promise<string> {
  for (const candidate of [resolve(arg), join(results, arg)]) {
    if (await exists(join(candidate, "run.json"))) return candidate;
  }
  throw new UsageError(
    `${arg} is not a run: expected a folder holding run.json, or a run id under ${results}`,
  );
}

export async function run(opts: GlobalOptions, args: string[], flags: { out?: string }): Promise<number> {
  const [a, b] = await Promise.all(args.map((x) => runFolder(x, opts.results)));
  if (!a || !b) throw new UsageError("compare needs two runs: embbench compare <run-a> <run-b>");
  const [ra, rb] = await Promise.all([loadRun(a), loadRun(b)]);
  const doc = buildComparison(
    { run: ra.run, cells: [...ra.cells.values()], samples: ra.samples },
    { run: rb.run, cells: [...rb.cells.values()], samples: rb.samples },
  );
  const common = [...ra.cells.keys()].filter((id) => rb.cells.has(id)).length;
  if (common === 0) {
    throw new UsageError(`${basename(a)} and ${basename(b)} hold no cell in common: nothing to compare`);
  }
  const out = resolve(flags.out ?? join(opts.results, "compare", `${basename(a)}__vs__${basename(b)}`));
  await Deno.mkdir(out, { recursive: true });
  const { html, markdown } = await renderDocument(doc);
  const path = join(out, "compare.html");
  await Deno.writeTextFile(path, html);
  await Deno.writeTextFile(join(out, "compare.md"), markdown);
  log.info(`comparison written: ${path} (and compare.md beside it); ${doc.subtitle}`);
  output(path);
  return 0;
}
