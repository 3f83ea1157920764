/**
 * Keeps the harness and the container engine off the server cpuset: the harness's own process,
 * dockerd, containerd and the container shims are moved to the other CPUs with taskset, where the
 * host allows it. What could not be moved is reported, not hidden.
 */
import { formatCpuset } from "../config/cpuset.ts";

/** Processes that would otherwise run anywhere, the server's CPUs included. */
export const HOUSEKEEPING = ["dockerd", "containerd", "containerd-shim-runc-v2", "containerd-shim"];

/** What was moved, and what was not (with the reason). */
export interface Placement {
  cpus: string;
  moved: string[];
  notMoved: string[];
}

async function pidsOf(name: string): Promise<number[]> {
  try {
    const out = await new Deno.Command("pgrep", { args: ["-x", name], stdout: "piped", stderr: "null" })
      .output();
    return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A process's current CPU affinity list ("0-3"), or undefined when it cannot be read. */
async function affinity(pid: number): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("taskset", {
      args: ["-c", "-p", String(pid)],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    return /: (\S+)\s*$/.exec(new TextDecoder().decode(out.stdout))?.[1];
  } catch {
    return undefined;
  }
}

async function pin(pid: number, cpus: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("taskset", {
      args: ["-a", "-p", "-c", cpus, String(pid)],
      stdout: "null",
      stderr: "piped",
    }).output();
    return out.success ? undefined : new TextDecoder().decode(out.stderr).trim().split("\n").at(-1);
  } catch (e) {
    return (e as Error).message;
  }
}

/** Each moved process's affinity before the first move, to put back when the run ends. */
const original = new Map<number, string>();

/**
 * Gives every process keepOffServer moved its affinity back (at the end of a run). An affinity that
 * already was the one keepOffServer sets is the leftover of a run that was killed before it could
 * restore (a SIGKILL): those processes get every online CPU, the engine's default. This matters:
 * dockerd sizes the Engine API's `online_cpus` from its own affinity.
 */
export async function restorePlacement(onlineCpus: number[], serverCpus: number[]): Promise<void> {
  for (const [pid, cpus] of original) await pin(pid, restoreTarget(cpus, onlineCpus, serverCpus));
  original.clear();
}

/** The affinity to give back: the one found before, unless it is keepOffServer's own (then every CPU). */
export function restoreTarget(before: string, onlineCpus: number[], serverCpus: number[]): string {
  const ours = formatCpuset(onlineCpus.filter((c) => !serverCpus.includes(c)));
  return before === ours ? formatCpuset(onlineCpus) : before;
}

/**
 * Pins the harness (this process, all threads) and the engine's processes to every CPU but the
 * server's, remembering their affinity for restorePlacement(). The container shims of containers
 * started later inherit nothing from this, so it is called again after each container start.
 */
export async function keepOffServer(serverCpus: number[], onlineCpus: number[]): Promise<Placement> {
  const others = onlineCpus.filter((c) => !serverCpus.includes(c));
  const cpus = formatCpuset(others);
  const placement: Placement = { cpus, moved: [], notMoved: [] };
  if (others.length === 0) {
    placement.notMoved.push("everything: the server cpuset holds every online CPU");
    return placement;
  }
  const targets: [string, number][] = [["embbench", Deno.pid]];
  for (const name of HOUSEKEEPING) for (const pid of await pidsOf(name)) targets.push([name, pid]);
  for (const [name, pid] of targets) {
    if (!original.has(pid)) {
      const before = await affinity(pid);
      if (before) original.set(pid, before);
    }
    const err = await pin(pid, cpus);
    const label = `${name} (pid ${pid})`;
    if (err) placement.notMoved.push(`${label}: ${err}`);
    else if (!placement.moved.includes(name)) placement.moved.push(name);
  }
  for (const name of ["dockerd", "containerd"]) {
    if (!targets.some(([n]) => n === name)) placement.notMoved.push(`${name}: no such process on this host`);
  }
  return placement;
}
