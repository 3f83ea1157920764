/**
 * A cell's secondary figures from its passes: the server's CPU per request and busy cores, its
 * memory, where its time went (phase counters), its arithmetic efficiency against the measured
 * GEMM peak, and what a million embeddings cost. Collected here with units; the report renders them.
 */
import type { Resident } from "../engine/memory.ts";
import type { WindowRecord } from "../load/window.ts";
import { type Phase, type PhaseTimes, phaseTimes, sumDeltas } from "../server/metrics.ts";
import { quantile } from "./quantiles.ts";

/** The server's CPU over a cell's measured windows (each window bracketed exactly by its oha run). */
export interface CpuFigures {
  /** Server CPU time per answered request, seconds, and per 1,000 tokens of input. */
  secondsPerRequest: number;
  secondsPer1kTokens: number;
  /** Mean busy cores: CPU seconds over wall seconds (1 = one CPU fully busy). */
  busyCores: number;
  /** The busiest window's busy cores; windows under one second are not used. */
  busyCoresPeak: number;
  /** busyCores over the cpuset's CPUs, percent (never above 100). */
  utilizationPercent: number;
  cpusetCpus: number;
  /** Share of all host CPU time the hypervisor stole during the windows, percent; absent when the host reports none. */
  stealPercent?: number;
}

/** A pass's memory readings (one fresh container per pass). */
export interface PassMemory {
  /** The cgroup's peak from creation to healthy: model load and warm-up (page cache it read included). */
  loadPeakBytes?: number;
  /** The cgroup's peak from creation to the end of this cell's windows. */
  peakBytes?: number;
  /** Resident memory of the server's processes right after the cell's windows. */
  steady?: Resident;
}

/** A cell's memory: medians over its passes, peaks the highest. */
export interface MemoryFigures {
  loadPeakBytes?: number;
  peakBytes?: number;
  /** Steady state after the load: proportional set size, its anonymous and file-backed parts, and RSS. */
  pssBytes?: number;
  anonBytes?: number;
  fileBytes?: number;
  rssBytes?: number;
}

/** Where a request's time went: the server's phases (mean ms per request) and the HTTP layer. */
export interface PhaseFigures extends PhaseTimes {
  /** The client's mean latency minus the server's `request` time: HTTP layer, network, waiting for a server thread. */
  httpMs?: number;
}

/** Arithmetic done against what the CPU can do. */
export interface EfficiencyFigures {
  /** Matrix-multiply floating-point operations per request (lib/stats/flops.ts). */
  flopsPerRequest: number;
  /** Achieved: throughput × operations per request. */
  gflops: number;
  /** The server cpuset's measured fp32 GEMM peak, and the achieved share of it. */
  peakGflops?: number;
  percentOfPeak?: number;
}

/** Everything above for one cell. */
export interface CellResources {
  cpu?: CpuFigures;
  memory?: MemoryFigures;
  phases?: PhaseFigures;
  efficiency?: EfficiencyFigures;
  /** Cost of a million embeddings at the cell's throughput, in the config's currency (see costPerMillion). */
  costPerMillion?: number;
}

/** What resources need beyond the windows. */
export interface ResourceContext {
  batchSize: number;
  sequenceLength: number;
  cpusetCpus: number;
  throughputRps: number;
  /** The client's mean latency of measured successful requests, ms. */
  clientMeanMs?: number;
  flopsPerSequence?: number;
  peakGflops?: number;
  /** The instance's price per hour and the server cpuset's share of its CPUs. */
  pricePerHour?: number;
  cpuShare?: number;
}

const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
const med = (v: (number | undefined)[]) => {
  const x = v.filter((y): y is number => y !== undefined && Number.isFinite(y));
  return x.length ? quantile(x, 0.5) : undefined;
};
const max = (v: (number | undefined)[]) => {
  const x = v.filter((y): y is number => y !== undefined && Number.isFinite(y));
  return x.length ? Math.max(...x) : undefined;
};

