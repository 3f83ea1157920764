/** Expands a benchmark config into the cells a run measures. */
import type { BenchmarkConfig, ModelsFile } from "./config.ts";
import { serverId, type ServingMode } from "../frameworks.ts";

/** One measurement: a model served by a framework under one load shape. */
export interface Cell {
  /**
   * Stable id, also the cell file's name: <model>__<server>__<scenario>__seq<L>[_<prompt>][__c<N>|__f<P>],
   * the server being the framework id, plus "+batched" in batched mode (lib/frameworks.ts serverId),
   * and the prompt when the cell measures one.
   */
  id: string;
  model: string;
  framework: string;
  /** How the server admits requests to inference (absent in runs made before modes existed: sequential). */
  serving: ServingMode;
  scenario: string;
  sequenceLength: number;
  batchSize: number;
  concurrency: number;
  numRequests: number;
  /** True for the concurrency sweep's cells. */
  sweep: boolean;
  /** The prompt the texts are sent with (config input.prompt_name); absent: documents without a prompt. */
  promptName?: string;
  /**
   * Open-loop cells (scenario "rate"): the offered load as a fraction of the framework's measured
   * closed-loop capacity; `concurrency` is then the connections oha may hold.
   */
  rateFraction?: number;
}

/** The cell id used for file names and resume. */
export function cellId(
  c: Omit<Cell, "id" | "numRequests" | "batchSize" | "serving"> & { serving?: ServingMode },
): string {
  const suffix = c.rateFraction !== undefined
    ? `__f${Math.round(c.rateFraction * 100)}`
    : c.sweep
    ? `__c${c.concurrency}`
    : "";
  const seq = `seq${c.sequenceLength}${c.promptName === undefined ? "" : `_${c.promptName}`}`;
  return `${c.model}__${serverId(c.framework, c.serving)}__${c.scenario}__${seq}${suffix}`;
}

/** The scenario name of open-loop cells. */
export const RATE_SCENARIO = "rate";

/**
 * Every cell, grouped by model, framework and serving mode (one container serves such a block).
 * Sequence lengths above a model's max_seq_length are skipped. Open-loop cells come after the
 * closed-loop cells of their sequence length, whose throughput sets their rate.
 */
export function planCells(
  config: BenchmarkConfig,
  models: ModelsFile,
  frameworks = config.frameworks,
): Cell[] {
  const cells: Cell[] = [];
  const prompt = config.input.prompt_name === undefined ? {} : { promptName: config.input.prompt_name };
  for (const model of config.active_models) {
    const spec = models.models[model];
    const lengths = config.input.sequence_lengths.filter((l) => !spec || l <= spec.max_seq_length);
    for (const framework of frameworks) {
      for (const serving of config.serving) {
        for (const seq of lengths) {
          for (const s of config.scenarios) {
            const base = {
              model,
              framework,
              serving,
              scenario: s.name,
              sequenceLength: seq,
              ...prompt,
              concurrency: s.concurrency,
              sweep: false,
            };
            cells.push({ ...base, id: cellId(base), batchSize: s.batch_size, numRequests: s.num_requests });
          }
          const sweep = config.concurrency_sweep;
          for (const level of sweep?.levels ?? []) {
            const base = {
              model,
              framework,
              serving,
              scenario: "sweep",
              sequenceLength: seq,
              ...prompt,
              concurrency: level,
              sweep: true,
            };
            cells.push({
              ...base,
              id: cellId(base),
              batchSize: sweep!.batch_size,
              numRequests: sweep!.num_requests,
            });
          }
          for (const fraction of config.open_loop?.fractions ?? []) {
            const base = {
              model,
              framework,
              serving,
              scenario: RATE_SCENARIO,
              sequenceLength: seq,
              ...prompt,
              concurrency: config.open_loop!.connections,
              sweep: false,
              rateFraction: fraction,
            };
            cells.push({
              ...base,
              id: cellId(base),
              batchSize: 1,
              numRequests: config.open_loop!.num_requests,
            });
          }
        }
      }
    }
  }
  return cells;
}
