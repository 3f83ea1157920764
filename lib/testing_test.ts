import { equal, ok } from "node:assert/strict";
import { DockerEngine } from "./engine/docker.ts";
import type { RunningServer } from "./server/server.ts";
import { dockerAvailable, ensureTestImage, REQUIRE_DOCKER, startTestServer } from "./testing.ts";

const noDocker = !REQUIRE_DOCKER && !(await dockerAvailable());

/** Runs `fn` against a test server container started with `env`, then removes the container. */
async function withTestServer(env: Record<string, string>, fn: (s: RunningServer) => Promise<void>) {
  const server = await startTestServer(env);
  try {
    await fn(server);
  } finally {
    await new DockerEngine().remove(server.containerId);
  }
}

/** POSTs one body; the server's own x-total-time (ms), the wall time (ms) and the Connection header. */
async function embed(baseUrl: string, body: string) {
  const t0 = performance.now();
  const r = await fetch(`${baseUrl}/embed`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  await r.text();
  equal(r.status, 200);
  return {
    serverMs: Number(r.headers.get("x-total-time")),
    wallMs: performance.now() - t0,
    connection: r.headers.get("connection"),
  };
}

Deno.test({
  name: "ensureTestImage() returns the content-hash tag of docker/testserver as it is now",
  ignore: noDocker,
  async fn() {
    const tag = await ensureTestImage();
    ok(/^embbench\/testserver:[0-9a-f]{12}$/.test(tag), tag);
    ok(await new DockerEngine().imageId(tag), `${tag} was not built`);
  },
});

Deno.test({
  name: "startTestServer(): SERVICE_MS with every SLOW_EVERY-th request SLOW_FACTOR times slower",
  ignore: noDocker,
  async fn() {
    await withTestServer({ SERVICE_MS: "20", SLOW_EVERY: "4", SLOW_FACTOR: "3" }, async (s) => {
      equal(s.info.framework, "testserver");
      const times: number[] = [];
      for (let i = 0; i < 8; i++) times.push((await embed(s.baseUrl, `{"inputs": "t${i}"}`)).serverMs);
      times.forEach((ms, i) => {
        const expected = (i + 1) % 4 === 0 ? 60 : 20;
        ok(ms >= expected && ms < expected + 10, `request ${i + 1}: ${ms} ms, expected about ${expected}`);
      });
    });
  },
});

Deno.test({
  name: "startTestServer(): WORKERS=1 serves one request at a time; CACHE=1 answers a repeated body at once",
  ignore: noDocker,
  async fn() {
    await withTestServer({ SERVICE_MS: "50", WORKERS: "1", CACHE: "1" }, async (s) => {
      const t0 = performance.now();
      const answers = await Promise.all(
        Array.from({ length: 6 }, (_, i) => embed(s.baseUrl, `{"inputs": "text ${i}"}`)),
      );
      const wall = performance.now() - t0;
      ok(wall >= 6 * 50, `6 concurrent requests of 50 ms with one worker took ${wall.toFixed(0)} ms`);
      // Queued requests wait for the worker: the last one admitted waited about five services.
      ok(Math.max(...answers.map((a) => a.serverMs)) >= 5 * 50);
      const repeated = await embed(s.baseUrl, `{"inputs": "text 0"}`);
      ok(repeated.serverMs < 5, `a cached body took ${repeated.serverMs} ms`);
      const fresh = await embed(s.baseUrl, `{"inputs": "text 6"}`);
      ok(fresh.serverMs >= 50, `an unseen body took ${fresh.serverMs} ms`);
    });
  },
});

Deno.test({
  name: "startTestServer(): KEEPALIVE=0 answers Connection: close",
  ignore: noDocker,
  async fn() {
    await withTestServer({ KEEPALIVE: "0" }, async (s) => {
      equal((await embed(s.baseUrl, `{"inputs": "a"}`)).connection, "close");
    });
    await withTestServer({}, async (s) => {
      equal((await embed(s.baseUrl, `{"inputs": "a"}`)).connection, null);
    });
  },
});
