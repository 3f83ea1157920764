/**
 * Recommendations: for each model and sequence length, the framework to pick when latency,
 * throughput, memory or cost matters, its margin over the runner-up, and whether the lead is
 * significant where the harness has a test for it (latency and throughput, lib/stats/verdicts.ts:
 * one Holm correction over the recommendations' tests). Memory and cost are not tested. Then the
 * caveats that bound every pick. Nothing is measured here.
 */
import type { CellResult, RunInfo } from "../lib/results/results.ts";
import { type CellSample, FAMILY_ALPHA } from "../lib/stats/verdicts.ts";
import { type Block, type Cell, finite, fmt } from "./document.ts";
import { costOf, money, preferredCell } from "./resources.ts";
import {
  type Entry,
  frameworkOrder,
  frameworkStyle,
  type Metric,
  METRICS,
  rank,
  testText,
  testVerdicts,
  type Verdict,
} from "./summary.ts";

/** What a reader may care most about. */
export const NEEDS = ["latency", "throughput", "memory", "cost"] as const;
export type Need = (typeof NEEDS)[number];

/** The figure each need is ranked by. */
export function needMetric(need: Need, currency = "?"): Metric {
  switch (need) {
    case "latency":
      return METRICS.p50;
    case "throughput":
      return METRICS.texts;
    case "memory":
      return METRICS.rss;
    case "cost":
      return {
        id: "cost",
        label: "cost per 1M embeddings",
        unit: currency,
        lowerIsBetter: true,
        digits: 3,
        value: (c) => c.resources?.costPerMillion,
      };
  }
}

/** One need's pick: the ranking (leader first), its margin and test; or why there is none. */
export interface Pick {
  need: Need;
  verdict?: Verdict;
  /** Why no framework is picked (no framework has the figure). */
  none?: string;
}

/** The picks for one model and sequence length. */
export interface RecommendationRow {
  model: string;
  sequenceLength: number;
  /** The frameworks with ok closed-loop cells there. */
  frameworks: string[];
  picks: Pick[];
}

export interface Recommendations {
  rows: RecommendationRow[];
  /** Models or sequence lengths without a recommendation, and why. */
  skipped: string[];
  /** Every cell a pick refers to, by id. */
  cells: Map<string, CellResult>;
}

const entry = (metric: Metric, c: CellResult | undefined): Entry | undefined => {
  const value = c && metric.value(c);
  return c && finite(value)
    ? { framework: c.framework, value, concurrency: c.concurrency, cellId: c.id }
    : undefined;
};

const best = (metric: Metric, cells: CellResult[], lowerIsBetter = metric.lowerIsBetter) =>
  cells.filter((c) => finite(metric.value(c))).sort((a, b) =>
    lowerIsBetter ? metric.value(a)! - metric.value(b)! : metric.value(b)! - metric.value(a)!
  )[0];

/**
 * The picks. Per model and sequence length, over the frameworks with ok closed-loop cells there:
 * latency is the lowest p50 at concurrency 1, batch 1 (of two such cells, the one with more
 * requests); throughput the highest texts/s over the batch-1 closed-loop cells, each framework at
 * its best concurrency; memory the lowest steady PSS, each framework at its highest over all its ok
 * cells of the model; cost the lowest cost per million embeddings over all closed-loop cells, any
 * batch size. A model with fewer than two frameworks with ok cells gets no recommendation.
 */
export function recommend(
  cells: CellResult[],
  samples: Map<string, CellSample> = new Map(),
  currency = "?",
): Recommendations {
  const ok = cells.filter((c) => c.status === "ok");
  const closed = ok.filter((c) => c.rateFraction === undefined);
  const rows: RecommendationRow[] = [];
  const skipped: string[] = [];
  const byId = new Map(cells.map((c) => [c.id, c]));
  for (const model of [...new Set(cells.map((c) => c.model))].sort()) {
    const withOk = frameworkOrder(ok.filter((c) => c.model === model).map((c) => c.framework));
    if (withOk.length < 2) {
      skipped.push(
        `${model}: ${
          withOk.length ? `only ${frameworkStyle(withOk[0]!).label} has` : "no framework has"
        } ok cells, so there is nothing to choose between.`,
      );
      continue;
    }
    const mine = closed.filter((c) => c.model === model);
    for (const seq of [...new Set(mine.map((c) => c.sequenceLength))].sort((a, b) => a - b)) {
      const here = mine.filter((c) => c.sequenceLength === seq);
      const fws = frameworkOrder(here.map((c) => c.framework));
      if (fws.length < 2) {
        skipped.push(
          `${model}, ${seq} tokens: only ${
            frameworkStyle(fws[0]!).label
          } has ok closed-loop cells, so there is nothing to choose between.`,
        );
        continue;
      }
      const picks = NEEDS.map((need): Pick => {
        const metric = needMetric(need, currency);
        const entries = fws.map((f) => {
          const own = here.filter((c) => c.framework === f);
          switch (need) {
            case "latency":
              return entry(
                metric,
                preferredCell(own.filter((c) => c.concurrency === 1 && c.batchSize === 1)),
              );
            case "throughput":
              return entry(metric, best(metric, own.filter((c) => c.batchSize === 1)));
            case "memory":
              // The framework's highest over every ok cell of the model: what it needs to serve them all.
              return entry(
                metric,
                best(metric, ok.filter((c) => c.model === model && c.framework === f), false),
              );
            case "cost":
              return entry(metric, best(metric, own));
          }
        }).filter((e): e is Entry => !!e);
        if (!entries.length) return { need, none: NO_FIGURE[need] };
        return { need, verdict: rank(metric, entries) };
      });
      rows.push({ model, sequenceLength: seq, frameworks: fws, picks });
    }
  }
  testVerdicts(rows.flatMap((r) => r.picks.flatMap((p) => (p.verdict ? [p.verdict] : []))), samples);
  return { rows, skipped, cells: byId };
}

