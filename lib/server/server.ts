/**
 * One framework container's lifecycle: start pinned to the server cpuset with the model mounted
 * read-only, wait for /health, read /info, measure the cold first request, stop (the runner warms
 * each cell up with oha at its own load).
 */
import { parseCpuset } from "../config/cpuset.ts";
import { RunError } from "../errors.ts";
import type { ContainerEngine } from "../engine/docker.ts";
import { memoryPeakBytes } from "../engine/cgroup.ts";
import { type Eviction, evictPageCache } from "../engine/memory.ts";
import { type StartupPhases, startupPhases } from "./startup.ts";

/** The container label every embbench container carries, with the run id as value. */
export const RUN_LABEL = "embbench.run";

/** How to start one framework server. */
export interface ServerOptions {
  framework: string;
  image: string;
  /** Host folder of the converted model; mounted read-only at /model. */
  modelDir: string;
  cpuset: string;
  memoryBytes: number;
  maxBatch: number;
  maxInflight: number;
  healthTimeoutS: number;
  runId: string;
  /** NUM_THREADS (default: the cpuset's size). */
  threads?: number;
  /** Extra environment (e.g. LOAD_DELAY_MS for verify). */
  env?: Record<string, string>;
}

/** A running framework server. */
export interface RunningServer {
  containerId: string;
  baseUrl: string;
  port: number;
  /** Container start to the first 200 from /health, ms. */
  loadTimeMs: number;
  /** /info's answer. */
  info: Record<string, unknown>;
  /** Whether /health answered 503 before 200 (verify starts servers with LOAD_DELAY_MS to see it). */
  saw503: boolean;
  /** Container creation to healthy, split by the server's own /info startup stamps. */
  startup: StartupPhases;
  /** The cgroup's memory peak from creation to healthy (model load and warm-up), bytes; undefined when unreadable. */
  loadPeakBytes?: number;
  /** The model's files dropped from the page cache before the container started. */
  eviction: Eviction;
}

/** Counts the CPUs of a cpuset string. */
export function cpusetSize(cpuset: string): number {
  return parseCpuset(cpuset).length;
}

/** A free TCP port on 127.0.0.1 (the container binds it on the host network). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a health poll observed, for verify's 503-then-200 check. */
export interface HealthObservation {
  saw503: boolean;
  healthyAfterMs: number;
}

/**
 * Polls /health until 200. Connection refusals are expected until the server binds; the container
 * exiting or the timeout ends the wait with a RunError carrying the container's last log lines.
 */
export async function waitHealthy(
  engine: ContainerEngine,
  containerId: string,
  baseUrl: string,
  timeoutS: number,
  started = performance.now(),
): Promise<HealthObservation> {
  let saw503 = false;
  let polls = 0;
  while (performance.now() - started < timeoutS * 1000) {
    try {
      const r = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(2000) });
      await r.body?.cancel();
      if (r.status === 200) return { saw503, healthyAfterMs: performance.now() - started };
      if (r.status === 503) saw503 = true;
    } catch {
      // not listening yet
    }
    if (++polls % 10 === 0) {
      const st = await engine.state(containerId);
      if (!st.running) {
        const logs = await engine.logs(containerId, 30);
        throw new RunError(
          `container exited with code ${st.exitCode}${
            st.oomKilled ? " (OOM killed)" : ""
          } before /health answered 200; last log lines:\n${logs}`,
        );
      }
    }
    await sleep(polls < 50 ? 20 : 200);
  }
  const logs = await engine.logs(containerId, 30);
  throw new RunError(`/health did not answer 200 within ${timeoutS} s; last log lines:\n${logs}`);
}

/** Starts a framework container and waits until it is healthy. The caller removes it. */
export async function startServer(engine: ContainerEngine, o: ServerOptions): Promise<RunningServer> {
  const port = freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  // Mapped weights must be charged to the container that maps them, and its load must read them:
  // drop them from the page cache an earlier container filled.
  const eviction = await evictPageCache(o.modelDir);
  const started = performance.now();
  const id = await engine.start({
    image: o.image,
    name: `embbench-${o.framework}-${o.runId}-${port}`.replace(/[^a-zA-Z0-9_.-]/g, "-"),
    env: {
      MODEL_DIR: "/model",
      HOST: "127.0.0.1",
      PORT: String(port),
      NUM_THREADS: String(o.threads ?? cpusetSize(o.cpuset)),
      MAX_BATCH: String(o.maxBatch),
      MAX_INFLIGHT: String(o.maxInflight),
      ...o.env,
    },
    cpuset: o.cpuset,
    memoryBytes: o.memoryBytes,
    mounts: [{ host: o.modelDir, container: "/model", readOnly: true }],
    labels: { [RUN_LABEL]: o.runId, "embbench.framework": o.framework },
  });
  try {
    const health = await waitHealthy(engine, id, baseUrl, o.healthTimeoutS, started);
    const loadPeakBytes = memoryPeakBytes(id);
    const asked = performance.now();
    const info = await (await fetch(`${baseUrl}/info`)).json() as Record<string, unknown>;
    const answered = performance.now();
    return {
      containerId: id,
      baseUrl,
      port,
      loadTimeMs: health.healthyAfterMs,
      info,
      saw503: health.saw503,
      startup: startupPhases(info.startup, {
        createdAtMs: started,
        infoAtMs: (asked + answered) / 2,
        healthyMs: health.healthyAfterMs,
      }),
      loadPeakBytes,
      eviction,
    };
  } catch (e) {
    await engine.remove(id);
    throw e;
  }
}

/** POSTs one body to /embed and returns the wall time in ms; a non-200 answer is a RunError. */
export async function timedEmbed(baseUrl: string, body: string): Promise<number> {
  const t0 = performance.now();
  const r = await fetch(`${baseUrl}/embed`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  const text = await r.text();
  const ms = performance.now() - t0;
  if (r.status !== 200) throw new RunError(`POST /embed answered ${r.status}: ${text.slice(0, 300)}`);
  return ms;
}
