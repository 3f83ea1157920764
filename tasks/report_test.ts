import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCli } from "../lib/testing.ts";

const FIXTURE = fileURLToPath(new URL("../report/testdata/fixture-run", import.meta.url));

Deno.test("embbench report writes report.html and report.md, and names what is wrong with a bad run folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "embbench-report-" });
  try {
    const run = join(dir, "run");
    await Deno.mkdir(join(run, "cells"), { recursive: true });
    await Deno.copyFile(join(FIXTURE, "run.json"), join(run, "run.json"));
    for await (const e of Deno.readDir(join(FIXTURE, "cells"))) {
      await Deno.copyFile(join(FIXTURE, "cells", e.name), join(run, "cells", e.name));
    }
    // The newest run under --results is the default.
    const ok_ = await runCli("--results", dir, "report");
    equal(ok_.code, 0, ok_.stderr);
    equal(ok_.stdout.trim(), join(run, "report.html"));
    ok((await Deno.readTextFile(join(run, "report.md"))).startsWith("# embbench run "));

    const broken = join(run, "cells", "tiny-xlmr__candle__sweep__seq32__c1.json");
    await Deno.writeTextFile(broken, "{ not json");
    const bad = await runCli("report", run);
    equal(bad.code, 2);
    ok(bad.stderr.includes(`Cannot read the cells of ${run}: ${broken} is not a cell file:`), bad.stderr);

    const empty = await runCli("report", dir);
    equal(empty.code, 2);
    ok(
      empty.stderr.includes(`${dir} holds no run.json: expected a folder made by 'embbench run'`),
      empty.stderr,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
