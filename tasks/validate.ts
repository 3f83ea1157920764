/** `embbench validate`: checks both configuration files against the schema and this host. */
import { applyQuick, loadConfig, topologyWarnings } from "../lib/config/config.ts";
import type { GlobalOptions } from "../lib/context.ts";
import { readTopology } from "../lib/config/cpuset.ts";
import { log, output } from "../lib/log.ts";
import { planCells } from "../lib/config/plan.ts";

export async function run(opts: GlobalOptions, _args: string[], flags: { json?: boolean }): Promise<number> {
  const topology = readTopology();
  const loaded = await loadConfig(opts.models, opts.config, { topology });
  const config = opts.quick ? applyQuick(loaded.config) : loaded.config;
  for (const w of topologyWarnings(config, topology)) log.warn(w);
  const cells = planCells(config, loaded.models);
  if (flags.json) {
    output(JSON.stringify({ models: loaded.models.models, config, cells: cells.length }, null, 2));
  }
  log.info(
    `${loaded.modelsFile.name} and ${loaded.configFile.name} are valid: ${
      Object.keys(loaded.models.models).length
    } models, ${config.active_models.length} active, ${config.frameworks.length} frameworks, ${cells.length} cells${
      opts.quick ? " (--quick)" : ""
    }`,
  );
  return 0;
}
