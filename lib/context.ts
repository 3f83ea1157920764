/** What every command receives: the global flags, resolved. */
import { resolve } from "node:path";

/** Global flags shared by every command. */
export interface GlobalOptions {
  models: string;
  config: string;
  results: string;
  quick: boolean;
}

/** The repository root (where main.ts lives): defaults resolve against it. */
export const REPO_ROOT = resolve(new URL(".", import.meta.url).pathname, "..");

/** Default global options: the committed files next to main.ts. */
export function defaultOptions(): GlobalOptions {
  return {
    models: resolve(REPO_ROOT, "models.yaml"),
    config: resolve(REPO_ROOT, "benchmark_config.yaml"),
    results: resolve(REPO_ROOT, "results"),
    quick: false,
  };
}
