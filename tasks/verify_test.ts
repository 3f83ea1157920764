import { equal, rejects } from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../lib/config/config.ts";
import type { ContainerEngine } from "../lib/engine/docker.ts";
import { sha256Hex } from "../lib/fs.ts";
import { SUITE_VERSION } from "../lib/server/conformance.ts";
import { verifyGate, type VerifyRecord } from "./verify.ts";

/** An engine that knows one image and refuses to start anything: a gate that verifies again says so. */
const engine = new Proxy({} as ContainerEngine, {
  get: (_, method) =>
    method === "imageId" ? () => Promise.resolve("sha256:image") : () => {
      throw new Error(`verify started again (engine.${String(method)})`);
    },
});

Deno.test("verifyGate() trusts a passed record of this suite, and verifies again after the suite grew", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const { config } = await loadConfig(join(root, "models.yaml"), join(root, "benchmark_config.yaml"));
  const dir = await Deno.makeTempDir();
  try {
    const modelsDir = join(dir, "models");
    await Deno.mkdir(join(modelsDir, "tiny"), { recursive: true });
    await Deno.writeTextFile(join(modelsDir, "tiny", "manifest.json"), "{}");
    const record: VerifyRecord = {
      framework: "onnxruntime",
      model: "tiny",
      image: "embbench/onnxruntime:latest",
      imageId: "sha256:image",
      modelManifest: await sha256Hex(new TextEncoder().encode("{}")),
      serving: [...config.serving],
      suite: SUITE_VERSION,
      ok: true,
      checks: [],
      at: new Date().toISOString(),
    };
    const save = (r: VerifyRecord) => {
      Deno.mkdirSync(join(dir, "verify"), { recursive: true });
      Deno.writeTextFileSync(join(dir, "verify", "onnxruntime__tiny.json"), JSON.stringify(r));
    };
    const gate = () =>
      verifyGate({
        engine,
        framework: "onnxruntime",
        model: "tiny",
        modelsDir,
        results: dir,
        config,
        serverCpus: "0",
      });
    save(record);
    equal(await gate(), undefined);
    const { suite: _, ...older } = record;
    save(older);
    await rejects(gate(), /verify started again/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
