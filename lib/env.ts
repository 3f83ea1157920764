/** Captures the environment a run happened in: CPU, topology, memory, kernel, tool versions, git commit. */
import { readTopology } from "./config/cpuset.ts";
import { REPO_ROOT } from "./context.ts";

/** The machine and tools behind a run; stored in run.json. */
export interface Environment {
  cpu: {
    model: string;
    /** Every flag /proc/cpuinfo lists for the first CPU. */
    flags: string[];
    /** The flags that matter most for inference kernels: avx2, avx512*, amx*, vnni. */
    simdFlags: string[];
    logicalCpus: number;
    physicalCores: number;
    threadsPerCore: number;
    /** thread_siblings_list per logical CPU. */
    siblings: Record<string, string>;
  };
  memoryBytes: number;
  kernel: string;
  os: string;
  hostname: string;
  /** Versions of the tools the run used; null when absent. */
  tools: { deno: string; docker: string | null; dockerServer: string | null; oha: string | null };
  git: { commit: string | null; dirty: boolean | null };
  cgroupVersion: 1 | 2 | null;
}

/** Runs a command and returns its trimmed stdout, or null when it is missing or fails. */
export async function commandOutput(cmd: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

function readOr(path: string, fallback = ""): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return fallback;
  }
}

/** Parses the first processor block of /proc/cpuinfo. */
export function parseCpuinfo(text: string): { model: string; flags: string[] } {
  const first = text.split(/\n\s*\n/)[0] ?? "";
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, "m").exec(first)?.[1]?.trim() ?? "";
  return { model: field("model name") || "unknown", flags: field("flags").split(/\s+/).filter(Boolean) };
}

/** Flags worth showing next to every number: SIMD width and matrix units. */
export function simdFlags(flags: string[]): string[] {
  return flags.filter((f) => /^(avx2|fma|f16c|avx512.*|amx.*|avx_vnni.*|avx_vnni)$/.test(f)).sort();
}

/** Collects the environment. Missing tools are recorded as null, not errors. */
export async function captureEnvironment(): Promise<Environment> {
  const { model, flags } = parseCpuinfo(readOr("/proc/cpuinfo"));
  const topo = readTopology();
  const siblings: Record<string, string> = {};
  for (const [cpu, key] of topo.coreOf) siblings[String(cpu)] = key;
  const physical = new Set(topo.coreOf.values()).size;
  const memKb = Number(/MemTotal:\s+(\d+)/.exec(readOr("/proc/meminfo"))?.[1] ?? 0);
  const osRelease = /PRETTY_NAME="?([^"\n]*)"?/.exec(readOr("/etc/os-release"))?.[1] ?? "unknown";
  const [docker, dockerServer, oha, commit, status] = await Promise.all([
    commandOutput("docker", ["version", "--format", "{{.Client.Version}}"]),
    commandOutput("docker", ["version", "--format", "{{.Server.Version}}"]),
    commandOutput("oha", ["--version"]),
    commandOutput("git", ["-C", REPO_ROOT, "rev-parse", "HEAD"]),
    commandOutput("git", ["-C", REPO_ROOT, "status", "--porcelain"]),
  ]);
  let cgroupVersion: 1 | 2 | null = null;
  try {
    Deno.statSync("/sys/fs/cgroup/cgroup.controllers");
    cgroupVersion = 2;
  } catch {
    cgroupVersion = readOr("/proc/mounts").includes("cgroup ") ? 1 : null;
  }
  return {
    cpu: {
      model,
      flags,
      simdFlags: simdFlags(flags),
      logicalCpus: topo.online.length,
      physicalCores: physical,
      threadsPerCore: physical ? Math.round(topo.online.length / physical) : 1,
      siblings,
    },
    memoryBytes: memKb * 1024,
    kernel: readOr("/proc/sys/kernel/osrelease").trim(),
    os: osRelease,
    hostname: Deno.hostname(),
    tools: { deno: Deno.version.deno, docker, dockerServer, oha: oha?.replace(/^oha\s+/, "") ?? null },
    git: { commit, dirty: status === null ? null : status.length > 0 },
    cgroupVersion,
  };
}
