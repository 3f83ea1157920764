/** The server under load, read around each window: its cgroup's CPU time, the host's steal, its /metrics. */
import type { ContainerEngine } from "../engine/docker.ts";
import { cpuSeconds, hostCpuTimes } from "../engine/cgroup.ts";
import type { ServerProbe } from "../load/window.ts";
import { readMetrics } from "./metrics.ts";

/** A probe of one running server container; the cgroup files first, the engine's API where they are not local. */
export function serverProbe(engine: ContainerEngine, containerId: string, baseUrl: string): ServerProbe {
  return {
    async cpuSeconds() {
      const local = cpuSeconds(containerId);
      if (local !== undefined) return local;
      try {
        return (await engine.statsOnce(containerId)).cpu_stats.cpu_usage.total_usage / 1e9;
      } catch {
        return undefined;
      }
    },
    hostTimes() {
      try {
        return hostCpuTimes(Deno.readTextFileSync("/proc/stat"));
      } catch {
        return undefined;
      }
    },
    metrics: () => readMetrics(baseUrl),
  };
}
