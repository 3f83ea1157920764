import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import { RunError, UsageError } from "../lib/errors.ts";
import { runCli } from "../lib/testing.ts";
import {
  chooseRun,
  copyCommand,
  type Exec,
  fetchOptions,
  fetchRun,
  listCommand,
  parseListing,
  shellQuote,
} from "./fetch_results.ts";

const opts = (args: string[], flags = {}) => fetchOptions(args, flags, "/home/me/embbench/results");

Deno.test("fetchOptions() checks the host, the run id and extra arguments", () => {
  const o = opts(["ubuntu@203.0.113.7"]);
  equal(o.target, "ubuntu@203.0.113.7");
  equal(o.runId, undefined);
  equal(o.remoteDir, "embbench");
  equal(opts(["bench-host", "2026-12-02T10-00-00Z"]).runId, "2026-12-02T10-00-00Z");
  equal(opts(["h"], { remoteDir: "/srv/embbench/" }).remoteDir, "/srv/embbench");
  throws(() => opts([]), (e: Error) => e instanceof UsageError && e.message.startsWith("No host given:"));
  throws(() => opts(["-oProxyCommand=x"]), /Host "-oProxyCommand=x" is not of the form user@host or host/);
  throws(() => opts(["me@host name"]), UsageError);
  throws(() => opts(["h", "../../etc"]), /Run id "..\/..\/etc" is not a results folder name/);
  throws(() => opts(["h", "run", "more"]), /Unexpected argument "more"/);
});

Deno.test("listCommand() asks the host in one ssh call, without prompting", () => {
  const cmd = listCommand(opts(["ubuntu@h"], { identityFile: "/k/id_ed25519" }));
  deepEqual(cmd.slice(0, 8), [
    "ssh",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=15",
    "-i",
    "/k/id_ed25519",
    "ubuntu@h",
  ]);
  equal(cmd.length, 9);
  ok(cmd[8]!.startsWith("cd embbench/results 2>/dev/null || { echo results-missing; exit 0; }"), cmd[8]);
  ok(cmd[8]!.includes('echo "run ${f%/run.json}"'), cmd[8]);
  ok(listCommand(opts(["h"], { remoteDir: "my dir" }))[6]!.startsWith("cd 'my dir/results'"));
});

Deno.test("parseListing() and chooseRun() take the newest run or the one asked for", () => {
  const listing = parseListing(
    "rsync-yes\nrun 2026-12-02T10-00-00Z\nrun 2026-11-30T08-00-00Z\nrun bad;name\n",
  );
  deepEqual(listing, {
    resultsFound: true,
    rsync: true,
    runs: ["2026-11-30T08-00-00Z", "2026-12-02T10-00-00Z"],
  });
  equal(chooseRun(opts(["h"]), listing), "2026-12-02T10-00-00Z");
  equal(chooseRun(opts(["h", "2026-11-30T08-00-00Z"]), listing), "2026-11-30T08-00-00Z");
  throws(
    () => chooseRun(opts(["h", "nope"]), listing),
    /No run "nope" at h:embbench\/results: found 2026-11-30T08-00-00Z, 2026-12-02T10-00-00Z/,
  );
  throws(
    () => chooseRun(opts(["h"]), parseListing("rsync-no\n")),
    (e: Error) =>
      e instanceof RunError && e.message === "No run at h:embbench/results: run './embbench all' there first",
  );
  throws(
    () => chooseRun(opts(["h"]), parseListing("results-missing\n")),
    /No results folder at h:embbench\/results/,
  );
});

Deno.test("copyCommand() builds rsync over ssh, or scp -r", () => {
  const o = opts(["ubuntu@h"], { identityFile: "/my keys/id" });
  deepEqual(copyCommand(o, "r1", "rsync"), [
    "rsync",
    "-az",
    "--partial",
    "-e",
    "ssh -o BatchMode=yes -o ConnectTimeout=15 -i '/my keys/id'",
    "ubuntu@h:embbench/results/r1/",
    "/home/me/embbench/results/r1/",
  ]);
  deepEqual(copyCommand(o, "r1", "scp"), [
    "scp",
    "-r",
    "-q",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=15",
    "-i",
    "/my keys/id",
    "ubuntu@h:embbench/results/r1",
    "/home/me/embbench/results/",
  ]);
  equal(shellQuote("it's"), `'it'\\''s'`);
});

