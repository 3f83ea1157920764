/** docker stats frames to CPU and memory figures, and a sampler that aggregates them per cell. */
import type { ContainerEngine, RawStats } from "./docker.ts";
import type { ResourceStats } from "../results/results.ts";

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

/** CPU use between two snapshots: the exact mean over the time between them. */
export function cpuPercentBetween(start: RawStats, end: RawStats): number | undefined {
  return cpuPercent({ ...end, precpu_stats: start.cpu_stats });
}

/**
 * Mean and peak over snapshots taken in sequence: CPU between consecutive snapshots (the peak),
 * and between the first and the last (the mean over the whole span); memory over every snapshot.
 */
export function aggregate(snapshots: RawStats[]): ResourceStats | undefined {
  const intervals: number[] = [];
  for (let i = 1; i < snapshots.length; i++) {
    const v = cpuPercentBetween(snapshots[i - 1]!, snapshots[i]!);
    if (v !== undefined) intervals.push(v);
  }
  const spanCpu = snapshots.length >= 2 ? cpuPercentBetween(snapshots[0]!, snapshots.at(-1)!) : undefined;
  const rss = snapshots.map(rssBytes).filter((v): v is number => v !== undefined);
  const ws = snapshots.map(workingSetBytes).filter((v): v is number => v !== undefined);
  if (spanCpu === undefined && rss.length === 0) return undefined;
  const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN);
  const peak = (v: number[]) => (v.length ? Math.max(...v) : NaN);
  return {
    samples: snapshots.length,
    cpuPercentMean: spanCpu ?? NaN,
    cpuPercentPeak: peak(intervals),
    rssBytesMean: mean(rss),
    rssBytesPeak: peak(rss),
    workingSetBytesMean: mean(ws),
    workingSetBytesPeak: peak(ws),
  };
}

/**
 * Samples a container's stats every `intervalMs` until stop() is called. It polls one-shot
 * snapshots rather than docker's stream: the stream ticks once a second, and while a stream is open
 * one-shot reads return the stream's cached tick, which blurs short cells.
 */
export async function sampleStats(
  engine: ContainerEngine,
  id: string,
  intervalMs = 250,
): Promise<{ stop(): Promise<ResourceStats | undefined> }> {
  const snapshots: RawStats[] = [];
  const take = async () => {
    try {
      snapshots.push(await engine.statsOnce(id));
    } catch {
      // The container went away: keep what was collected.
    }
  };
  await take();
  let wake: () => void = () => {};
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, intervalMs);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
      if (!stopped) await take();
    }
  })();
  return {
    async stop() {
      stopped = true;
      wake();
      await loop;
      await take();
      return aggregate(snapshots);
    },
  };
}

/**
 * A cell's resources from its passes': means weighted by each pass's measured duration (CPU) or
 * sample count (memory), peaks the highest.
 */
export function combineResources(
  reps: { resources?: ResourceStats; durationS: number }[],
): ResourceStats | undefined {
  const have = reps.filter((r): r is { resources: ResourceStats; durationS: number } => !!r.resources);
  if (have.length === 0) return undefined;
  if (have.length === 1) return have[0]!.resources;
  const weighted = (f: (r: ResourceStats) => number, w: (x: (typeof have)[number]) => number) => {
    const ok = have.filter((x) => Number.isFinite(f(x.resources)) && w(x) > 0);
    const total = ok.reduce((a, x) => a + w(x), 0);
    return total > 0 ? ok.reduce((a, x) => a + f(x.resources) * w(x), 0) / total : NaN;
  };
  const peak = (f: (r: ResourceStats) => number) => {
    const v = have.map((x) => f(x.resources)).filter(Number.isFinite);
    return v.length ? Math.max(...v) : NaN;
  };
  const bySamples = (x: (typeof have)[number]) => x.resources.samples;
  const byDuration = (x: (typeof have)[number]) => x.durationS;
  return {
    samples: have.reduce((a, x) => a + x.resources.samples, 0),
    cpuPercentMean: weighted((r) => r.cpuPercentMean, byDuration),
    cpuPercentPeak: peak((r) => r.cpuPercentPeak),
    rssBytesMean: weighted((r) => r.rssBytesMean, bySamples),
    rssBytesPeak: peak((r) => r.rssBytesPeak),
    workingSetBytesMean: weighted((r) => r.workingSetBytesMean, bySamples),
    workingSetBytesPeak: peak((r) => r.workingSetBytesPeak),
  };
}
