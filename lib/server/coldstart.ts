/**
 * The true cold first request: fresh containers started with WARMUP=0 (no warm-up inference), the
 * model's files out of the page cache, then the first /embed they ever answer and the one after it.
 */
import type { ContainerEngine } from "../engine/docker.ts";
import { type ServerOptions, startServer, timedEmbed } from "./server.ts";
import { type ColdStart, type ColdStartSummary, summarizeColdStarts } from "./startup.ts";

/** Starts the server `starts` times with WARMUP=0; each container is removed before the next starts. */
export async function measureColdStarts(
  engine: ContainerEngine,
  o: ServerOptions,
  model: string,
  body: string,
  starts: number,
  signal?: AbortSignal,
): Promise<ColdStartSummary> {
  const out: ColdStart[] = [];
  for (let i = 0; i < starts && !signal?.aborted; i++) {
    const s = await startServer(engine, { ...o, env: { ...o.env, WARMUP: "0" } });
    try {
      const firstRequestMs = await timedEmbed(s.baseUrl, body);
      const secondRequestMs = await timedEmbed(s.baseUrl, body);
      out.push({ phases: s.startup, firstRequestMs, secondRequestMs, loadPeakBytes: s.loadPeakBytes });
    } finally {
      await engine.remove(s.containerId);
    }
  }
  return summarizeColdStarts(o.framework, model, out);
}
