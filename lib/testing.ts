/** Helpers for tests that need the real Docker engine and the contract-shaped test server image. */
import { fileURLToPath as fromFileUrl } from "node:url";
import { DockerEngine } from "./docker.ts";

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
  const engine = new DockerEngine();
  if (await engine.imageId(TEST_IMAGE)) return;
  const { ensureBaseImage } = await import("./build.ts");
  await ensureBaseImage();
  const dockerDir = fromFileUrl(new URL("../docker", import.meta.url));
  const out = await new Deno.Command("docker", {
    args: [
      "build",
      "-q",
      "--network",
      "host",
      "-f",
      `${dockerDir}/testserver/Dockerfile`,
      "-t",
      TEST_IMAGE,
      dockerDir,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`Cannot build ${TEST_IMAGE}: ${new TextDecoder().decode(out.stderr)}`);
}

/** In CI a missing Docker engine is a failure, not a reason to skip. */
export const REQUIRE_DOCKER = Deno.env.get("CI") === "true";
