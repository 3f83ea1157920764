/**
 * The single binary: `deno task compile` builds embbench-bin, which must find its report assets
 * (template.html, Chart.js) inside itself and run `validate`, `doctor` and `report` like main.ts does.
 *
 * `deno compile` downloads Deno's runtime (denort) once, so this test runs only where that works:
 * - EMBBENCH_CAN_COMPILE=1 requires it (a compile failure is then a test failure);
 * - EMBBENCH_CAN_COMPILE=0 ignores it;
 * - unset: one probe compile of a one-line script (20 s at most) decides, and says why when it is ignored.
 */
import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FIXTURE = join(ROOT, "report", "testdata", "fixture-run");

async function run(cmd: string, args: string[], cwd = ROOT, timeoutMs = 600_000) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** Whether `deno compile` can produce a binary here, and if not, why. */
async function compileAvailable(): Promise<{ ok: boolean; why: string }> {
  const flag = Deno.env.get("EMBBENCH_CAN_COMPILE");
  if (flag === "1") return { ok: true, why: "EMBBENCH_CAN_COMPILE=1" };
  if (flag === "0") return { ok: false, why: "EMBBENCH_CAN_COMPILE=0" };
  const dir = await Deno.makeTempDir({ prefix: "embbench-probe-" });
  try {
    await Deno.writeTextFile(join(dir, "probe.ts"), "console.log('ok');\n");
    const out = await run(
      Deno.execPath(),
      ["compile", "--quiet", "--output", join(dir, "probe"), "probe.ts"],
      dir,
      20_000,
    );
    if (out.code === 0) return { ok: true, why: "a probe compile worked" };
    // The innermost cause (DNS, connect) is the useful line.
    const lines = out.stderr.split("Stack backtrace")[0]!.split("\n").map((l) => l.trim());
    const causes = lines.filter((l) => /^\d+: /.test(l));
    const line = causes.at(-1)?.replace(/^\d+: /, "") ?? lines.find((l) => /error/i.test(l)) ??
      `exit ${out.code}`;
    return { ok: false, why: `deno compile cannot get Deno's runtime (denort) here: ${line}` };
  } catch (e) {
    return { ok: false, why: `the probe compile did not finish: ${(e as Error).message}` };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `deno task compile`'s arguments (deno.json is the one place they are written), with another output. */
export async function compileArgs(output: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const words = String(config.tasks.compile).split(/\s+/).filter(Boolean);
  if (words[0] !== "deno" || words[1] !== "compile") {
    throw new Error(`Unexpected compile task: ${words.join(" ")}`);
  }
  const at = words.indexOf("--output");
  if (at < 0) throw new Error("The compile task names no --output");
  words[at + 1] = output;
  return words.slice(1);
}

Deno.test("compileArgs() takes deno.json's compile task and swaps its output", async () => {
  const args = await compileArgs("/tmp/x/embbench-bin");
  equal(args[0], "compile");
  ok(args.includes("--include") && args.includes("report/"), args.join(" "));
  equal(args[args.indexOf("--output") + 1], "/tmp/x/embbench-bin");
  equal(args.at(-1), "main.ts");
});

const can = await compileAvailable();
if (!can.ok) console.error(`compile_test: the single-binary test is ignored: ${can.why}`);

Deno.test({
  name: "embbench-bin runs validate, doctor and report with its own template and Chart.js",
  ignore: !can.ok,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "embbench-bin-" });
    try {
      const bin = join(dir, "embbench-bin");
      const built = await run(Deno.execPath(), await compileArgs(bin));
      equal(built.code, 0, built.stderr);

      // Run away from the checkout, so nothing is read from report/ on disk.
      const files = ["--models", join(ROOT, "models.yaml"), "--config", join(ROOT, "benchmark_config.yaml")];
      const validate = await run(bin, [...files, "validate"], dir);
      equal(validate.code, 0, validate.stderr);

      const doctor = await run(bin, ["doctor", "--json"], dir);
      ok(doctor.code === 0 || doctor.code === 1, doctor.stderr); // 1: a required tool is missing here
      ok(
        Array.isArray(JSON.parse(doctor.stdout)) || typeof JSON.parse(doctor.stdout) === "object",
        doctor.stdout,
      );

      const runDir = join(dir, "results", "fixture-run");
      await Deno.mkdir(join(runDir, "cells"), { recursive: true });
      await Deno.copyFile(join(FIXTURE, "run.json"), join(runDir, "run.json"));
      for await (const e of Deno.readDir(join(FIXTURE, "cells"))) {
        await Deno.copyFile(join(FIXTURE, "cells", e.name), join(runDir, "cells", e.name));
      }
      const report = await run(bin, ["report", runDir], dir);
      equal(report.code, 0, report.stderr);
      equal(report.stdout.trim(), join(runDir, "report.html"));
      const html = await Deno.readTextFile(join(runDir, "report.html"));
      ok(html.includes("Chart.js v4.6.1"), "Chart.js is not inlined in the report");
      ok(/^<!doctype html>/i.test(html.trimStart()), "report.html is not the template's page");
      ok(!/\{\{\s*[A-Z_]+\s*\}\}/.test(html), "the template was not filled");
      ok((await Deno.readTextFile(join(runDir, "report.md"))).startsWith("# embbench run "));

      // As the launcher runs it: from the checkout, with no path flags, the checkout's files are found.
      const defaults = await run(bin, ["validate"], ROOT);
      equal(
        defaults.code,
        0,
        `embbench-bin validate without flags (as ./embbench runs it):\n${defaults.stderr}`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
