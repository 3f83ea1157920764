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
// What every measured cell must carry (issue: every figure earned), and what the report must show.
const ok = [...cells.values()].filter((c) => c.status === "ok");
for (const c of ok) {
  const p50 = c.latencyMs?.percentiles.p50;
  if (!p50 || p50.value === undefined || p50.lower === undefined || p50.upper === undefined) {
    problems.push(`${c.id}: no pooled p50 with an interval`);
  }
  if (!c.counts || c.counts.successful !== c.latencyMs?.n) problems.push(`${c.id}: no sample count`);
  if (c.steady === undefined) problems.push(`${c.id}: no steady-state flag`);
  if (c.loadgen?.busyMax === undefined) problems.push(`${c.id}: no load-generator CPU figure`);
  if (c.connections?.openedMax === undefined) problems.push(`${c.id}: no connection count`);
}
if (!ok.some((c) => c.openLoop)) problems.push("the run has no open-loop cell");
if (!/<canvas id="rate-/.test(html)) problems.push("the report has no latency-versus-load chart");
const unsupported = ok.filter((c) => c.latencyMs?.percentiles.p999.value === undefined);
if (unsupported.length && !html.includes("needs ≥ 10,000 requests")) {
  problems.push("an unsupported p99.9 is not shown as the requests it needs");
}
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
  `check_report: ${path}: ${page.canvases.length} charts drawn, ${cells.size} cells (${
    ok.filter((c) => c.openLoop).length
  } open-loop), every ok cell with pooled percentiles, intervals, counts, steady flag, loadgen CPU and connections; no console error, no request; screenshot ${screenshot}`,
);
