/** What every command receives: the global flags, resolved. */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

/** Global flags shared by every command. */
export interface GlobalOptions {
  models: string;
  config: string;
  results: string;
  quick: boolean;
}

/** Where the modules are: the checkout under `deno run`, a read-only temporary folder in a compiled binary. */
const MODULE_ROOT = resolve(new URL(".", import.meta.url).pathname, "..");

/**
 * The repository root (where main.ts, models.yaml and docker/ live): defaults resolve against it.
 * A `deno compile` binary (embbench-bin) sits in the checkout, so there it is the binary's folder.
 */
export const REPO_ROOT = existsSync(join(MODULE_ROOT, "models.yaml"))
  ? MODULE_ROOT
  : dirname(Deno.execPath());

/** Default global options: the committed files next to main.ts. */
export function defaultOptions(): GlobalOptions {
  return {
    models: resolve(REPO_ROOT, "models.yaml"),
    config: resolve(REPO_ROOT, "benchmark_config.yaml"),
    results: resolve(REPO_ROOT, "results"),
    quick: false,
  };
}
