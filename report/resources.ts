/**
 * The report's resource sections: the server's CPU, its memory, its start-up, where a request's time
 * goes, arithmetic efficiency and cost, and the per-cell resources table. Every figure comes from the
 * cell files and run.json (lib/stats/resources.ts computed them); a figure a cell or run does not
 * hold (an older harness, a server without /metrics, a skipped calibration) reads "–" or is said to
 * be missing, never guessed.
 */
import type { CellResult, RunInfo } from "../lib/results/results.ts";
import { cpusetSize } from "../lib/server/server.ts";
import type { CpuFigures } from "../lib/stats/resources.ts";
import { type Block, type Cell, type ChartSpec, finite, fmt } from "./document.ts";
import { frameworkOrder, frameworkStyle } from "./summary.ts";

const MIB = 2 ** 20;
const mib = (b: number | undefined) => (finite(b) ? b / MIB : undefined);

/** The median of the finite values, or undefined. */
export function medianOf(values: (number | undefined)[]): number | undefined {
  const v = values.filter(finite).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

const fwCell = (f: string): Cell => ({ text: frameworkStyle(f).label, swatch: frameworkStyle(f).colour });
const modelKey = (model: string) => model.replace(/[^a-z0-9]+/gi, "-");
const closedLoop = (c: CellResult) => c.rateFraction === undefined;
const sortedUnique = (v: number[]) => [...new Set(v)].sort((a, b) => a - b);

/** An amount of money with as many decimals as its size needs: 12.34, 0.123, 0.0123. */
export function money(v: number | undefined): string {
  if (!finite(v)) return "–";
  const a = Math.abs(v);
  return fmt(v, a >= 100 ? 0 : a >= 1 ? 2 : a >= 0.01 ? 3 : 4);
}

/** The cost settings of a run (the config schema's defaults apply to every format-3 run). */
export function costOf(
  run: RunInfo,
): { pricePerHour?: number; currency: string; instance?: string; source?: string } {
  const c = run.config.cost as Partial<RunInfo["config"]["cost"]> | undefined;
  return {
    pricePerHour: c?.price_per_hour,
    currency: c?.currency ?? "?",
    instance: c?.instance,
    source: c?.source,
  };
}

/**
 * Of several ok cells that measure the same load (single_query and the sweep's level 1), the one
 * with the most measured requests, the named scenario before the sweep on a tie: chosen by sample
 * size, never by the figure being compared.
 */
export function preferredCell(cells: CellResult[]): CellResult | undefined {
  return [...cells].sort((a, b) =>
    (b.counts?.successful ?? 0) - (a.counts?.successful ?? 0) ||
    Number(a.scenario === "sweep") - Number(b.scenario === "sweep") || a.id.localeCompare(b.id)
  )[0];
}

/** One framework at one load: the cell measured there, or why there is none. */
export interface LevelRow {
  framework: string;
  sequenceLength: number;
  concurrency: number;
  cell?: CellResult;
  missing?: string;
}

/**
 * Per framework, its batch-1 closed-loop cell at the lowest concurrency measured (1 in every shipped
 * config) and at the highest, for one model's ok cells at one sequence length. A framework without
 * an ok cell at a level gets a row saying so.
 */
export function levelRows(ok: CellResult[], seq: number): LevelRow[] {
  const group = ok.filter((c) =>
    c.status === "ok" && closedLoop(c) && c.batchSize === 1 && c.sequenceLength === seq
  );
  if (!group.length) return [];
  const all = sortedUnique(group.map((c) => c.concurrency));
  const levels = sortedUnique([all[0]!, all.at(-1)!]);
  return frameworkOrder(group.map((c) => c.framework)).flatMap((f) =>
    levels.map((l): LevelRow => {
      const cell = preferredCell(group.filter((c) => c.framework === f && c.concurrency === l));
      return cell
        ? { framework: f, sequenceLength: seq, concurrency: l, cell }
        : { framework: f, sequenceLength: seq, concurrency: l, missing: `no ok batch-1 cell at c=${l}` };
    })
  );
}

// ---------------------------------------------------------------------------------------------------
// Server CPU

/**
 * Busy cores as shown: never above the cpuset's CPUs. The window's wall span encloses its CPU readings,
 * so only the Engine API's coarser stats (read where the cgroup files are not local) can exceed them.
 */
export function busyText(v: number | undefined, cpus: number, withTotal = false): Cell {
  if (!finite(v)) return "–";
  const shown = cpus > 0 ? Math.min(v, cpus) : v;
  const text = `${fmt(shown, 2)}${withTotal && cpus > 0 ? ` of ${cpus}` : ""}`;
  return shown < v
    ? { text, title: `measured ${fmt(v, 3)}: shown capped at the cpuset's ${cpus} CPUs` }
    : text;
}

const cpuOver = (cpu: CpuFigures | undefined) =>
  !!cpu && cpu.cpusetCpus > 0 && (cpu.busyCoresPeak > cpu.cpusetCpus || cpu.busyCores > cpu.cpusetCpus);

/** The CPU section: per model and sequence length, CPU per request and busy cores at the lowest and highest load. */
export function cpuSection(run: RunInfo, cells: CellResult[]): Block[] {
  const ok = cells.filter((c) => c.status === "ok");
  const cpus = cpusetSize(run.cpus.server);
  const blocks: Block[] = [
    { kind: "heading", level: 2, text: "Server CPU" },
    {
      kind: "paragraph",
      text:
        `The server container's CPU time (every process and thread in it: HTTP, tokenizer and inference) over each measured window, read right before oha starts and right after it exits. CPU ms per request divides it by the answers oha received in those spans; per 1,000 tokens divides that by batch × sequence length / 1,000 (the input tokens of a request, special tokens included). Busy cores are CPU seconds over wall seconds: the mean over all windows, and the busiest window of at least 1 s (the mean when no window lasted that long); shown against the server cpuset's ${cpus} CPUs and never above them. Per framework, the batch-1 closed-loop cell at the lowest and at the highest concurrency measured; every other cell is in "Every cell: resources", and CPU % by concurrency in each model's heatmap.`,
    },
  ];
  const steal = ok.filter((c) => finite(c.resources?.cpu?.stealPercent));
  const models = [...new Set(ok.map((c) => c.model))].sort();
  let any = false;
  for (const model of models) {
    const mine = ok.filter((c) => c.model === model);
    const rows = sortedUnique(mine.map((c) => c.sequenceLength)).flatMap((s) => levelRows(mine, s));
    if (!rows.length) continue;
    any = true;
    blocks.push({ kind: "heading", level: 3, text: `${model}: server CPU` }, {
      kind: "table",
      columns: [
        "framework",
        "scenario",
        "seq",
        "c",
        "CPU ms / request",
        "CPU ms / 1,000 tokens",
        "busy cores, mean",
        `busy cores, busiest window (of ${cpus})`,
        "CPU % of cpuset",
        ...(steal.length ? ["steal % of host CPU"] : []),
      ],
      textColumns: 2,
      rows: rows.map((r) => {
        const cpu = r.cell?.resources?.cpu;
        return [
          fwCell(r.framework),
          r.cell?.scenario ?? r.missing ?? "–",
          String(r.sequenceLength),
          String(r.concurrency),
          fmt(cpu && cpu.secondsPerRequest * 1000, 2),
          fmt(cpu && cpu.secondsPer1kTokens * 1000, 2),
          busyText(cpu?.busyCores, cpu?.cpusetCpus ?? cpus),
          busyText(cpu?.busyCoresPeak, cpu?.cpusetCpus ?? cpus),
          fmt(cpu && Math.min(cpu.utilizationPercent, 100), 0),
          ...(steal.length ? [fmt(cpu?.stealPercent, 2)] : []),
        ];
      }),
    });
  }
  if (!any) {
    blocks.push({ kind: "paragraph", text: "No ok batch-1 closed-loop cell, so there is nothing to show." });
  }
  const missing = ok.filter((c) => !c.resources?.cpu).length;
  const over = ok.filter((c) => cpuOver(c.resources?.cpu));
  const notes = [
    missing ? `${missing} ok cell(s) have no CPU figures (the container's CPU time could not be read).` : "",
    over.length
      ? `${over.length} cell(s) measured more busy cores than the cpuset has CPUs (the cgroup files were not local, so the coarser Docker Engine API stats were read instead); they are shown capped at ${cpus}: ${
        over.map((c) => c.id).join(", ")
      }.`
      : "",
    steal.length
      ? `The hypervisor stole CPU time during the windows of ${steal.length} cell(s), at most ${
        fmt(Math.max(...steal.map((c) => c.resources!.cpu!.stealPercent!)), 2)
      } % of all host CPU time (host-wide, from /proc/stat): those cells' figures ran on a busy host.`
      : ok.some((c) => c.resources?.cpu)
      ? "The host reported no stolen CPU time during any measured window."
      : "",
  ].filter(Boolean);
  if (notes.length) blocks.push({ kind: "paragraph", text: notes.join(" ") });
  return blocks;
}

// ---------------------------------------------------------------------------------------------------
// Memory

/** A framework's memory serving one model. */
export interface MemoryRow {
  framework: string;
  /** The cgroup's peak from creation to healthy, highest over the cells (page cache of files it read included). */
  loadPeakMiB?: number;
  /** The cgroup's peak to the end of a cell's windows, highest over the cells. */
  peakMiB?: number;
  /** Steady state: the cell with the highest PSS, and its parts. */
  pssMiB?: number;
  anonMiB?: number;
  fileMiB?: number;
  rssMiB?: number;
  cellId?: string;
  /** Ok cells with memory figures. */
  cells: number;
}

/** Per framework, its memory over its ok cells of a model. */
export function memoryRows(ok: CellResult[]): MemoryRow[] {
  return frameworkOrder(ok.map((c) => c.framework)).map((f) => {
    const mine = ok.filter((c) => c.framework === f && c.status === "ok" && c.resources?.memory);
    const most = (read: (c: CellResult) => number | undefined) => {
      const v = mine.map(read).filter(finite);
      return v.length ? Math.max(...v) / MIB : undefined;
    };
    const top = mine.filter((c) =>
      finite(c.resources!.memory!.pssBytes)
    ).sort((a, b) => b.resources!.memory!.pssBytes! - a.resources!.memory!.pssBytes!)[0];
    const m = top?.resources?.memory;
    return {
      framework: f,
      loadPeakMiB: most((c) =>
        c.resources!.memory!.loadPeakBytes
      ),
      peakMiB: most((c) => c.resources!.memory!.peakBytes),
      pssMiB: mib(m?.pssBytes),
      anonMiB: mib(m?.anonBytes),
      fileMiB: mib(m?.fileBytes),
      rssMiB: mib(m?.rssBytes),
      cellId: top?.id,
      cells: mine.length,
    };
  });
}

/** The memory section: load-time peak against the steady state, per model and framework. */
export function memorySection(run: RunInfo, cells: CellResult[]): Block[] {
  const ok = cells.filter((c) => c.status === "ok");
  const blocks: Block[] = [
    { kind: "heading", level: 2, text: "Memory" },
    {
      kind: "paragraph",
      text:
        `Load peak: the container's cgroup memory peak from its creation to its first healthy /health (model load and warm-up), page cache charged to it included (the model's files, evicted before it started; not libraries an earlier container already read, which stay charged to that one, so a small model's load peak can be below its steady PSS); the highest over the framework's containers. Steady: the proportional set size (PSS) of the server's processes read from /proc/<pid>/smaps_rollup right after a cell's windows, each shared page split among the processes that map it, as anonymous memory (heap, arenas, stacks) and file-backed memory (mapped weights and libraries, shared memory); the median over the cell's passes, shown for the framework's cell with the highest PSS. One container serves all of a framework's cells of a model in a pass, so a cell's steady figure includes what earlier cells left allocated. Peak to the end: the cgroup's peak from creation to the end of a cell's windows. ${
          pageCacheSentence(run)
        }`,
    },
  ];
  const models = [...new Set(ok.map((c) => c.model))].sort();
  let any = false;
  for (const model of models) {
    const rows = memoryRows(ok.filter((c) => c.model === model)).filter((r) => r.cells > 0);
    if (!rows.length) continue;
    any = true;
    const chart: ChartSpec = {
      id: `memory-${modelKey(model)}`,
      title: `${model}: memory per framework, load peak vs steady`,
      note:
        "Per framework: the load peak (cgroup, page cache included) beside the steady PSS, stacked as anonymous and file-backed (MiB).",
      tableFollows: true,
      config: {
        type: "bar",
        data: {
          labels: rows.map((r) => frameworkStyle(r.framework).label),
          datasets: [
            {
              label: "load peak (cgroup)",
              stack: "load",
              backgroundColor: "#999999",
              data: rows.map((r) => r.loadPeakMiB ?? null),
            },
            {
              label: "steady PSS: anonymous",
              stack: "steady",
              backgroundColor: "#3b528b",
              data: rows.map((r) => r.anonMiB ?? null),
            },
            {
              label: "steady PSS: file-backed",
              stack: "steady",
              backgroundColor: "#5ec962",
              data: rows.map((r) => r.fileMiB ?? null),
            },
          ],
        },
        options: {
          scales: {
            x: { stacked: true },
            y: { stacked: true, beginAtZero: true, title: { display: true, text: "MiB" } },
          },
        },
      },
    };
    blocks.push(
      { kind: "heading", level: 3, text: `${model}: memory` },
      { kind: "charts", charts: [chart] },
      {
        kind: "table",
        columns: [
          "framework",
          "steady: highest after",
          "load peak MiB",
          "steady PSS MiB",
          "anonymous MiB",
          "file-backed MiB",
          "RSS MiB",
          "peak to the end MiB",
        ],
        textColumns: 2,
        rows: rows.map((r) => [
          fwCell(r.framework),
          r.cellId ? { text: r.cellId.split("__").slice(2).join(" "), title: r.cellId } : "–",
          fmt(r.loadPeakMiB, 0),
          fmt(r.pssMiB, 0),
          fmt(r.anonMiB, 0),
          fmt(r.fileMiB, 0),
          fmt(r.rssMiB, 0),
          fmt(r.peakMiB, 0),
        ]),
      },
    );
  }
  if (!any) {
    blocks.push({ kind: "paragraph", text: "No ok cell has memory figures (a run from an older harness?)." });
  }
  return blocks;
}

/** Whether the model files were evicted from the page cache before each container started. */
export function pageCacheSentence(run: RunInfo): string {
  if (run.pageCache === undefined) {
    return "Whether the model's files were evicted from the page cache before each container started was not recorded for this run.";
  }
  if (run.pageCache === "evicted") {
    return "Before each container started, the model's files were evicted from the page cache (and checked with fincore), so the container read its weights from disk and its mapped weights are charged to it.";
  }
  return `The model's files were meant to be evicted from the page cache before each container started, but were not always: ${run.pageCache}. Load peaks and file-backed memory may then be low, and load times short.`;
}

// ---------------------------------------------------------------------------------------------------
// Start-up

/** A framework's start-up serving one model: the cells' containers (warm-up included) and the cold starts. */
export interface StartupRow {
  framework: string;
  /** Medians over the framework's cells of each cell's start-up (itself the median over its passes' containers). */
  containerMs?: number;
  runtimeMs?: number;
  modelLoadMs?: number;
  warmupMs?: number;
  healthyMs?: number;
  /** Healthy minus the phases: from the warm-up's end to the harness's first 200 from /health (its polling). */
  restMs?: number;
  /** Cells the figures come from. */
  cells: number;
  cold?: {
    starts: number;
    containerMs?: number;
    runtimeMs?: number;
    modelLoadMs?: number;
    healthyMs?: number;
    firstRequestMs?: number;
    secondRequestMs?: number;
  };
}

/** Start-up rows for one model from its cells (ok or failed) and the run's cold starts. */
export function startupRows(model: string, cells: CellResult[], run: RunInfo): StartupRow[] {
  const mine = cells.filter((c) => c.model === model);
  const coldFor = run.coldStarts?.[model] ?? {};
  return frameworkOrder([...mine.map((c) => c.framework), ...Object.keys(coldFor)]).map((f) => {
    const withStartup = mine.filter((c) => c.framework === f && (c.startup || finite(c.loadTimeMs)));
    const med = (read: (c: CellResult) => number | undefined) => medianOf(withStartup.map(read));
    const row: StartupRow = {
      framework: f,
      containerMs: med((c) => c.startup?.containerMs),
      runtimeMs: med((c) => c.startup?.runtimeMs),
      modelLoadMs: med((c) => c.startup?.modelLoadMs),
      warmupMs: med((c) => c.startup?.warmupMs),
      healthyMs: med((c) => c.startup?.healthyMs ?? c.loadTimeMs),
      cells: withStartup.length,
    };
    const parts = [row.containerMs, row.runtimeMs, row.modelLoadMs];
    if (finite(row.healthyMs) && parts.every(finite)) {
      row.restMs = row.healthyMs - parts.reduce((a, b) => a + b, 0) - (row.warmupMs ?? 0);
    }
    const cold = coldFor[f];
    if (cold) {
      const m = cold.median;
      row.cold = {
        starts: cold.starts?.length ?? 0,
        containerMs: m.containerMs,
        runtimeMs: m.runtimeMs,
        modelLoadMs: m.modelLoadMs,
        healthyMs: m.healthyMs,
        firstRequestMs: m.firstRequestMs,
        secondRequestMs: m.secondRequestMs,
      };
    }
    return row;
  });
}

const STARTUP_PHASES = [
  { key: "containerMs", label: "container start", colour: "#440154" },
  { key: "runtimeMs", label: "runtime import", colour: "#3b528b" },
  { key: "modelLoadMs", label: "model load", colour: "#21918c" },
  { key: "warmupMs", label: "warm-up", colour: "#5ec962" },
  { key: "restMs", label: "until /health seen", colour: "#d9d9d9" },
] as const;

/** The start-up section: phases per framework and model, and the cold first request. */
export function startupSection(run: RunInfo, cells: CellResult[]): Block[] {
  const blocks: Block[] = [
    { kind: "heading", level: 2, text: "Start-up" },
    {
      kind: "paragraph",
      text:
        "Each pass starts every framework's container afresh (the model's files evicted from the page cache first, when possible). The server stamps each stage of its start on its monotonic clock in /info, and the harness places the stamps on its own timeline: container start is container creation requested → server process started (engine, namespaces, exec); runtime import is process start → runtime imported and initialised (interpreter, framework import, port bound); model load is runtime ready → model ready to run (read, parsed, compiled); warm-up is one warm-up inference; the rest is the time until the harness's /health poll saw the 200. Healthy is creation requested → first 200, as the harness saw it. Each figure is the median over a cell's passes, then over the framework's cells of the model (which share those containers); a server that does not stamp its start shows only healthy.",
    },
  ];
  const models = [...new Set(cells.map((c) => c.model)), ...Object.keys(run.coldStarts ?? {})];
  let any = false;
  for (const model of [...new Set(models)].sort()) {
    const rows = startupRows(model, cells, run).filter((r) => r.cells > 0 || r.cold);
    if (!rows.length) continue;
    any = true;
    blocks.push({ kind: "heading", level: 3, text: `${model}: start-up` });
    const warm = rows.filter((r) => r.cells > 0);
    const charts: ChartSpec[] = [];
    if (warm.some((r) => finite(r.modelLoadMs))) {
      charts.push({
        id: `startup-${modelKey(model)}`,
        title: `${model}: start-up phases (warm-up included)`,
        note:
          "Stacked phases per framework, seconds; the bar's length is healthy (the rest is the health poll).",
        tableFollows: true,
        config: {
          type: "bar",
          data: {
            labels: warm.map((r) => frameworkStyle(r.framework).label),
            datasets: STARTUP_PHASES.map((p) => ({
              label: p.label,
              backgroundColor: p.colour,
              data: warm.map((r) => {
                const v = r[p.key];
                return finite(v) && v >= 0 ? v / 1000 : null;
              }),
            })),
          },
          options: {
            indexAxis: "y",
            scales: {
              x: { stacked: true, beginAtZero: true, title: { display: true, text: "s" } },
              y: { stacked: true },
            },
          },
        },
      });
    }
    const cold = rows.filter((r) => r.cold && finite(r.cold.firstRequestMs));
    if (cold.length) {
      charts.push({
        id: `cold-${modelKey(model)}`,
        title: `${model}: cold first request vs the second (fresh container, no warm-up)`,
        note:
          "The first /embed a container started with WARMUP=0 ever answers, and the one right after it, ms; medians of the cold starts.",
        tableFollows: true,
        config: {
          type: "bar",
          data: {
            labels: ["first request", "second request"],
            datasets: cold.map((r) => {
              const { label, colour } = frameworkStyle(r.framework);
              return {
                label,
                borderColor: colour,
                backgroundColor: colour,
                data: [r.cold!.firstRequestMs ?? null, r.cold!.secondRequestMs ?? null],
              };
            }),
          },
          options: { scales: { y: { beginAtZero: true, title: { display: true, text: "ms" } } } },
        },
      });
    }
    if (charts.length) blocks.push({ kind: "charts", charts });
    if (warm.length) {
      blocks.push({
        kind: "table",
        columns: [
          "framework",
          "container start ms",
          "runtime import ms",
          "model load ms",
          "warm-up ms",
          "until /health seen ms",
          "healthy ms",
          "cells",
        ],
        textColumns: 1,
        rows: warm.map((r) => [
          fwCell(r.framework),
          fmt(r.containerMs, 0),
          fmt(r.runtimeMs, 0),
          fmt(r.modelLoadMs, 0),
          fmt(r.warmupMs, 0),
          fmt(r.restMs, 0),
          fmt(r.healthyMs, 0),
          String(r.cells),
        ]),
      });
    }
    if (rows.some((r) => r.cold)) {
      blocks.push({
        kind: "paragraph",
        text:
          `Cold starts: fresh containers started one after the other with WARMUP=0 (no warm-up inference) before the framework's containers for the cells of ${model} (in the first pass, or a later one if they failed), each after the page-cache eviction; the first /embed is the model's smallest batch at its shortest sequence length, timed by the harness from send to the whole answer, then the same request again. Medians over the starts.`,
      }, {
        kind: "table",
        columns: [
          "framework",
          "starts",
          "container start ms",
          "runtime import ms",
          "model load ms",
          "healthy without warm-up ms",
          "first request ms",
          "second request ms",
          "first − second ms",
        ],
        textColumns: 1,
        rows: rows.map((r) => [
          fwCell(r.framework),
          r.cold ? String(r.cold.starts) : "not measured",
          fmt(r.cold?.containerMs, 0),
          fmt(r.cold?.runtimeMs, 0),
          fmt(r.cold?.modelLoadMs, 0),
          fmt(r.cold?.healthyMs, 0),
          fmt(r.cold?.firstRequestMs, 1),
          fmt(r.cold?.secondRequestMs, 1),
          fmt(
            r.cold && finite(r.cold.firstRequestMs) && finite(r.cold.secondRequestMs)
              ? r.cold.firstRequestMs - r.cold.secondRequestMs
              : undefined,
            1,
          ),
        ]),
      });
    } else {
      blocks.push({
        kind: "paragraph",
        text: `No cold start was measured for ${model} (measurement.cold_starts is 0, or they failed).`,
      });
    }
  }
  if (!any) blocks.push({ kind: "paragraph", text: "No start-up was recorded." });
  return blocks;
}

// ---------------------------------------------------------------------------------------------------
// Where the time goes

export const TIME_PHASES = [
  { key: "queue", label: "queue", colour: "#bdbdbd" },
  { key: "parse", label: "parse", colour: "#fde725" },
  { key: "tokenize", label: "tokenize", colour: "#5ec962" },
  { key: "inference", label: "inference", colour: "#21918c" },
  { key: "serialize", label: "serialize", colour: "#3b528b" },
  { key: "other", label: "other server", colour: "#e8e8e8" },
  { key: "http", label: "HTTP", colour: "#440154" },
] as const;
export type TimePhase = (typeof TIME_PHASES)[number]["key"];

/** A request's time split, mean ms, for one framework at one load. */
export interface PhaseRow extends LevelRow {
  ms?: Partial<Record<TimePhase, number>>;
  /** The server's whole time (`request`) and the client's mean latency, ms. */
  serverMs?: number;
  clientMs?: number;
  meanBatch?: number;
  /** /embed requests the counters covered. */
  counted?: number;
}

/**
 * The split of a request at the lowest and highest load, per framework, for one model's ok cells at
 * one sequence length. `other` is the server's time outside the five phases (request − their sum),
 * `http` the client's mean minus the server's time (HTTP layer, loopback, waiting for a server thread).
 */
export function phaseRows(ok: CellResult[], seq: number): PhaseRow[] {
  return levelRows(ok, seq).map((r) => {
    const p = r.cell?.resources?.phases;
    if (!r.cell || !p) {
      return {
        ...r,
        missing: r.missing ?? "no phase counters (a server without /metrics, or an older cell)",
      };
    }
    const v = (x: number | undefined) => (finite(x) ? x : undefined);
    const ms: Partial<Record<TimePhase, number>> = {
      queue: v(p.ms.queue),
      parse: v(p.ms.parse),
      tokenize: v(p.ms.tokenize),
      inference: v(p.ms.inference),
      serialize: v(p.ms.serialize),
      http: v(p.httpMs),
    };
    const request = v(p.ms.request);
    if (request !== undefined) {
      const known = (["queue", "parse", "tokenize", "inference", "serialize"] as const).map((k) => ms[k])
        .filter(finite);
      ms.other = request - known.reduce((a, b) => a + b, 0);
    }
    return {
      ...r,
      ms,
      serverMs: request,
      clientMs: v(r.cell.latencyMs?.mean),
      meanBatch: v(p.meanBatch),
      counted: v(p.requests),
    };
  });
}

/** The "where the time goes" section. */
export function phasesSection(cells: CellResult[]): Block[] {
  const ok = cells.filter((c) => c.status === "ok");
  const blocks: Block[] = [
    { kind: "heading", level: 2, text: "Where the time goes" },
    {
      kind: "paragraph",
      text:
        "The mean time a request spends in each phase, ms, from the servers' /metrics counters (docker/CONTRACT.md) read just before and after each measured window and divided by the requests they counted: queue is the wait for an inference slot (MAX_INFLIGHT), parse reading and validating the body, tokenize the tokenizer up to the padded batch, inference the model call, serialize writing the answer; other server is the server's whole time (`request`) minus those five; HTTP is the client's mean latency minus the server's time (the HTTP layer, the loopback network, and any wait for the HTTP server's threads). The bars add up to the client's mean latency. Per framework, the batch-1 closed-loop cell at the lowest and the highest concurrency measured; mean batch is the inputs per inference the server ran.",
    },
  ];
  const models = [...new Set(ok.map((c) => c.model))].sort();
  let any = false;
  const negative: string[] = [];
  for (const model of models) {
    const mine = ok.filter((c) => c.model === model);
    const seqs = sortedUnique(mine.map((c) => c.sequenceLength));
    const bySeq = seqs.map((s) => ({ seq: s, rows: phaseRows(mine, s) })).filter((x) => x.rows.length);
    if (!bySeq.length) continue;
    any = true;
    for (const r of bySeq.flatMap((x) => x.rows)) {
      const below = TIME_PHASES.filter((p) => r.ms?.[p.key] !== undefined && r.ms[p.key]! < -0.005);
      if (below.length) negative.push(`${r.cell!.id} (${below.map((p) => p.label).join(", ")})`);
    }
    const charts: ChartSpec[] = bySeq.filter((x) => x.rows.some((r) => r.ms)).map(({ seq, rows }) => {
      const have = rows.filter((r) => r.ms);
      return {
        id: `phases-${modelKey(model)}-${seq}`,
        title: `${model}, ${seq} tokens: where a request's time goes`,
        note: "Mean ms per request, stacked; the bar's length is the client's mean latency.",
        tableFollows: true,
        config: {
          type: "bar",
          data: {
            labels: have.map((r) => `${frameworkStyle(r.framework).label} c=${r.concurrency}`),
            datasets: TIME_PHASES.map((p) => ({
              label: p.label,
              backgroundColor: p.colour,
              data: have.map((r) => {
                const v = r.ms![p.key];
                return finite(v) && v >= 0 ? v : null;
              }),
            })),
          },
          options: {
            indexAxis: "y",
            scales: {
              x: { stacked: true, beginAtZero: true, title: { display: true, text: "ms" } },
              y: { stacked: true },
            },
          },
        },
      };
    });
    blocks.push({ kind: "heading", level: 3, text: `${model}: where the time goes` });
    if (charts.length) blocks.push({ kind: "charts", charts });
    blocks.push({
      kind: "table",
      columns: [
        "framework",
        "seq",
        "c",
        ...TIME_PHASES.map((p) => `${p.label} ms`),
        "server ms",
        "client mean ms",
        "mean batch",
      ],
      textColumns: 1,
      rows: bySeq.flatMap(({ rows }) =>
        rows.map((r): Cell[] =>
          r.ms
            ? [
              fwCell(r.framework),
              String(r.sequenceLength),
              String(r.concurrency),
              ...TIME_PHASES.map((p) => fmt(r.ms![p.key], 2)),
              fmt(r.serverMs, 2),
              fmt(r.clientMs, 2),
              fmt(r.meanBatch, 2),
            ]
            : [
              fwCell(r.framework),
              String(r.sequenceLength),
              String(r.concurrency),
              { text: r.missing ?? "–", className: "text" },
              ...Array.from({ length: TIME_PHASES.length + 2 }, () => "–"),
            ]
        )
      ),
    });
  }
  if (!any) {
    blocks.push({ kind: "paragraph", text: "No ok batch-1 closed-loop cell, so there is nothing to show." });
  }
  if (negative.length) {
    blocks.push({
      kind: "paragraph",
      text:
        `A part below zero is shown as measured in the table and left out of its chart, whose bar then does not add up to the client's mean: ${
          negative.join("; ")
        }. A negative HTTP part means the server's counted time exceeds the client's mean latency (the counters also count each window's connection openers, the client's mean does not); a negative other-server part means the phases overlap or a server times them inconsistently.`,
    });
  }
  return blocks;
}

// ---------------------------------------------------------------------------------------------------
// Efficiency and cost

/** The efficiency section: the best share of the GEMM peak per framework and sequence length. */
export function efficiencySection(run: RunInfo, cells: CellResult[]): Block[] {
  const ok = cells.filter((c) => c.status === "ok" && closedLoop(c));
  const peak = run.gemmPeak;
  const blocks: Block[] = [
    { kind: "heading", level: 2, text: "Efficiency" },
    {
      kind: "paragraph",
      text:
        `Achieved GFLOP/s: throughput (requests/s) × the floating-point operations of a request, counted from the model's config.json as its matrix multiplies (Q, K, V and output projections, attention scores and their weighted sum, the MLP; 2 operations per multiply-add) at the cell's sequence length × batch size. Layer norms, softmax, activations, embeddings and pooling are left out, so the figure slightly underestimates the work done, never overestimates it. ${
          peak
            ? `It is shown as a share of the server cpuset's measured fp32 GEMM peak, ${
              fmt(peak.gflops, 1)
            } GFLOP/s (${peak.library}, ${peak.threads} threads on CPUs ${peak.cpus}; see Environment). A small share says the time goes elsewhere than matrix multiplies (tokenizing, HTTP, waiting, small matrices at small batches).`
            : "This run has no GEMM peak (the calibration was skipped or failed), so no share of it is shown."
        } The table gives each framework's highest share over its closed-loop cells of a sequence length (hover for the cell); every cell's figure is in "Every cell: resources".`,
    },
  ];
  const models = [...new Set(ok.map((c) => c.model))].sort();
  let any = false;
  for (const model of models) {
    const mine = ok.filter((c) => c.model === model && c.resources?.efficiency);
    if (!mine.length) continue;
    any = true;
    const seqs = sortedUnique(mine.map((c) => c.sequenceLength));
    const usePeak = mine.some((c) => finite(c.resources!.efficiency!.percentOfPeak));
    blocks.push({
      kind: "heading",
      level: 3,
      text: `${model}: ${usePeak ? "highest % of the GEMM peak" : "highest GFLOP/s"} per sequence length`,
    }, {
      kind: "table",
      columns: ["framework", ...seqs.map((s) => `${s} tokens`)],
      className: usePeak ? "heatmap" : undefined,
      rows: frameworkOrder(mine.map((c) => c.framework)).map((f) => [
        fwCell(f),
        ...seqs.map((s): Cell => {
          const best = mine.filter((c) =>
            c.framework === f && c.sequenceLength === s
          ).sort((a, b) => (usePeak
            ? (b.resources!.efficiency!.percentOfPeak ?? 0) - (a.resources!.efficiency!.percentOfPeak ?? 0)
            : b.resources!.efficiency!.gflops - a.resources!.efficiency!.gflops)
          )[0];
          if (!best) {
            return "–";
          }
          const e = best.resources!.efficiency!;
          const where = `${best.scenario}, batch ${best.batchSize}, c=${best.concurrency}: ${
            fmt(e.gflops, 1)
          } GFLOP/s`;
          return usePeak && finite(e.percentOfPeak)
            ? { text: `${fmt(e.percentOfPeak, 1)} %`, heat: e.percentOfPeak / 100, title: where }
            : { text: fmt(e.gflops, 1), title: where };
        }),
      ]),
    });
  }
  if (!any) {
    blocks.push({
      kind: "paragraph",
      text: "No ok cell has a FLOP count (its model's config.json was not readable?).",
    });
  }
  return blocks;
}