/** A fake of the command runner: answers by program name and records every call. */
function fakeExec(answers: Record<string, Partial<{ code: number; stdout: string; stderr: string }>>) {
  const calls: string[][] = [];
  const exec: Exec = (argv) => {
    calls.push(argv);
    const a = answers[argv[0]!] ?? {};
    return Promise.resolve({ code: a.code ?? 0, stdout: a.stdout ?? "", stderr: a.stderr ?? "" });
  };
  return { exec, calls };
}

Deno.test("fetchRun() lists, then copies with rsync when both ends have it, else scp", async () => {
  const local = await Deno.makeTempDir({ prefix: "embbench-fetch-" });
  try {
    const o = fetchOptions(["ubuntu@h"], {}, join(local, "results"));
    const both = fakeExec({ ssh: { stdout: "rsync-yes\nrun r1\nrun r2\n" } });
    equal(await fetchRun(o, both.exec), join(local, "results", "r2"));
    deepEqual(both.calls.map((c) => c[0]), ["ssh", "ssh", "rsync", "rsync"]);
    equal(both.calls[3]!.at(-2), "ubuntu@h:embbench/results/r2/");

    const noRemoteRsync = fakeExec({ ssh: { stdout: "rsync-no\nrun r1\n" } });
    await fetchRun(o, noRemoteRsync.exec);
    equal(noRemoteRsync.calls.at(-1)![0], "scp");

    const noLocalRsync = fakeExec({ ssh: { stdout: "rsync-yes\nrun r1\n" }, rsync: { code: 127 } });
    await fetchRun(o, noLocalRsync.exec);
    equal(noLocalRsync.calls.at(-1)![0], "scp");
  } finally {
    await Deno.remove(local, { recursive: true });
  }
});

Deno.test("fetchRun() names the failure in one line: ssh unreachable, no run, copy failed", async () => {
  const o = fetchOptions(["ubuntu@h"], {}, "/nonexistent/results");
  await rejects(
    fetchRun(
      o,
      fakeExec({ ssh: { code: 255, stderr: "\nssh: connect to host h port 22: Connection timed out\n" } })
        .exec,
    ),
    (e: Error) =>
      e instanceof RunError &&
      e.message === "ssh to ubuntu@h failed (exit 255): ssh: connect to host h port 22: Connection timed out",
  );
  await rejects(
    fetchRun(o, fakeExec({ ssh: { stdout: "rsync-yes\n" } }).exec),
    /No run at ubuntu@h:embbench\/results/,
  );
  await rejects(fetchRun(o, fakeExec({ ssh: { code: 127 } }).exec), /ssh is not installed here/);
  const dir = await Deno.makeTempDir();
  try {
    const failing = fetchOptions(["ubuntu@h"], {}, dir);
    await rejects(
      fetchRun(failing, fakeExec({ ssh: { stdout: "rsync-yes\nrun r1\n" }, rsync: { code: 23 } }).exec),
      /rsync from ubuntu@h failed \(exit 23\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("embbench fetch-results: usage errors exit 2 in one line; --help describes it", async () => {
  const none = await runCli("fetch-results");
  equal(none.code, 2);
  equal(none.stderr.trim().split("\n").length, 1, none.stderr);
  ok(none.stderr.includes("No host given:"), none.stderr);
  const bad = await runCli("fetch-results", "ubuntu@h", "../x");
  equal(bad.code, 2);
  ok(bad.stderr.includes(`Run id "../x" is not a results folder name`), bad.stderr);
  const help = await runCli("fetch-results", "--help");
  equal(help.code, 0);
  ok(help.stdout.includes("--remote-dir <dir>"), help.stdout);
});
