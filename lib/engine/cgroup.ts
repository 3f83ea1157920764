/**
 * Reads a local container's cgroup counters directly, shaped like a docker stats frame, so the same
 * formulas apply. Docker's API refreshes stats once a second; reading the files lets the harness
 * sample as often as it likes. Returns undefined when the container's cgroup is not on this host
 * (a remote engine, an unknown layout): callers then fall back to the API.
 */
import type { RawStats } from "./docker.ts";

const CLK_TCK = 100; // USER_HZ on Linux, what /proc/stat counts in

function read(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

function keyValues(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** Host CPU time in nanoseconds from /proc/stat's first line, as docker computes system_cpu_usage. */
export function systemCpuNs(procStat: string): number {
  const fields = procStat.split("\n")[0]!.trim().split(/\s+/).slice(1, 8).map(Number);
  return fields.reduce((a, b) => a + b, 0) * (1e9 / CLK_TCK);
}

interface Location {
  v: 1 | 2;
  cpu: string;
  memory: string;
}

/** Where each container's cgroup was found: sampling every 250 ms should not probe every layout again. */
const located = new Map<string, Location>();

/** Candidate cgroup folders for a container id, v1 (cgroupfs, systemd) then v2; remembered once found. */
function locate(id: string, root: string): Location | undefined {
  const key = `${root}\0${id}`;
  const known = located.get(key);
  if (known) return known;
  const found = probe(id, root);
  if (found) located.set(key, found);
  return found;
}

function probe(id: string, root: string): Location | undefined {
  const v1 = [`docker/${id}`, `system.slice/docker-${id}.scope`];
  for (const rel of v1) {
    for (const cpuDir of ["cpuacct", "cpu,cpuacct"]) {
      const cpu = `${root}/${cpuDir}/${rel}`;
      if (read(`${cpu}/cpuacct.usage`) !== undefined) return { v: 1, cpu, memory: `${root}/memory/${rel}` };
    }
  }
  for (const rel of [`system.slice/docker-${id}.scope`, `docker/${id}`]) {
    const dir = `${root}/${rel}`;
    if (read(`${dir}/cpu.stat`) !== undefined) return { v: 2, cpu: dir, memory: dir };
  }
  return undefined;
}

/** One snapshot from the cgroup files, or undefined when they cannot be found. */
export function cgroupSnapshot(id: string, root = "/sys/fs/cgroup"): RawStats | undefined {
  const where = locate(id, root);
  const procStat = read("/proc/stat");
  if (!where || !procStat) return undefined;
  const cpuText = read(where.v === 1 ? `${where.cpu}/cpuacct.usage` : `${where.cpu}/cpu.stat`);
  if (cpuText === undefined) {
    // The container is gone: forget its folder, and let the caller fall back to the API.
    located.delete(`${root}\0${id}`);
    return undefined;
  }
  const totalNs = where.v === 1 ? Number(cpuText) : (keyValues(cpuText).usage_usec ?? NaN) * 1000;
  const memStats = keyValues(read(`${where.memory}/memory.stat`) ?? "");
  const usage = Number(
    read(`${where.memory}/${where.v === 1 ? "memory.usage_in_bytes" : "memory.current"}`) ?? NaN,
  );
  const online = cpusIn(procStat);
  const cpu = {
    cpu_usage: { total_usage: totalNs },
    system_cpu_usage: systemCpuNs(procStat),
    online_cpus: online,
  };
  return {
    read: new Date().toISOString(),
    cpu_stats: cpu,
    precpu_stats: { cpu_usage: { total_usage: 0 } },
    memory_stats: { usage, stats: memStats },
  };
}

/** The host's online CPUs, counted from /proc/stat's per-CPU lines (not from any process's affinity). */
export function cpusIn(procStat: string): number {
  return procStat.split("\n").filter((l) => /^cpu\d+ /.test(l)).length;
}

/** The container's CPU time (user + system of every process in its cgroup), seconds; undefined when unreadable. */
export function cpuSeconds(id: string, root = "/sys/fs/cgroup"): number | undefined {
  const where = locate(id, root);
  if (!where) return undefined;
  const text = read(where.v === 1 ? `${where.cpu}/cpuacct.usage` : `${where.cpu}/cpu.stat`);
  if (text === undefined) return undefined;
  const ns = where.v === 1 ? Number(text) : (keyValues(text).usage_usec ?? NaN) * 1000;
  return Number.isFinite(ns) ? ns / 1e9 : undefined;
}

/**
 * The cgroup's highest memory use since the container was created (v1 memory.max_usage_in_bytes,
 * v2 memory.peak), bytes: anonymous memory and the page cache charged to it, so model files it read.
 */
export function memoryPeakBytes(id: string, root = "/sys/fs/cgroup"): number | undefined {
  const where = locate(id, root);
  if (!where) return undefined;
  const text = read(`${where.memory}/${where.v === 1 ? "memory.max_usage_in_bytes" : "memory.peak"}`);
  const v = Number(text?.trim() ?? NaN);
  return Number.isFinite(v) && text !== undefined ? v : undefined;
}

/** Host-wide CPU time from /proc/stat's first line, seconds: all of it, and the part stolen by the hypervisor. */
export function hostCpuTimes(procStat: string): { totalS: number; stealS: number } {
  const f = procStat.split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user and nice)
  const total = f.slice(0, 8).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  return { totalS: total / CLK_TCK, stealS: (f[7] ?? 0) / CLK_TCK };
}