const NO_FIGURE: Record<Need, string> = {
  latency: "no framework has a batch-1 cell at concurrency 1 with a p50",
  throughput: "no framework has a batch-1 closed-loop cell with a throughput",
  memory: "no framework has a steady memory figure",
  cost: "no framework has a cost figure",
};

const UNTESTED: Record<Need, string> = {
  latency: "",
  throughput: "",
  memory: "not tested (one figure per pass)",
  cost: "not tested (derived from throughput and the price)",
};

/** How a figure of a pick reads, with where it was measured. */
function figureText(need: Need, value: number, c: CellResult | undefined, currency: string): string {
  switch (need) {
    case "latency":
      return `p50 ${fmt(value, 2)} ms${c ? ` (${c.scenario}, c=${c.concurrency})` : ""}`;
    case "throughput":
      return `${fmt(value, 1)} texts/s${c ? ` (c=${c.concurrency}, ${c.scenario})` : ""}`;
    case "memory":
      return `${fmt(value, 0)} MiB steady PSS`;
    case "cost":
      return `${money(value)} ${currency} per 1M${
        c ? ` (batch ${c.batchSize}, c=${c.concurrency}, ${c.scenario})` : ""
      }`;
  }
}

/** A pick as one sentence: the leader and its figure, the margin over the runner-up and the test. */
export function pickText(p: Pick, cells: Map<string, CellResult>, currency = "?"): string {
  if (!p.verdict) return p.none ?? "–";
  const [first, second] = p.verdict.ranking;
  if (!first) return NO_FIGURE[p.need];
  const lead = `${frameworkStyle(first.framework).label}: ${
    figureText(p.need, first.value, cells.get(first.cellId), currency)
  }`;
  if (!second) return `${lead}; the only framework with this figure, nothing to compare`;
  const margin = `${fmt(p.verdict.marginPercent, 1)} % ${
    p.verdict.metric.lowerIsBetter ? "lower" : "higher"
  } than ${frameworkStyle(second.framework).label} with ${
    figureText(p.need, second.value, cells.get(second.cellId), currency)
  }`;
  const test = p.verdict.metric.tested ? testText(p.verdict.test) : UNTESTED[p.need];
  return `${lead}; ${margin}; ${test}`;
}

function pickCell(p: Pick, cells: Map<string, CellResult>, currency: string): Cell {
  const t = p.verdict?.test;
  const leader = p.verdict?.ranking[0];
  return {
    text: pickText(p, cells, currency),
    className: t?.significant === undefined ? undefined : t.significant ? "beyond" : "noise",
    swatch: leader ? frameworkStyle(leader.framework).colour : undefined,
  };
}