/** The sentence that says how cost is computed, with the run's price. */
export function costSentence(run: RunInfo): string {
  const c = costOf(run);
  const server = cpusetSize(run.cpus.server);
  const host = run.environment.cpu.logicalCpus;
  if (!finite(c.pricePerHour)) {
    return "This run's configuration records no instance price, so its cost figures (if any) cannot be traced to one.";
  }
  return `Cost per million embeddings: ${fmt(c.pricePerHour, 3)} ${c.currency} per hour for ${
    c.instance ?? "?"
  } (${
    c.source ?? "source not recorded"
  }), pro-rated by the server cpuset's share of the host's CPUs (${server} of ${host} logical CPUs: the rest can serve other replicas), over the embeddings per hour at the cell's throughput: price × ${server}/${host} ÷ (texts/s × 3,600) × 1,000,000. It is the price of that instance whatever host ran this benchmark (${run.environment.cpu.model}), excludes storage, network and idle time, and assumes the server is kept busy at the cell's load.`;
}

/** The cost section: per model and sequence length, each framework's cheapest closed-loop cell. */
export function costSection(run: RunInfo, cells: CellResult[]): Block[] {
  const ok = cells.filter((c) => c.status === "ok" && closedLoop(c) && finite(c.resources?.costPerMillion));
  const { currency } = costOf(run);
  const blocks: Block[] = [
    { kind: "heading", level: 2, text: "Cost" },
    {
      kind: "paragraph",
      text: `${
        costSentence(run)
      } Per framework, its cheapest closed-loop cell (any batch size: bulk embedding); every cell's figure is in "Every cell: resources".`,
    },
  ];
  if (!ok.length) return [...blocks, { kind: "paragraph", text: "No ok cell has a cost figure." }];
  const rows: Cell[][] = [];
  for (const model of [...new Set(ok.map((c) => c.model))].sort()) {
    for (const seq of sortedUnique(ok.filter((c) => c.model === model).map((c) => c.sequenceLength))) {
      const group = ok.filter((c) => c.model === model && c.sequenceLength === seq);
      const cheapest = frameworkOrder(group.map((c) => c.framework)).map((f) =>
        group.filter((c) => c.framework === f).sort((a, b) =>
          a.resources!.costPerMillion! - b.resources!.costPerMillion!
        )[0]!
      ).sort((a, b) => a.resources!.costPerMillion! - b.resources!.costPerMillion!);
      for (const c of cheapest) {
        rows.push([
          model,
          fwCell(c.framework),
          String(seq),
          c.scenario,
          String(c.batchSize),
          String(c.concurrency),
          fmt(c.textsPerSecond, 1),
          money(c.resources!.costPerMillion),
        ]);
      }
    }
  }
  blocks.push({
    kind: "table",
    columns: [
      "model",
      "framework",
      "seq",
      "cheapest at",
      "batch",
      "c",
      "texts/s",
      `${currency} per 1M embeddings`,
    ],
    textColumns: 4,
    rows,
  });
  return blocks;
}

