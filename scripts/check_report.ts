/**
 * Checks a written report the way a reader meets it: opened from disk in headless Chromium with the
 * network blocked. Every chart must draw, nothing may be fetched, the console must stay clean, and
 * the report must cover every cell of its run. Used by scripts/test.sh on `embbench all --quick`'s
 * report; the screenshot is kept under results/test-artifacts/.
 *
 *   deno run --allow-all scripts/check_report.ts <run-dir>/report.html
 */
import { basename, dirname, join } from "node:path";
import { REPO_ROOT } from "../lib/context.ts";
import { exists } from "../lib/fs.ts";
import { readCells } from "../lib/results/results.ts";
import { checkPage } from "../report/browser.ts";

const path = Deno.args[0];
if (!path) {
  console.error("usage: check_report.ts <run-dir>/report.html");
  Deno.exit(2);
}
const problems: string[] = [];
const html = await Deno.readTextFile(path);
const runDir = dirname(path);
const cells = await readCells(runDir);
const expectedCanvases = [...html.matchAll(/<canvas id="([^"]+)"/g)].map((m) => m[1]!);
if (!html.includes(`<p>${cells.size} cells:`)) {
  problems.push(`the report does not cover the run's ${cells.size} cells`);
}
if (!(await exists(join(runDir, "report.md")))) problems.push("report.md is missing beside report.html");
const artifacts = join(REPO_ROOT, "results", "test-artifacts");
await Deno.mkdir(artifacts, { recursive: true });
const screenshot = join(artifacts, `${basename(runDir)}.png`);
const page = await checkPage(path, screenshot);
for (const e of page.consoleErrors) problems.push(`console: ${e}`);
for (const r of page.requests) problems.push(`the page tried to fetch ${r}`);
if (page.canvases.length === 0) problems.push("the page has no chart");
if (page.canvases.map((c) => c.id).join() !== expectedCanvases.join()) {
  problems.push(
    `canvases ${page.canvases.map((c) => c.id).join()} differ from the page's ${expectedCanvases.join()}`,
  );
}
for (const c of page.canvases.filter((c) => !c.drawn)) problems.push(`chart ${c.id} is blank`);
if (problems.length) {
  for (const p of problems) console.error(`check_report: ${p}`);
  Deno.exit(1);
}
console.error(
  `check_report: ${path}: ${page.canvases.length} charts drawn, ${cells.size} cells, no console error, no request; screenshot ${screenshot}`,
);
