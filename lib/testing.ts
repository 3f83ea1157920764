/** Helpers for tests that need the real Docker engine and the contract-shaped test server image. */
import { join } from "node:path";
import { buildImage, contentHash, DEFAULT_BASE_IMAGE, DOCKER_DIR, ensureBaseImage } from "./engine/build.ts";
import { DockerEngine } from "./engine/docker.ts";
import { type RunningServer, startServer } from "./server/server.ts";

/**
 * The test server image (docker/testserver): a fixture, not a framework. `:latest` is whatever was
 * built last, possibly from another checkout; ensureTestImage() returns the tag of this checkout's.
 */
export const TEST_IMAGE = "embbench/testserver:latest";

/** True when a Docker engine answers; tests that need one are ignored otherwise (outside CI). */
export async function dockerAvailable(): Promise<boolean> {
  try {
    await new DockerEngine().serverVersion();
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds the test server image unless an image of docker/testserver's current content exists (the
 * content-hash tag buildImage gives), so an edited server.py is rebuilt; seconds with the layer cache.
 * Returns that tag.
 */
export async function ensureTestImage(): Promise<string> {
  const tag = `embbench/testserver:${await contentHash("testserver", { BASE_IMAGE: DEFAULT_BASE_IMAGE })}`;
  if (await new DockerEngine().imageId(tag)) return tag;
  await ensureBaseImage();
  return (await buildImage("testserver", { baseImage: DEFAULT_BASE_IMAGE, logDir: await Deno.makeTempDir() }))
    .tag;
}

/**
 * Starts the test server image (built first if docker/testserver changed) on the real Docker engine,
 * pinned to `cpuset`, with `env` (SERVICE_MS, SLOW_EVERY, WORKERS, KEEPALIVE, CACHE, ...: see
 * docker/testserver/server.py), and waits until /health answers 200. The caller removes the
 * container: `await new DockerEngine().remove(server.containerId)`.
 */
export async function startTestServer(env: Record<string, string>, cpuset = "0"): Promise<RunningServer> {
  const image = await ensureTestImage();
  return await startServer(new DockerEngine(), {
    framework: "testserver",
    image,
    // The server reads no model: any existing folder will do for the read-only /model mount.
    modelDir: join(DOCKER_DIR, "testserver"),
    cpuset,
    memoryBytes: 256 * 1024 * 1024,
    maxBatch: 64,
    maxInflight: 1,
    healthTimeoutS: 30,
    runId: `test-${crypto.randomUUID().slice(0, 8)}`,
    env,
  });
}

/** Runs `embbench <args>` (main.ts under the current Deno) and returns its exit code and output. */
export async function runCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const main = new URL("../main.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", main, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** In CI a missing Docker engine is a failure, not a reason to skip. */
export const REQUIRE_DOCKER = Deno.env.get("CI") === "true";
