/**
 * The servers' phase counters (GET /metrics, docker/CONTRACT.md): read before and after each
 * measured window, differenced, and turned into the mean time a request spends in each phase.
 */

/** The counters of docker/CONTRACT.md, without the `embbench_` prefix and `_total` suffix. */
export const PHASES = ["parse", "tokenize", "queue", "inference", "serialize"] as const;
export type Phase = (typeof PHASES)[number];

/** A /metrics reading: every sample by its name with labels ("embbench_batch_size_bucket{le=\"4\"}"). */
export type MetricsReading = Record<string, number>;

/**
 * Parses the Prometheus text exposition format 0.0.4: comments and blank lines are skipped, each
 * sample line is `name{labels} value [timestamp]`. A line that is none of these is an error naming it.
 */
export function parsePrometheus(text: string): MetricsReading {
  const out: MetricsReading = {};
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
    const value = m ? Number(m[2] === "+Inf" ? Infinity : m[2] === "-Inf" ? -Infinity : m[2]) : NaN;
    if (!m || (Number.isNaN(value) && m[2] !== "NaN")) {
      throw new Error(
        `/metrics line ${i + 1} is not a Prometheus sample: ${JSON.stringify(line.slice(0, 80))}`,
      );
    }
    out[m[1]!.replace(/\s+/g, "")] = value;
  });
  return out;
}

/** Reads a server's /metrics; undefined when it has none or answers something unreadable. */
export async function readMetrics(baseUrl: string): Promise<MetricsReading | undefined> {
  try {
    const r = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await r.text();
    return r.status === 200 ? parsePrometheus(text) : undefined;
  } catch {
    return undefined;
  }
}

/** after − before for every sample both have. */
export function metricsDelta(before: MetricsReading, after: MetricsReading): MetricsReading {
  const out: MetricsReading = {};
  for (const [k, v] of Object.entries(after)) {
    const b = before[k];
    if (b !== undefined) out[k] = v - b;
  }
  return out;
}

/** Sums window deltas. */
export function sumDeltas(deltas: MetricsReading[]): MetricsReading {
  const out: MetricsReading = {};
  for (const d of deltas) for (const [k, v] of Object.entries(d)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** Where a request's server time went, mean milliseconds per request, over the counted requests. */
export interface PhaseTimes {
  /** /embed requests answered 200 that the counters cover. */
  requests: number;
  /** Per phase (docker/CONTRACT.md), and `request`: the server's whole time. */
  ms: Record<Phase | "request", number>;
  /** Inputs per inference the server ran (its batches). */
  meanBatch?: number;
}

/** Mean phase times from a counters' difference; undefined when no request was counted. */
export function phaseTimes(delta: MetricsReading): PhaseTimes | undefined {
  const requests = delta["embbench_requests_total"];
  if (!(requests! > 0)) return undefined;
  const mean = (name: string) => {
    const s = delta[`embbench_${name}_seconds_total`];
    return s === undefined ? NaN : (s / requests!) * 1000;
  };
  const ms = Object.fromEntries(
    [...PHASES, "request" as const].map((p) => [p, mean(p)]),
  ) as PhaseTimes["ms"];
  const batches = delta["embbench_batch_size_count"];
  const inputs = delta["embbench_batch_size_sum"];
  return { requests: requests!, ms, ...(batches! > 0 ? { meanBatch: inputs! / batches! } : {}) };
}