/** The caveats that bound every pick, from the run. */
export function caveats(run: RunInfo, cells: CellResult[]): string[] {
  const c = run.config;
  const infos = Object.entries(run.frameworks).map(([f, v]) => ({ f, info: v.info ?? {} }));
  const dtypes = [...new Set(infos.map((i) => i.info.dtype).filter((d) => d !== undefined).map(String))];
  const threads = frameworkOrder(infos.map((i) => i.f)).map((f) => {
    const t = run.frameworks[f]?.info?.threads;
    return `${frameworkStyle(f).label} ${t ?? "?"}`;
  });
  const policy = (c.container as { threads?: string }).threads;
  const out: string[] = [];
  if (run.quick) {
    out.push(
      "This is a --quick run (a small model, short cells): it exercises the pipeline and is not a benchmark result. Do not choose a framework from it.",
    );
  }
  out.push(
    dtypes.length === 1 && /^(float32|fp32)$/i.test(dtypes[0]!)
      ? "fp32 only: every server computes in float32 (its /info dtype). Quantised (int8) or bf16 models, which change speed, memory and cost, were not measured."
      : `Precision: the servers' /info dtype is ${
        dtypes.join(", ") || "not reported"
      }, not float32 throughout: compare them with that in mind. Quantised (int8) or bf16 models were not measured as such.`,
    `Threads: NUM_THREADS follows the "${policy ?? "physical"}" policy${
      policy ? "" : " (the default; this run did not record it)"
    } (${
      policy === "logical"
        ? "one inference thread per logical CPU of the server cpuset"
        : "one inference thread per physical core of the server cpuset, hyperthread siblings left to the HTTP and tokenizer threads"
    }); the servers reported NUM_THREADS ${
      threads.join(", ") || "–"
    } (/info threads). Another thread count can change every ranking.`,
    (c.serving ?? ["sequential"]).includes("batched")
      ? `Serving: each framework was measured sequentially (each request its own inference, at most ${c.container.max_inflight} at a time, MAX_INFLIGHT) and batched (queued requests joined into one inference of at most ${c.container.max_batch_tokens} padded tokens, waiting at most ${c.container.max_wait_us} µs for more): the two are separate series ("…, batched"), and a pick names the mode it was measured in.`
      : `Serving: each server computes at most ${c.container.max_inflight} request(s) at a time (MAX_INFLIGHT), batches of at most ${c.container.max_batch} texts, and runs each request's texts as one batch: this run measured no server batching requests together (serving mode "batched" was not configured), so under concurrency requests queue.${
        batchedAcross(cells)
      }`,
    `Not measured: GPUs, quantised models, other CPUs or instance types, several replicas per host, clients across a real network (the load generator shares the host, over loopback), long-running stability, and answers' quality ${
      run.verifyGate === false
        ? "at all (this run skipped 'embbench verify', so not even agreement with the PyTorch reference was checked)"
        : "beyond 'embbench verify' (agreement with the PyTorch reference)"
    }. Open-loop latency is in each model's charts, not in these picks.`,
  );
  const failed = frameworkOrder(cells.filter((x) => x.status === "failed").map((x) => x.framework)).map(
    (f) => {
      const n = cells.filter((x) => x.status === "failed" && x.framework === f).length;
      return `${frameworkStyle(f).label} (${n})`;
    },
  );
  if (failed.length) {
    out.push(
      `Failed cells are left out of every pick, so a framework is ranked on the cells it completed: ${
        failed.join(", ")
      } failed cell(s); see "Failed cells".`,
    );
  }
  return out;
}

/** A sentence naming cells whose server formed larger batches than the requests it was sent, if any. */
function batchedAcross(cells: CellResult[]): string {
  const across = cells.filter((c) =>
    c.status === "ok" && finite(c.resources?.phases?.meanBatch) &&
    c.resources!.phases!.meanBatch! > c.batchSize * 1.01
  );
  return across.length
    ? ` Yet the counters show inferences larger than the requests' batch in ${across.length} cell(s) (${
      across.slice(0, 5).map((c) => c.id).join(", ")
    }${across.length > 5 ? ", …" : ""}): check those servers.`
    : "";
}

/** The recommendations section. */
export function recommendationsSection(
  run: RunInfo,
  cells: CellResult[],
  samples: Map<string, CellSample>,
): Block[] {
  const { currency } = costOf(run);
  const rec = recommend(cells, samples, currency);
  const tested = rec.rows.flatMap((r) => r.picks).filter((p) => p.verdict?.test?.significant !== undefined);
  const blocks: Block[] = [{ kind: "heading", level: 2, text: "Recommendations" }];
  if (rec.rows.length) {
    blocks.push({
      kind: "paragraph",
      text:
        `Which framework to pick, per model and sequence length, by what matters most. Latency: the lowest p50 at concurrency 1, batch 1 (of single_query and the sweep's level 1, the cell with more requests). Throughput: the highest texts/s over the closed-loop batch-1 cells, each framework at its best concurrency. Memory: the lowest steady PSS, each framework at its highest over all its ok cells of the model (what serving them all takes; the same for every sequence length). Cost: the lowest cost per million embeddings over all closed-loop cells, any batch size (bulk embedding). Each pick gives its margin over the runner-up. Latency and throughput leads are tested like the summary's (a per-request or per-window test and a test of the passes, both must reject), with one Holm–Bonferroni correction over these ${tested.length} tests, a family apart from the summary's (family-wise error ${
          FAMILY_ALPHA * 100
        } % each); memory and cost are not tested. Not significant means the runner-up is as good a pick on this evidence.`,
    }, {
      kind: "table",
      columns: ["model", "seq", "latency matters", "throughput matters", "memory matters", "cost matters"],
      textColumns: 6,
      className: "wrap",
      rows: rec.rows.map((r) => [
        r.model,
        String(r.sequenceLength),
        ...r.picks.map((p) => pickCell(p, rec.cells, currency)),
      ]),
    });
  }
  if (rec.skipped.length) {
    blocks.push({
      kind: "paragraph",
      text: `No recommendation for: ${rec.skipped.join(" ")}`,
    });
  }
  blocks.push({ kind: "paragraph", text: "Caveats:" }, { kind: "list", items: caveats(run, cells) });
  return blocks;
}
