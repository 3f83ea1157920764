/** Helpers for tests that need the real Docker engine and the contract-shaped test server image. */
import { buildImage, DEFAULT_BASE_IMAGE, ensureBaseImage } from "./engine/build.ts";
import { DockerEngine } from "./engine/docker.ts";

/** The test server image (docker/testserver): a fixture, not a framework. */
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

/** Builds the test server image if it is missing (seconds with the layer cache). */
export async function ensureTestImage(): Promise<void> {
  if (await new DockerEngine().imageId(TEST_IMAGE)) return;
  await ensureBaseImage();
  await buildImage("testserver", { baseImage: DEFAULT_BASE_IMAGE, logDir: await Deno.makeTempDir() });
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
