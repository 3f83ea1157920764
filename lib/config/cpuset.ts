/** Cpuset strings ("0-3,8"): parsing, printing, the host's CPU topology and server/loadgen placement. */
import { UsageError } from "../errors.ts";
import { log } from "../log.ts";

/** Parses a cpuset string into sorted, unique CPU numbers; throws a RangeError naming the bad part. */
export function parseCpuset(text: string): number[] {
  const cpus = new Set<number>();
  const trimmed = text.trim();
  if (trimmed === "") throw new RangeError(`"${text}" is empty, expected CPU numbers such as "0-3,8"`);
  for (const part of trimmed.split(",")) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) {
      throw new RangeError(
        `"${part.trim()}" is not a CPU number or range, expected forms such as "3" or "0-3"`,
      );
    }
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new RangeError(`"${part.trim()}" is a descending range, expected low-high`);
    for (let c = lo; c <= hi; c++) cpus.add(c);
  }
  return [...cpus].sort((a, b) => a - b);
}

/** Prints CPU numbers as a compact cpuset string ("0-3,8"). */
export function formatCpuset(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/** The host's logical CPUs and which share a physical core. */
export interface CpuTopology {
  /** Online logical CPU numbers. */
  online: number[];
  /** Physical core id per logical CPU: CPUs with the same key are hyperthread siblings. */
  coreOf: Map<number, string>;
}

/** Reads the topology from sysfs (Linux). */
export function readTopology(sysfs = "/sys/devices/system/cpu"): CpuTopology {
  const online = parseCpuset(Deno.readTextFileSync(`${sysfs}/online`));
  const coreOf = new Map<number, string>();
  for (const cpu of online) {
    let key = `cpu${cpu}`;
    try {
      // thread_siblings_list is identical for all siblings, so it names the physical core.
      key = Deno.readTextFileSync(`${sysfs}/cpu${cpu}/topology/thread_siblings_list`).trim();
    } catch {
      // No topology information: treat each logical CPU as its own core.
    }
    coreOf.set(cpu, key);
  }
  return { online, coreOf };
}

/** Physical cores that appear in both sets (hyperthread siblings split across them). */
export function sharedCores(a: readonly number[], b: readonly number[], topo: CpuTopology): string[] {
  const coresA = new Set(a.map((c) => topo.coreOf.get(c) ?? `cpu${c}`));
  return [...new Set(b.map((c) => topo.coreOf.get(c) ?? `cpu${c}`))].filter((k) => coresA.has(k));
}

/**
 * Splits the host's CPUs into disjoint server and loadgen sets on distinct physical cores.
 * The server gets three quarters of the physical cores (at least one), loadgen the rest; a host with
 * a single physical core gives each side one hyperthread when it can.
 */
export function autoSplit(topo: CpuTopology): { server: number[]; loadgen: number[] } {
  const cores = new Map<string, number[]>();
  for (const cpu of topo.online) {
    const key = topo.coreOf.get(cpu) ?? `cpu${cpu}`;
    cores.set(key, [...(cores.get(key) ?? []), cpu]);
  }
  const groups = [...cores.values()].sort((a, b) => a[0]! - b[0]!);
  if (groups.length === 1) {
    const only = groups[0]!;
    if (only.length === 1) return { server: only, loadgen: only };
    return { server: only.slice(0, -1), loadgen: only.slice(-1) };
  }
  const serverCores = Math.max(1, Math.min(groups.length - 1, Math.round(groups.length * 0.75)));
  return {
    server: groups.slice(0, serverCores).flat().sort((a, b) => a - b),
    loadgen: groups.slice(serverCores).flat().sort((a, b) => a - b),
  };
}

/**
 * The server and loadgen cpusets to use: "auto" split by autoSplit, else the configured strings.
 * Sets sharing a physical core are refused with `strict`, else warned about.
 */
export function resolveCpus(
  cpus: { server: string; loadgen: string },
  topology: CpuTopology,
  strict: boolean,
): { server: string; loadgen: string } {
  const { server, loadgen } = cpus.server.trim() === "auto"
    ? autoSplit(topology)
    : { server: parseCpuset(cpus.server), loadgen: parseCpuset(cpus.loadgen) };
  const shared = sharedCores(server, loadgen, topology);
  if (shared.length > 0) {
    const message = `server CPUs ${formatCpuset(server)} and loadgen CPUs ${
      formatCpuset(loadgen)
    } share physical core(s) ${shared.map((s) => `{${s}}`).join(", ")}`;
    if (strict) throw new UsageError(`${message}: refused by --strict`);
    log.warn(`${message}: the load generator competes with the server`);
  }
  return { server: formatCpuset(server), loadgen: formatCpuset(loadgen) };
}

/**
 * The inference threads a server gets on `cpus`: one per physical core ("physical": hyperthread
 * siblings share a core's execution units, so a second compute thread per core mostly contends),
 * or one per logical CPU ("logical").
 */
export function threadsFor(cpus: readonly number[], mode: "physical" | "logical", topo: CpuTopology): number {
  if (mode === "logical") return cpus.length;
  return new Set(cpus.map((c) => topo.coreOf.get(c) ?? `cpu${c}`)).size;
}
