/** `embbench build [framework...]`: builds the framework images (and the conversion image on request). */
import { join } from "node:path";
import {
  baseWithCertificates,
  buildImage,
  type BuildResult,
  DEFAULT_BASE_IMAGE,
  ensureBaseImage,
} from "../lib/engine/build.ts";
import { closest, loadConfig } from "../lib/config/config.ts";
import type { GlobalOptions } from "../lib/context.ts";
import { DockerEngine } from "../lib/engine/docker.ts";
import { UsageError } from "../lib/errors.ts";
import { FRAMEWORK_IDS, TOOL_IMAGES } from "../lib/frameworks.ts";
import { log } from "../lib/log.ts";

const BUILDABLE: string[] = [...FRAMEWORK_IDS, ...TOOL_IMAGES, "testserver"];

/** Builds the named images in order; stops at the first failure (its log tail is in the error). */
export async function buildAll(
  names: string[],
  opts: { baseImage?: string; noCache?: boolean; logDir: string },
): Promise<BuildResult[]> {
  await new DockerEngine().serverVersion();
  const requested = opts.baseImage ?? DEFAULT_BASE_IMAGE;
  await ensureBaseImage(requested);
  const baseImage = await baseWithCertificates(requested, opts.logDir);
  const results: BuildResult[] = [];
  for (const name of names) {
    log.info(`building ${name}`);
    const r = await buildImage(name, { baseImage, noCache: opts.noCache, logDir: opts.logDir });
    log.info(
      `built ${r.tag} in ${
        r.seconds.toFixed(1)
      } s (${r.cachedSteps} cached of ${r.steps} steps); log: ${r.logFile}`,
    );
    results.push(r);
  }
  return results;
}

export async function run(
  opts: GlobalOptions,
  args: string[],
  flags: { baseImage?: string; cache?: boolean },
): Promise<number> {
  for (const a of args) {
    if (!BUILDABLE.includes(a)) {
      const s = closest(a, BUILDABLE);
      throw new UsageError(
        `Unknown image "${a}": ${s ? `did you mean "${s}"?` : `expected one of ${BUILDABLE.join(", ")}`}`,
      );
    }
  }
  const names = args.length > 0 ? args : (await loadConfig(opts.models, opts.config)).config.frameworks;
  await buildAll(names, {
    baseImage: flags.baseImage,
    noCache: flags.cache === false,
    logDir: join(opts.results, "logs"),
  });
  return 0;
}
