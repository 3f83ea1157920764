/** docker stats frames to CPU and memory figures, and a sampler that aggregates them per cell. */
import type { ContainerEngine, RawStats } from "./docker.ts";
import type { ResourceStats } from "./results.ts";

/**
 * CPU use in percent of one CPU: Δcpu / Δsystem × online CPUs × 100. Δsystem counts every host CPU,
 * so a container keeping one core busy reads 100 whatever the host size. Undefined for the first
 * frame of a stream (no previous sample to difference against).
 */
export function cpuPercent(s: RawStats): number | undefined {
  const dCpu = s.cpu_stats.cpu_usage.total_usage - s.precpu_stats.cpu_usage.total_usage;
  const dSys = (s.cpu_stats.system_cpu_usage ?? 0) - (s.precpu_stats.system_cpu_usage ?? 0);
  const online = s.cpu_stats.online_cpus ?? 0;
  if (dSys <= 0 || online <= 0 || s.precpu_stats.cpu_usage.total_usage === 0) return undefined;
  return (dCpu / dSys) * online * 100;
}

/** Resident memory in bytes: cgroup v1 total_rss (or rss), cgroup v2 anon. */
export function rssBytes(s: RawStats): number | undefined {
  const st = s.memory_stats.stats;
  if (!st) return undefined;
  return st.total_rss ?? st.rss ?? st.anon;
}

/** Usage minus inactive file cache (v1 total_inactive_file, v2 inactive_file), as `docker stats` shows. */
export function workingSetBytes(s: RawStats): number | undefined {
  const usage = s.memory_stats.usage;
  if (usage === undefined) return undefined;
  const st = s.memory_stats.stats ?? {};
  const inactive = st.total_inactive_file ?? st.inactive_file ?? 0;
  return Math.max(0, usage - inactive);
}

/** Mean and peak of the frames' figures. */
export function aggregate(frames: RawStats[]): ResourceStats | undefined {
  const cpu = frames.map(cpuPercent).filter((v): v is number => v !== undefined);
  const rss = frames.map(rssBytes).filter((v): v is number => v !== undefined);
  const ws = frames.map(workingSetBytes).filter((v): v is number => v !== undefined);
  if (cpu.length === 0 && rss.length === 0) return undefined;
  const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN);
  const peak = (v: number[]) => (v.length ? Math.max(...v) : NaN);
  return {
    samples: Math.max(cpu.length, rss.length),
    cpuPercentMean: mean(cpu),
    cpuPercentPeak: peak(cpu),
    rssBytesMean: mean(rss),
    rssBytesPeak: peak(rss),
    workingSetBytesMean: mean(ws),
    workingSetBytesPeak: peak(ws),
  };
}

/** Samples a container's stats in the background until stop() is called. */
export function sampleStats(
  engine: ContainerEngine,
  id: string,
): { stop(): Promise<ResourceStats | undefined> } {
  const ac = new AbortController();
  const frames: RawStats[] = [];
  const done = (async () => {
    try {
      for await (const f of engine.stats(id, ac.signal)) frames.push(f);
    } catch {
      // The container went away mid-sample: keep what was collected.
    }
  })();
  return {
    async stop() {
      ac.abort();
      await done;
      return aggregate(frames);
    },
  };
}
