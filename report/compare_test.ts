import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { spread } from "../lib/stats/noise.ts";
import { runCli } from "../lib/testing.ts";
import type { CellResult } from "../lib/results/results.ts";
import { loadRun } from "../tasks/report.ts";
import { checkPage, skipBrowserTests } from "./browser.ts";
import { buildComparison, changeText, compareCell } from "./compare.ts";
import { renderDocument } from "./render.ts";

const FIXTURE = fileURLToPath(new URL("./testdata/fixture-run", import.meta.url));
const fixture = await loadRun(FIXTURE);
const cells = [...fixture.cells.values()];
const A = { run: fixture.run, cells };
const ID = "tiny-xlmr__onnx-cpp__sweep__seq32__c2";

/** The fixture cell with its throughput figures (headline and every repetition) scaled by `f`. */
function scaledThroughput(c: CellResult, f: number): CellResult {
  const reps = c.repetitions!.map((r) => ({ ...r, textsPerSecond: r.textsPerSecond * f }));
  return {
    ...c,
    textsPerSecond: c.textsPerSecond! * f,
    repetitions: reps,
    noise: { ...c.noise, textsPerSecond: spread(reps.map((r) => r.textsPerSecond)) },
  };
}

Deno.test("compareCell() flags a change beyond the noise and leaves changes within it unflagged", () => {
  const a = fixture.cells.get(ID)!;
  const [texts, p50, p99, rss] = compareCell(a, scaledThroughput(a, 2)).changes;
  equal(texts!.changePercent!.toFixed(6), "100.000000");
  equal(texts!.beyondNoise, true);
  equal(texts!.improved, true);
  ok(changeText(texts!).endsWith("(+100.0 %) better"));
  // Unchanged figures: equal ranges overlap, so no flag.
  for (const ch of [p50!, p99!, rss!]) {
    equal(ch.changePercent, 0);
    equal(ch.beyondNoise, false);
    equal(ch.improved, undefined);
  }
  const slower = compareCell(a, scaledThroughput(a, 0.5)).changes[0]!;
  deepStrictEqual([slower.beyondNoise, slower.improved], [true, false]);
  ok(changeText(slower).endsWith("(-50.0 %) worse"));
  // A change smaller than the measured spread is within the noise.
  const range = a.noise!.textsPerSecond!;
  const small = compareCell(a, scaledThroughput(a, 1 + range.relativeRangePercent / 400)).changes[0]!;
  equal(small.beyondNoise, false);
});

Deno.test("buildComparison() pairs cells by id and lists status changes and cells only one run holds", () => {
  const failedNow = {
    ...fixture.cells.get(ID)!,
    status: "failed" as const,
    failure: "container exited with code 139",
  };
  const b = cells.filter((c) => !c.id.includes("__seq128")).map((c) => (c.id === ID ? failedNow : c));
  const doc = buildComparison(A, { run: { ...fixture.run, runId: "later" }, cells: b });
  const list = doc.blocks.find((x) => x.kind === "list")!;
  ok(list.kind === "list");
  equal(
    list.items[0],
    `30 cells in both runs (24 ok in both), 30 only in ${fixture.run.runId}, 0 only in later.`,
  );
  equal(list.items[2], "1 cell changed status (ok ↔ failed).");
  const table = doc.blocks.find((x) => x.kind === "table" && x.columns.includes("status"))!;
  ok(table.kind === "table");
  equal(table.rows.length, 30);
  ok(table.rows.some((r) => r[6] === "ok → failed"));
  const headings = doc.blocks.filter((x) => x.kind === "heading").map((x) => (x as { text: string }).text);
  ok(headings.includes("Cells whose status changed"));
  ok(headings.includes(`Cells only in ${fixture.run.runId}`));
});

Deno.test("embbench compare writes compare.html and compare.md, and refuses a folder that is not a run", async () => {
  const out = await Deno.makeTempDir({ prefix: "embbench-compare-" });
  try {
    const r = await runCli("compare", FIXTURE, FIXTURE, "--out", out);
    equal(r.code, 0, r.stderr);
    equal(r.stdout.trim(), join(out, "compare.html"));
    const md = await Deno.readTextFile(join(out, "compare.md"));
    ok(md.includes("0 changes beyond the noise: 0 better, 0 worse"));
    if (!(await skipBrowserTests())) {
      const page = await checkPage(join(out, "compare.html"));
      deepStrictEqual([page.consoleErrors, page.requests], [[], []]);
      deepStrictEqual(page.canvases.map((c) => [c.id, c.drawn]), [["tput-change", true]]);
    }

    const bad = await runCli("compare", FIXTURE, out);
    equal(bad.code, 2);
    ok(
      bad.stderr.includes(
        `${out} is not a run: expected a folder holding run.json`,
      ),
    );
    const one = await runCli("compare", FIXTURE);
    equal(one.code, 2);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("the compare page renders the same blocks as its markdown twin", async () => {
  const doc = buildComparison(A, A);
  const { html, markdown } = await renderDocument(doc);
  for (const b of doc.blocks) {
    if (b.kind === "heading") {
      ok(html.includes(`>${b.text}</h2>`));
      ok(markdown.includes(`## ${b.text}\n`));
    }
  }
});
