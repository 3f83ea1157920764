/** Expands a benchmark config into the cells a run measures. */
import type { BenchmarkConfig, ModelsFile } from "./config.ts";

/** One measurement: a model served by a framework under one load shape. */
export interface Cell {
  /** Stable id, also the cell file's name: <model>__<framework>__<scenario>__seq<L>[__c<N>]. */
  id: string;
  model: string;
  framework: string;
  scenario: string;
  sequenceLength: number;
  batchSize: number;
  concurrency: number;
  numRequests: number;
  /** True for the concurrency sweep's cells. */
  sweep: boolean;
}

/** The cell id used for file names and resume. */
export function cellId(c: Omit<Cell, "id" | "numRequests" | "batchSize">): string {
  return `${c.model}__${c.framework}__${c.scenario}__seq${c.sequenceLength}${
    c.sweep ? `__c${c.concurrency}` : ""
  }`;
}

/**
 * Every cell, grouped by model then framework (a framework's container stays up across its cells).
 * Sequence lengths above a model's max_seq_length are skipped.
 */
export function planCells(
  config: BenchmarkConfig,
  models: ModelsFile,
  frameworks = config.frameworks,
): Cell[] {
  const cells: Cell[] = [];
  for (const model of config.active_models) {
    const spec = models.models[model];
    const lengths = config.input.sequence_lengths.filter((l) => !spec || l <= spec.max_seq_length);
    for (const framework of frameworks) {
      for (const seq of lengths) {
        for (const s of config.scenarios) {
          const base = {
            model,
            framework,
            scenario: s.name,
            sequenceLength: seq,
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
            scenario: "sweep",
            sequenceLength: seq,
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
      }
    }
  }
  return cells;
}