// ---------------------------------------------------------------------------------------------------
// Every cell: resources

/** The columns of the resources table after the cell's identity. */
export function resourceColumns(run: RunInfo): string[] {
  return [
    "CPU ms/req",
    "CPU ms / 1k tokens",
    "CPU % of cpuset",
    "busy cores mean / busiest",
    "PSS MiB (anon + file)",
    "load peak MiB",
    "GFLOP/s",
    "% of GEMM peak",
    `${costOf(run).currency} per 1M`,
    "mean batch",
    "load ms",
  ];
}

/** A cell's resources as table cells ("–" for every figure it does not have). */
export function resourceCells(c: CellResult): Cell[] {
  const r = c.resources;
  const cpu = r?.cpu;
  const m = r?.memory;
  const e = r?.efficiency;
  const cpus = cpu?.cpusetCpus ?? 0;
  const busy = (v: number | undefined) => (finite(v) ? fmt(cpus > 0 ? Math.min(v, cpus) : v, 2) : "–");
  return [
    fmt(cpu && cpu.secondsPerRequest * 1000, 2),
    fmt(cpu && cpu.secondsPer1kTokens * 1000, 2),
    fmt(cpu && Math.min(cpu.utilizationPercent, 100), 0),
    cpu ? `${busy(cpu.busyCores)} / ${busy(cpu.busyCoresPeak)}` : "–",
    finite(m?.pssBytes)
      ? `${fmt(m.pssBytes / MIB, 0)}${
        finite(m.anonBytes) && finite(m.fileBytes)
          ? ` (${fmt(m.anonBytes / MIB, 0)} + ${fmt(m.fileBytes / MIB, 0)})`
          : ""
      }`
      : "–",
    fmt(mib(m?.loadPeakBytes), 0),
    fmt(e?.gflops, 1),
    fmt(e?.percentOfPeak, 1),
    money(r?.costPerMillion),
    fmt(r?.phases?.meanBatch, 2),
    fmt(c.loadTimeMs, 0),
  ];
}