/** CPU figures over windows that carry a bracketed CPU reading. */
export function cpuFigures(windows: WindowRecord[], c: ResourceContext): CpuFigures | undefined {
  const w = windows.filter((x) => x.server?.cpuSeconds !== undefined && x.server.wallSeconds > 0);
  const cpu = sum(w.map((x) => x.server!.cpuSeconds!));
  const wall = sum(w.map((x) => x.server!.wallSeconds));
  const answered = sum(w.map((x) => x.server!.answered));
  if (w.length === 0 || !(wall > 0) || !(answered > 0)) return undefined;
  const long = w.filter((x) => x.server!.wallSeconds >= 1);
  const perRequest = cpu / answered;
  const tokens = c.batchSize * c.sequenceLength;
  const host = sum(w.map((x) => x.server!.hostCpuSeconds ?? 0));
  const steal = sum(w.map((x) => x.server!.stealSeconds ?? 0));
  const busy = cpu / wall;
  return {
    secondsPerRequest: perRequest,
    secondsPer1kTokens: perRequest / (tokens / 1000),
    busyCores: busy,
    busyCoresPeak: long.length
      ? Math.max(...long.map((x) => x.server!.cpuSeconds! / x.server!.wallSeconds))
      : busy,
    utilizationPercent: (busy / c.cpusetCpus) * 100,
    cpusetCpus: c.cpusetCpus,
    ...(host > 0 && steal > 0 ? { stealPercent: (steal / host) * 100 } : {}),
  };
}

/** Memory over passes: medians of the steady figures; the load peak and the peak, the highest of any pass. */
export function memoryFigures(passes: PassMemory[]): MemoryFigures | undefined {
  if (passes.length === 0) return undefined;
  const out: MemoryFigures = {
    loadPeakBytes: max(passes.map((p) => p.loadPeakBytes)),
    peakBytes: max(passes.map((p) => p.peakBytes)),
    pssBytes: med(passes.map((p) => p.steady?.pssBytes)),
    anonBytes: med(passes.map((p) => p.steady?.anonBytes)),
    fileBytes: med(passes.map((p) => p.steady?.fileBytes)),
    rssBytes: med(passes.map((p) => p.steady?.rssBytes)),
  };
  return Object.values(out).some((v) => v !== undefined) ? out : undefined;
}

/** Phase times over the windows' counter differences, with the HTTP layer from the client's mean. */
export function phaseFigures(windows: WindowRecord[], clientMeanMs?: number): PhaseFigures | undefined {
  const deltas = windows.map((w) => w.server?.metrics).filter((m) => m !== undefined);
  if (deltas.length === 0) return undefined;
  const p = phaseTimes(sumDeltas(deltas));
  if (!p) return undefined;
  const http = clientMeanMs !== undefined && Number.isFinite(p.ms.request)
    ? clientMeanMs - p.ms.request
    : undefined;
  return { ...p, ...(http !== undefined ? { httpMs: http } : {}) };
}

/** The server's share of a request's time outside inference, ms (parse, tokenize, serialize). */
export function serverOverheadMs(p: PhaseTimes): number {
  const outside: Phase[] = ["parse", "tokenize", "serialize"];
  return sum(outside.map((k) => p.ms[k]).filter(Number.isFinite));
}

/**
 * What a million embeddings cost at this throughput: the instance's price per hour times the
 * server cpuset's share of its CPUs (the rest can serve other replicas), over embeddings per hour.
 */
export function costPerMillion(pricePerHour: number, cpuShare: number, embeddingsPerSecond: number): number {
  return embeddingsPerSecond > 0 ? (pricePerHour * cpuShare) / (embeddingsPerSecond * 3600) * 1e6 : NaN;
}

/** A cell's resources from its measured windows (every pass) and its passes' memory readings. */
export function cellResources(
  windows: WindowRecord[],
  memory: PassMemory[],
  c: ResourceContext,
): CellResources {
  const out: CellResources = {};
  const cpu = cpuFigures(windows, c);
  if (cpu) out.cpu = cpu;
  const mem = memoryFigures(memory);
  if (mem) out.memory = mem;
  const phases = phaseFigures(windows, c.clientMeanMs);
  if (phases) out.phases = phases;
  const embeddingsPerSecond = c.throughputRps * c.batchSize;
  if (c.flopsPerSequence !== undefined && c.throughputRps > 0) {
    const flopsPerRequest = c.flopsPerSequence * c.batchSize;
    const gflops = (c.throughputRps * flopsPerRequest) / 1e9;
    out.efficiency = {
      flopsPerRequest,
      gflops,
      ...(c.peakGflops! > 0
        ? { peakGflops: c.peakGflops, percentOfPeak: (gflops / c.peakGflops!) * 100 }
        : {}),
    };
  }
  if (c.pricePerHour !== undefined && c.cpuShare !== undefined && embeddingsPerSecond > 0) {
    out.costPerMillion = costPerMillion(c.pricePerHour, c.cpuShare, embeddingsPerSecond);
  }
  return out;
}
