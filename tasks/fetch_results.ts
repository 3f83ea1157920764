/**
 * `embbench fetch-results <user@host> [run-id]`: copies results/<run-id>/ from a benchmark host (the
 * newest run there by default) into the local results folder, with rsync over ssh, or scp when either
 * end lacks rsync.
 */
import { join } from "node:path";
import type { GlobalOptions } from "../lib/context.ts";
import { RunError, UsageError } from "../lib/errors.ts";
import { log, output } from "../lib/log.ts";

/** What a command run returned. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command: output piped when `capture`, else inherited (rsync's progress reaches the user). */
export type Exec = (argv: string[], capture: boolean) => Promise<ExecResult>;

/** Where and how to fetch from, after the arguments are checked. */
export interface FetchOptions {
  target: string;
  runId?: string;
  /** The checkout on the host, relative to the login's home unless absolute. */
  remoteDir: string;
  identityFile?: string;
  localResults: string;
}

/** What the host said about its results folder. */
export interface RemoteListing {
  resultsFound: boolean;
  rsync: boolean;
  runs: string[];
}

const TARGET = /^(?:[A-Za-z0-9._-]+@)?(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])$/;
const RUN_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/** Checks the arguments and flags, or throws a UsageError naming what is wrong. */
export function fetchOptions(
  args: string[],
  flags: { remoteDir?: string; identityFile?: string },
  localResults: string,
): FetchOptions {
  const [target, runId, ...extra] = args;
  if (!target) {
    throw new UsageError(
      "No host given: embbench fetch-results <user@host> [run-id] (terraform output ssh names it)",
    );
  }
  if (!TARGET.test(target)) {
    throw new UsageError(`Host "${target}" is not of the form user@host or host`);
  }
  if (extra.length) throw new UsageError(`Unexpected argument "${extra[0]}": give one host and one run id`);
  if (runId !== undefined && (!RUN_ID.test(runId) || runId.includes(".."))) {
    throw new UsageError(`Run id "${runId}" is not a results folder name (letters, digits, '.', '_', '-')`);
  }
  const remoteDir = (flags.remoteDir ?? "embbench").replace(/\/+$/, "") || "/";
  if (/[\0\n]/.test(remoteDir)) {
    throw new UsageError(`Remote folder "${remoteDir}" holds a control character`);
  }
  return { target, runId, remoteDir, identityFile: flags.identityFile, localResults };
}

/** Quotes a word for the remote POSIX shell. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** ssh's options: never prompt (a script must not hang), give up on a dead host quickly. */
export function sshOptions(o: FetchOptions): string[] {
  return [
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=15",
    ...(o.identityFile ? ["-i", o.identityFile] : []),
  ];
}

/** The remote folder's results path, as rsync and scp take it after "host:". */
function remoteResults(o: FetchOptions): string {
  return `${o.remoteDir}/results`;
}

/** One ssh call that reports whether results/ exists, whether rsync is there and which runs it holds. */
export function listCommand(o: FetchOptions): string[] {
  const script = [
    `cd ${shellQuote(remoteResults(o))} 2>/dev/null || { echo results-missing; exit 0; }`,
    `if command -v rsync >/dev/null 2>&1; then echo rsync-yes; else echo rsync-no; fi`,
    `for f in */run.json; do [ -f "$f" ] && echo "run \${f%/run.json}"; done`,
    `exit 0`,
  ].join("; ");
  return ["ssh", ...sshOptions(o), o.target, script];
}

/** Reads listCommand's answer. */
export function parseListing(stdout: string): RemoteListing {
  const lines = stdout.split("\n").map((l) => l.trim()).filter(Boolean);
  return {
    resultsFound: !lines.includes("results-missing"),
    rsync: lines.includes("rsync-yes"),
    runs: lines.filter((l) => l.startsWith("run ")).map((l) => l.slice(4)).filter((r) => RUN_ID.test(r))
      .sort(),
  };
}

/** The run to fetch: the one asked for, else the newest (run ids sort by their start time). */
export function chooseRun(o: FetchOptions, listing: RemoteListing): string {
  const where = `${o.target}:${remoteResults(o)}`;
  if (!listing.resultsFound) {
    throw new RunError(`No results folder at ${where}: is embbench checked out in "${o.remoteDir}" there?`);
  }
  if (o.runId) {
    if (!listing.runs.includes(o.runId)) {
      throw new RunError(
        `No run "${o.runId}" at ${where}: found ${listing.runs.length ? listing.runs.join(", ") : "none"}`,
      );
    }
    return o.runId;
  }
  const newest = listing.runs.at(-1);
  if (!newest) throw new RunError(`No run at ${where}: run './embbench all' there first`);
  return newest;
}

/** The copy: rsync (resumable, only what changed) when both ends have it, else scp -r. */
export function copyCommand(o: FetchOptions, runId: string, tool: "rsync" | "scp"): string[] {
  const source = `${o.target}:${remoteResults(o)}/${runId}`;
  if (tool === "rsync") {
    const ssh = ["ssh", ...sshOptions(o)].map(shellQuote).join(" ");
    return ["rsync", "-az", "--partial", "-e", ssh, `${source}/`, `${join(o.localResults, runId)}/`];
  }
  return ["scp", "-r", "-q", ...sshOptions(o), source, `${o.localResults}/`];
}

/** The last non-empty line of a tool's stderr, for a one-line error. */
function lastLine(s: string): string {
  return s.trim().split("\n").filter(Boolean).at(-1) ?? "no message";
}

const realExec: Exec = async (argv, capture) => {
  try {
    const out = await new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: "null",
      stdout: capture ? "piped" : "inherit",
      stderr: capture ? "piped" : "inherit",
    }).output();
    const text = (b: Uint8Array) => (capture ? new TextDecoder().decode(b) : "");
    return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { code: 127, stdout: "", stderr: `${argv[0]}: not found` };
    throw e;
  }
};

/** Whether a local command exists (rsync is optional; ssh is not). */
async function hasLocal(exec: Exec, tool: string): Promise<boolean> {
  return (await exec([tool, "--version"], true)).code !== 127;
}

/** Fetches one run and returns its local folder. */
export async function fetchRun(o: FetchOptions, exec: Exec = realExec): Promise<string> {
  if (!(await hasLocal(exec, "ssh"))) {
    throw new RunError("ssh is not installed here: apt-get install openssh-client");
  }
  const listed = await exec(listCommand(o), true);
  if (listed.code !== 0) {
    throw new RunError(`ssh to ${o.target} failed (exit ${listed.code}): ${lastLine(listed.stderr)}`);
  }
  const listing = parseListing(listed.stdout);
  const runId = chooseRun(o, listing);
  const tool = listing.rsync && (await hasLocal(exec, "rsync")) ? "rsync" : "scp";
  await Deno.mkdir(o.localResults, { recursive: true });
  log.info(`fetching ${o.target}:${remoteResults(o)}/${runId} into ${o.localResults} with ${tool}`);
  const copied = await exec(copyCommand(o, runId, tool), false);
  if (copied.code !== 0) {
    throw new RunError(`${tool} from ${o.target} failed (exit ${copied.code}); see its message above`);
  }
  return join(o.localResults, runId);
}

export async function run(
  opts: GlobalOptions,
  args: string[],
  flags: { remoteDir?: string; identityFile?: string },
): Promise<number> {
  const dir = await fetchRun(fetchOptions(args, flags, opts.results));
  log.info(`fetched: ${dir} (open ${join(dir, "report.html")}, or run 'embbench report ${dir}')`);
  output(dir);
  return 0;
}
