/**
 * A server's memory, measured so that mapped weights count: the proportional set size of its
 * processes (smaps_rollup, anonymous and file-backed apart) and the cgroup's peak since the
 * container was created. Before each container starts, the model's files are evicted from the page
 * cache, so the pages it maps are read (and charged) by that container, not by an earlier one.
 */
import { join } from "node:path";
import type { ContainerEngine } from "./docker.ts";

/** Resident memory of a container's processes, bytes, from /proc/<pid>/smaps_rollup summed over them. */
export interface Resident {
  /** Resident set size summed over the processes (shared pages counted once per process). */
  rssBytes: number;
  /** Proportional set size: each shared page split among the processes mapping it. */
  pssBytes: number;
  /** Anonymous memory (heap, stacks, anonymous mmaps), Pss_Anon. */
  anonBytes: number;
  /** File-backed memory (mapped weights, libraries) and shared memory, Pss_File + Pss_Shmem. */
  fileBytes: number;
  processes: number;
}

/** Sums smaps_rollup texts (one or more concatenated); their sizes are in kB. */
export function parseSmapsRollup(text: string): Resident | undefined {
  const out: Resident = { rssBytes: 0, pssBytes: 0, anonBytes: 0, fileBytes: 0, processes: 0 };
  for (const line of text.split("\n")) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line.trim());
    if (!m) continue;
    const bytes = Number(m[2]) * 1024;
    switch (m[1]) {
      case "Rss":
        out.rssBytes += bytes;
        out.processes++;
        break;
      case "Pss":
        out.pssBytes += bytes;
        break;
      case "Pss_Anon":
        out.anonBytes += bytes;
        break;
      case "Pss_File":
      case "Pss_Shmem":
        out.fileBytes += bytes;
        break;
    }
  }
  return out.processes > 0 ? out : undefined;
}

/**
 * Every process's smaps_rollup inside the container except the shell reading them, read with
 * `docker exec` so that it works without root (the harness may not ptrace the container's
 * processes). Call it between windows: the exec costs the container a few milliseconds of CPU.
 */
export async function residentMemory(engine: ContainerEngine, id: string): Promise<Resident | undefined> {
  const script = 'cd /proc && for p in [0-9]*; do [ "$p" = "$$" ] || cat "$p/smaps_rollup" 2>/dev/null; done';
  try {
    return parseSmapsRollup(await engine.exec(id, ["sh", "-c", script]));
  } catch {
    return undefined;
  }
}

/** What evicting a model's files from the page cache achieved. */
export interface Eviction {
  files: number;
  bytes: number;
  /** Bytes of those files still in the page cache afterwards (mapped by a running process, or not evictable). */
  residentBytes: number;
  /** Why eviction could not be done or checked, if so. */
  problem?: string;
}

async function* filesUnder(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* filesUnder(p);
    else if (e.isFile) yield p;
  }
}

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string; err: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const d = new TextDecoder();
    return { ok: o.success, out: d.decode(o.stdout), err: d.decode(o.stderr) };
  } catch (e) {
    return { ok: false, out: "", err: (e as Error).message };
  }
}

/**
 * Drops a folder's files from the page cache (`dd iflag=nocache count=0`, a POSIX_FADV_DONTNEED
 * on the whole file; no root needed) and checks with `fincore` how much stayed resident.
 */
export async function evictPageCache(dir: string): Promise<Eviction> {
  const files: string[] = [];
  let bytes = 0;
  try {
    for await (const f of filesUnder(dir)) {
      files.push(f);
      bytes += (await Deno.stat(f)).size;
    }
  } catch (e) {
    return { files: 0, bytes: 0, residentBytes: NaN, problem: `cannot list ${dir}: ${(e as Error).message}` };
  }
  const problems: string[] = [];
  for (const f of files) {
    const r = await run("dd", [`if=${f}`, "iflag=nocache", "count=0", "status=none"]);
    if (!r.ok) problems.push(`dd ${f}: ${r.err.trim() || "failed"}`);
  }
  let residentBytes = NaN;
  if (files.length) {
    const r = await run("fincore", ["--bytes", "--noheadings", "--raw", "--output", "RES", ...files]);
    if (r.ok) residentBytes = r.out.split("\n").filter(Boolean).reduce((a, l) => a + Number(l.trim()), 0);
    else problems.push(`fincore: ${r.err.trim() || "failed"}`);
  } else residentBytes = 0;
  return { files: files.length, bytes, residentBytes, ...(problems.length ? { problem: problems[0] } : {}) };
}
