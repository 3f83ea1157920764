import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCli } from "../lib/testing.ts";
import type { CellResult } from "../lib/results/results.ts";
import { loadRun } from "../tasks/report.ts";
import { checkPage, skipBrowserTests } from "./browser.ts";
import { buildComparison, changeText, compareCell, testChanges } from "./compare.ts";
import { renderDocument } from "./render.ts";

const FIXTURE = fileURLToPath(new URL("./testdata/fixture-run", import.meta.url));
const fixture = await loadRun(FIXTURE);
const cells = [...fixture.cells.values()];
const A = { run: fixture.run, cells, samples: fixture.samples };
const ID = "tiny-xlmr__onnx-cpp__sweep__seq32__c2";

/** The fixture cell and its sample with throughput scaled by `f` and latency by 1 / f. */
function scaled(c: CellResult, f: number) {
  const sample = fixture.samples.get(c.id)!;
  const percentiles = Object.fromEntries(
    Object.entries(c.latencyMs!.percentiles).map(([k, q]) => [k, { ...q, value: q.value && q.value / f }]),
  ) as NonNullable<CellResult["latencyMs"]>["percentiles"];
  return {
    cell: {
      ...c,
      textsPerSecond: c.textsPerSecond! * f,
      latencyMs: { ...c.latencyMs!, percentiles },
    },
    sample: { latencies: sample.latencies.map((v) => v / f), windowRps: sample.windowRps.map((v) => v * f) },
  };
}

Deno.test("testChanges() finds a doubled throughput and halved latency significant, and an unchanged cell not", () => {
  const a = fixture.cells.get(ID)!;
  const fast = scaled(a, 2);
  const changed = compareCell(a, fast.cell);
  const same = compareCell(a, a);
  const samplesB = new Map([[ID, fast.sample]]);
  testChanges([changed], fixture.samples, samplesB);
  const [texts, p50, , rss] = changed.changes;
  equal(texts!.changePercent!.toFixed(6), "100.000000");
  deepStrictEqual([texts!.beyondNoise, texts!.improved], [true, true]);
  ok(changeText(texts!).endsWith("(+100.0 %) better"));
  deepStrictEqual([p50!.beyondNoise, p50!.improved], [true, true]);
  equal(rss!.test, undefined, "memory is not tested");
  testChanges([same], fixture.samples, fixture.samples);
  for (const ch of same.changes.slice(0, 2)) {
    equal(ch.changePercent, 0);
    equal(ch.beyondNoise, false, `${ch.metric.id}: the same cell against itself`);
  }
  const slower = compareCell(a, scaled(a, 0.5).cell);
  testChanges([slower], fixture.samples, new Map([[ID, scaled(a, 0.5).sample]]));
  deepStrictEqual([slower.changes[0]!.beyondNoise, slower.changes[0]!.improved], [true, false]);
  ok(changeText(slower.changes[0]!).endsWith("(-50.0 %) worse"));
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
    `42 cells in both runs (34 ok in both), 42 only in ${fixture.run.runId}, 0 only in later.`,
  );
  equal(list.items[2], "1 cell changed status (ok ↔ failed).");
  const table = doc.blocks.find((x) => x.kind === "table" && x.columns.includes("status"))!;
  ok(table.kind === "table");
  equal(table.rows.length, 42);
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
    ok(/0 of \d+ tested changes are significant: 0 better, 0 worse/.test(md), "a run against itself");
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
