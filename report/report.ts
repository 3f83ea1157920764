/**
 * The run report as a document: summary, charts, every cell, failures, environment and the
 * methodology, all from run.json and the cell files. render.ts turns it into HTML and markdown.
 */
import { servingSection } from "./serving.ts";
import type { CellResult, RunInfo } from "../lib/results/results.ts";
import { cpusetSize } from "../lib/server/server.ts";
import { RATE_SCENARIO } from "../lib/config/plan.ts";
import { LOADGEN_BUSY_LIMIT } from "../lib/stats/cell.ts";
import { type CellSample, FAMILY_ALPHA } from "../lib/stats/verdicts.ts";
import { type Block, type Cell, type ChartSpec, finite, fmt, type ReportDocument } from "./document.ts";
import {
  frameworkOrder,
  frameworkStyle,
  percentile,
  percentileText,
  summarize,
  type Verdict,
  verdictText,
} from "./summary.ts";
import { recommendationsSection } from "./recommend.ts";
import {
  costOf,
  costSection,
  costSentence,
  cpuSection,
  efficiencySection,
  memorySection,
  pageCacheSentence,
  phasesSection,
  resourceCells,
  resourceColumns,
  startupSection,
} from "./resources.ts";

/** Line style per latency percentile, the same in every chart. */
const PERCENTILES = [
  { key: "p50", label: "p50", dash: [] as number[], point: "circle" },
  { key: "p95", label: "p95", dash: [6, 3], point: "triangle" },
  { key: "p99", label: "p99", dash: [2, 2], point: "rect" },
] as const;

/** Cells ordered for tables: model, sequence length, scenario (config order, sweep last), concurrency, framework. */
export function sortCells(cells: CellResult[], scenarioOrder: string[]): CellResult[] {
  const fw = frameworkOrder(cells.map((c) => c.framework));
  const sc = (s: string) => (s === "sweep" ? 1e6 : s === RATE_SCENARIO ? 2e6 : scenarioOrder.indexOf(s));
  return [...cells].sort((a, b) =>
    a.model.localeCompare(b.model) || a.sequenceLength - b.sequenceLength ||
    sc(a.scenario) - sc(b.scenario) || (a.rateFraction ?? 0) - (b.rateFraction ?? 0) ||
    a.concurrency - b.concurrency || fw.indexOf(a.framework) - fw.indexOf(b.framework)
  );
}

const frameworkDataset = (framework: string, extra: Record<string, unknown> = {}) => {
  const { label, colour } = frameworkStyle(framework);
  return { label, borderColor: colour, backgroundColor: colour, ...extra };
};

const axis = (title: string, log = false) => ({
  ...(log ? { type: "logarithmic" } : {}),
  title: { display: true, text: title },
});

/** The cells latency and throughput are charted against concurrency from: the sweep, else batch-1 scenarios. */
function concurrencyCells(ok: CellResult[]): { cells: CellResult[]; source: string } {
  const sweep = ok.filter((c) => c.scenario === "sweep");
  if (sweep.length) return { cells: sweep, source: "the concurrency sweep" };
  return {
    cells: ok.filter((c) => c.batchSize === 1 && c.rateFraction === undefined),
    source: "the batch-1 scenarios",
  };
}

function modelSection(
  model: string,
  ok: CellResult[],
  serverCpus: number,
  targets: Record<string, number>,
): Block[] {
  const blocks: Block[] = [{ kind: "heading", level: 2, text: `Charts: ${model}` }];
  const charts: ChartSpec[] = [];
  const key = model.replace(/[^a-z0-9]+/gi, "-");
  const { cells: curve, source } = concurrencyCells(ok);
  const seqs = [...new Set(ok.map((c) => c.sequenceLength))].sort((a, b) => a - b);
  const heatmaps: Block[] = [];

  for (const seq of seqs) {
    const group = curve.filter((c) => c.sequenceLength === seq);
    if (!group.length) continue;
    const fws = frameworkOrder(group.map((c) => c.framework));
    const points = (f: string, read: (c: CellResult) => number | undefined) =>
      group.filter((c) => c.framework === f).sort((a, b) => a.concurrency - b.concurrency)
        .map((c) => ({ x: c.concurrency, y: read(c) })).filter((p) => finite(p.y));
    charts.push({
      id: `lat-${key}-${seq}`,
      title: `${model}, ${seq} tokens: latency vs concurrency`,
      note: `From ${source}, batch ${
        group[0]!.batchSize
      }, every measured request of every pass. Solid p50, dashed p95, dotted p99; a percentile whose sample is too small is left out. Both axes logarithmic.`,
      config: {
        type: "line",
        data: {
          datasets: fws.flatMap((f) =>
            PERCENTILES.map((p) =>
              frameworkDataset(f, {
                label: `${frameworkStyle(f).label} ${p.label}`,
                // One legend entry per framework; the note explains the line styles.
                hideInLegend: p.key !== "p50",
                data: points(f, (c) => percentile(c, p.key)),
                borderDash: p.dash,
                pointStyle: p.point,
                borderWidth: p.key === "p50" ? 2 : 1.5,
              })
            )
          ),
        },
        options: {
          scales: { x: axis("concurrency", true), y: axis("latency (ms)", true) },
          plugins: { legend: { labels: { usePointStyle: true } } },
        },
      },
    });
    charts.push({
      id: `tput-${key}-${seq}`,
      title: `${model}, ${seq} tokens: throughput vs concurrency`,
      note: `From ${source}; successful requests only. Concurrency axis logarithmic.`,
      config: {
        type: "line",
        data: { datasets: fws.map((f) => frameworkDataset(f, { data: points(f, (c) => c.textsPerSecond) })) },
        options: { scales: { x: axis("concurrency", true), y: { ...axis("texts / s"), beginAtZero: true } } },
      },
    });
    const levels = [...new Set(group.map((c) => c.concurrency))].sort((a, b) => a - b);
    heatmaps.push({
      kind: "heading",
      level: 3,
      text: `${model}, ${seq} tokens: server CPU use (% of the cpuset's ${serverCpus} CPUs) by concurrency`,
    }, {
      kind: "table",
      columns: ["framework", ...levels.map((l) => `c=${l}`)],
      rows: fws.map((f) => [
        { text: frameworkStyle(f).label, swatch: frameworkStyle(f).colour },
        ...levels.map((l): Cell => {
          const cpu = group.find((c) => c.framework === f && c.concurrency === l)?.resources?.cpu
            ?.utilizationPercent;
          // Busy cores can read a hair above the cpuset (the reading spans a little more than oha's run).
          return finite(cpu) ? { text: fmt(Math.min(cpu, 100), 0), heat: cpu / 100 } : "–";
        }),
      ]),
      className: "heatmap",
    });
  }

  // Batching: texts/s of the concurrency-1 scenarios, by batch size.
  for (const seq of seqs) {
    const single = ok.filter((c) =>
      c.sequenceLength === seq && c.scenario !== "sweep" && c.concurrency === 1 &&
      c.rateFraction === undefined
    );
    const batches = [...new Set(single.map((c) => c.batchSize))].sort((a, b) => a - b);
    if (batches.length < 2) continue;
    const fws = frameworkOrder(single.map((c) => c.framework));
    charts.push({
      id: `batch-${key}-${seq}`,
      title: `${model}, ${seq} tokens: batch ${batches.join(" vs ")} at concurrency 1`,
      note: `Texts per second (requests per second × batch size) of the concurrency-1 scenarios (${
        [...new Set(single.map((c) => c.scenario))].join(", ")
      }).`,
      config: {
        type: "bar",
        data: {
          labels: batches.map((b) => `batch ${b}`),
          datasets: fws.map((f) =>
            frameworkDataset(f, {
              data: batches.map((b) =>
                single.find((c) => c.framework === f && c.batchSize === b)?.textsPerSecond ?? null
              ),
            })
          ),
        },
        options: { scales: { y: { ...axis("texts / s"), beginAtZero: true } } },
      },
    });
  }
  if (charts.length) blocks.push({ kind: "charts", charts });
  blocks.push(...heatmaps, ...openLoopSection(model, ok, targets));
  return blocks;
}

/** The highest offered rate whose p99 meets the target, per framework; undefined when none does. */
export function bestRateWithin(cells: CellResult[], targetMs: number): CellResult | undefined {
  return cells.filter((c) => {
    const p99 = percentile(c, "p99");
    return finite(p99) && p99 <= targetMs;
  }).sort((a, b) => (b.openLoop?.offeredRps ?? 0) - (a.openLoop?.offeredRps ?? 0))[0];
}

/** Latency against offered load (open loop), and the highest rate that meets the p99 target. */
function openLoopSection(model: string, ok: CellResult[], targets: Record<string, number>): Block[] {
  const rate = ok.filter((c) => c.rateFraction !== undefined && c.openLoop);
  if (!rate.length) return [];
  const key = model.replace(/[^a-z0-9]+/gi, "-");
  const blocks: Block[] = [{
    kind: "heading",
    level: 3,
    text: `${model}: latency under a fixed arrival rate`,
  }];
  const charts: ChartSpec[] = [];
  const rows: Cell[][] = [];
  for (const seq of [...new Set(rate.map((c) => c.sequenceLength))].sort((a, b) => a - b)) {
    const group = rate.filter((c) => c.sequenceLength === seq);
    const fws = frameworkOrder(group.map((c) => c.framework));
    const target = targets[String(seq)];
    charts.push({
      id: `rate-${key}-${seq}`,
      title: `${model}, ${seq} tokens: latency vs offered load`,
      note:
        `Open loop: requests sent at a fixed rate (a fraction of the framework's best closed-loop throughput), latency counted from each request's scheduled send time. Solid p50, dotted p99${
          target ? `; the p99 target is ${target} ms` : ""
        }.`,
      config: {
        type: "line",
        data: {
          datasets: fws.flatMap((f) =>
            (["p50", "p99"] as const).map((k) =>
              frameworkDataset(f, {
                label: `${frameworkStyle(f).label} ${k}`,
                hideInLegend: k !== "p50",
                data: group.filter((c) => c.framework === f)
                  .sort((a, b) => a.openLoop!.offeredRps - b.openLoop!.offeredRps)
                  .map((c) => ({ x: c.openLoop!.offeredRps, y: percentile(c, k) }))
                  .filter((pt) => finite(pt.y)),
                borderDash: k === "p50" ? [] : [2, 2],
              })
            )
          ),
        },
        options: { scales: { x: axis("offered load (requests / s)"), y: axis("latency (ms)", true) } },
      },
    });
    for (const f of fws) {
      const mine = group.filter((c) => c.framework === f);
      const best = target !== undefined ? bestRateWithin(mine, target) : undefined;
      rows.push([
        { text: frameworkStyle(f).label, swatch: frameworkStyle(f).colour },
        String(seq),
        target !== undefined ? fmt(target, 0) : "–",
        fmt(mine[0]?.openLoop?.capacityRps, 1),
        best
          ? `${fmt(best.openLoop!.offeredRps, 1)} (${fmt(best.rateFraction! * 100, 0)} %)`
          : "none of the offered rates",
      ]);
    }
  }
  blocks.push({ kind: "charts", charts }, {
    kind: "table",
    columns: ["framework", "seq", "p99 target ms", "closed-loop capacity req/s", "highest rate meeting it"],
    textColumns: 1,
    rows,
  });
  return blocks;
}

function verdictCell(v: Verdict): Cell {
  return {
    text: verdictText(v),
    className: v.test?.significant === undefined ? undefined : v.test.significant ? "beyond" : "noise",
    swatch: v.ranking[0] ? frameworkStyle(v.ranking[0].framework).colour : undefined,
  };
}

function summarySection(cells: CellResult[], run: RunInfo, samples: Map<string, CellSample>): Block[] {
  const rows = summarize(cells, run.config.scenarios.map((s) => s.name), samples);
  const blocks: Block[] = [{ kind: "heading", level: 2, text: "Summary" }];
  if (!rows.length) {
    return [...blocks, { kind: "paragraph", text: "No cell completed, so there is nothing to rank." }];
  }
  const verdicts = rows.flatMap((r) => r.verdicts).filter((v) => v.test?.significant !== undefined);
  blocks.push({
    kind: "paragraph",
    text:
      `The leader per scenario and sequence length, its margin over the runner-up, and whether that margin is significant. Latency verdicts use the Brown–Mood quantile test on every measured request of both cells, throughput verdicts Welch's t-test on their window throughputs; each must also hold on the cells' per-pass figures, tested against the pass-to-pass noise pooled over the run, since requests are not independent across container starts. One Holm–Bonferroni correction covers all ${verdicts.length} tested verdicts of this summary, so the chance that any verdict calls two identical configurations different is at most ${
        FAMILY_ALPHA * 100
      } %. Latency is at the scenario's concurrency (the sweep: its lowest level); the sweep's throughput is each framework's best level; memory is the server processes' steady proportional set size (PSS) right after the cell's windows, the median over its passes (the sweep: its highest level), and is not tested (one figure per pass).`,
  });
  const unsteady = cells.filter((c) => c.status === "ok" && c.steady === false);
  const overloaded = cells.filter((c) => c.status === "ok" && c.loadgen?.overloaded);
  const dropped = cells.filter((c) => c.status === "ok" && c.connections?.keepAliveDropped);
  blocks.push({
    kind: "paragraph",
    text: [
      `${cells.filter((c) => c.status === "ok").length - unsteady.length} of ${
        cells.filter((c) => c.status === "ok").length
      } cells reached steady state in every pass${
        unsteady.length ? ` (not: ${unsteady.map((c) => c.id).join(", ")})` : ""
      }.`,
      overloaded.length
        ? `The load generator was over ${
          LOADGEN_BUSY_LIMIT * 100
        } % busy in ${overloaded.length} cell(s), whose figures may be limited by it: ${
          overloaded.map((c) => c.id).join(", ")
        }.`
        : `The load generator stayed under ${LOADGEN_BUSY_LIMIT * 100} % busy in every cell.`,
      dropped.length ? `Keep-alive was dropped in: ${dropped.map((c) => c.id).join(", ")}.` : "",
    ].filter(Boolean).join(" "),
  });
  blocks.push({
    kind: "table",
    columns: [
      "model",
      "seq",
      "scenario",
      "batch",
      "latency at",
      "p50 latency",
      "p99 latency",
      "throughput",
      "memory",
    ],
    textColumns: 9,
    className: "wrap summary",
    rows: rows.map((r) => [
      r.model,
      String(r.sequenceLength),
      r.scenario,
      String(r.batchSize),
      `c=${r.latencyConcurrency}`,
      ...r.verdicts.map(verdictCell),
    ]),
  });
  return blocks;
}

/** The columns that say which cell a table row is (the first three are text). */
export const CELL_COLUMNS = ["model", "framework", "scenario", "seq", "batch", "c", "status"];

/** A cell's values for CELL_COLUMNS, with its status shown as given; open-loop cells name their load. */
export function cellIdentity(c: CellResult, status: Cell): Cell[] {
  return [
    c.model,
    { text: frameworkStyle(c.framework).label, swatch: frameworkStyle(c.framework).colour },
    c.rateFraction !== undefined
      ? `${c.scenario} ${fmt(c.rateFraction * 100, 0)} %${
        c.openLoop ? ` (${fmt(c.openLoop.offeredRps, 1)} req/s)` : ""
      }`
      : c.scenario,
    String(c.sequenceLength),
    String(c.batchSize),
    String(c.concurrency),
    status,
  ];
}

function cellTable(cells: CellResult[]): Block {
  return {
    kind: "table",
    columns: [
      ...CELL_COLUMNS,
      "passes × windows",
      "requests",
      "req/s",
      "texts/s",
      "p50 ms [95 % CI]",
      "p90 ms",
      "p95 ms",
      "p99 ms [95 % CI]",
      "p99.9 ms",
      "mean ms",
      "errors",
      "steady",
      "loadgen busy",
      "connections / window",
    ],
    textColumns: 3,
    rowClasses: cells.map((c) => c.status),
    rows: cells.map((c) => [
      ...cellIdentity(c, c.status === "ok" ? "ok" : { text: "failed", title: c.failure }),
      c.counts ? `${c.counts.passes} × ${fmt(c.counts.windows / Math.max(1, c.counts.passes), 1)}` : "–",
      fmt(c.counts?.successful, 0),
      fmt(c.throughputRps, 1),
      fmt(c.textsPerSecond, 1),
      percentileText(c, "p50", 2, true),
      percentileText(c, "p90"),
      percentileText(c, "p95"),
      percentileText(c, "p99", 2, true),
      percentileText(c, "p999"),
      fmt(c.latencyMs?.mean, 2),
      c.errorRate !== undefined ? `${fmt(c.errorRate * 100, 2)} %` : "–",
      c.steady === undefined ? "–" : c.steady ? "yes" : "no",
      c.loadgen?.busyMax !== undefined
        ? `${fmt(c.loadgen.busyMax * 100, 0)} %${c.loadgen.overloaded ? " (over limit)" : ""}`
        : "–",
      c.connections?.openedMax !== undefined
        ? `${fmt(c.connections.openedMax, 0)} of ${c.connections.perWindow}${
          c.connections.keepAliveDropped ? " (keep-alive dropped)" : ""
        }`
        : "–",
    ]),
  };
}

/** Every cell's resources: the same rows as the cell table, the server's CPU, memory, efficiency and cost. */
export function resourceTable(cells: CellResult[], run: RunInfo): Block {
  return {
    kind: "table",
    columns: [...CELL_COLUMNS, ...resourceColumns(run)],
    textColumns: 3,
    rowClasses: cells.map((c) => c.status),
    rows: cells.map((c) => [
      ...cellIdentity(c, c.status === "ok" ? "ok" : { text: "failed", title: c.failure }),
      ...resourceCells(c),
    ]),
  };
}

function failedSection(cells: CellResult[]): Block[] {
  const failed = cells.filter((c) => c.status === "failed");
  const blocks: Block[] = [{ kind: "heading", level: 2, text: "Failed cells" }];
  if (!failed.length) return [...blocks, { kind: "paragraph", text: "No cell failed." }];
  return [...blocks, {
    kind: "table",
    columns: ["cell", "framework", "reason"],
    textColumns: 3,
    className: "wrap",
    rows: failed.map((c) => [c.id, frameworkStyle(c.framework).label, c.failure ?? "no reason recorded"]),
  }];
}

/** Settings from a server's /info build section that decide its threading. */
const THREAD_KEYS = /thread|interop|intra|stream|hint|execution_mode|parallel/i;

/** The thread policy (container.threads) in words. */
function policyText(run: RunInfo): string {
  const policy = (run.config.container as { threads?: string }).threads;
  return `"${policy ?? "physical"}"${policy ? "" : " (the default; not recorded in this run)"}: ${
    policy === "logical"
      ? "one inference thread per logical CPU of the server cpuset"
      : "one inference thread per physical core of the server cpuset"
  }`;
}

/** The thread policy and the NUM_THREADS each server reported. */
function threadsText(run: RunInfo): string {
  const reported = frameworkOrder(Object.keys(run.frameworks)).map((f) =>
    `${frameworkStyle(f).label} ${run.frameworks[f]?.info?.threads ?? "?"}`
  );
  return `${policyText(run)}; reported by the servers (/info threads): ${reported.join(", ") || "none yet"}`;
}

/** Every library's GEMM figure, and the images that could not be measured. */
function gemmBlocks(run: RunInfo): Block[] {
  const g = run.gemmPeak;
  if (!g?.results?.length) return [];
  return [
    {
      kind: "table",
      columns: ["GEMM calibration: image", "library", "version", "matrix size", "GFLOP/s", "error"],
      textColumns: 3,
      className: "wrap",
      rows: [...g.results].sort((a, b) => (b.gflops || 0) - (a.gflops || 0)).map((r) => [
        r.image,
        r.library,
        r.version ?? "?",
        `${r.size} × ${r.size}`,
        fmt(r.gflops, 1),
        r.error ?? "",
      ]),
    },
    ...(g.problems?.length
      ? [{ kind: "list" as const, items: g.problems.map((p) => `Not measured: ${p}`) }]
      : []),
  ];
}

function environmentSection(run: RunInfo): Block[] {
  const e = run.environment;
  const rows: [string, string][] = [
    [
      "CPU",
      `${e.cpu.model}: ${e.cpu.logicalCpus} logical CPUs, ${e.cpu.physicalCores} physical cores, ${e.cpu.threadsPerCore} thread(s) per core`,
    ],
    ["SIMD flags", e.cpu.simdFlags.join(" ") || "none of avx2, avx512*, amx*, vnni"],
    ["server cpuset", `${run.cpus.server} (${cpusetSize(run.cpus.server)} CPUs)`],
    ["loadgen cpuset", `${run.cpus.loadgen} (${cpusetSize(run.cpus.loadgen)} CPUs)`],
    ["memory", `${fmt(e.memoryBytes / 2 ** 30, 1)} GiB`],
    ["OS, kernel", `${e.os}, ${e.kernel}, cgroup v${e.cgroupVersion ?? "?"}`],
    ["host", e.hostname],
    ["Docker", `engine ${e.tools.dockerServer ?? "?"}, client ${e.tools.docker ?? "?"}`],
    ["oha, Deno", `${e.tools.oha ?? "?"}, ${e.tools.deno}`],
    ["embbench commit", `${e.git.commit ?? "?"}${e.git.dirty ? " (with uncommitted changes)" : ""}`],
    ["run", `${run.startedAt} to ${run.endedAt ?? run.interrupted ?? "still in progress"}`],
    ["NUM_THREADS", threadsText(run)],
    [
      "fp32 GEMM peak",
      run.gemmPeak
        ? `${
          fmt(run.gemmPeak.gflops, 1)
        } GFLOP/s on the server cpuset (CPUs ${run.gemmPeak.cpus}, ${run.gemmPeak.threads} threads), reached by ${run.gemmPeak.library}: the best of every library below`
        : "not measured (measurement.gemm_seconds is 0, no Python framework image was present, or every calibration failed): no cell shows a share of it",
    ],
    ["page cache", pageCacheSentence(run)],
    [
      "price",
      (() => {
        const cost = costOf(run);
        return `${fmt(cost.pricePerHour, 3)} ${cost.currency} per hour, ${cost.instance ?? "?"} (${
          cost.source ?? "source not recorded"
        })`;
      })(),
    ],
  ];
  const fws = frameworkOrder(Object.keys(run.frameworks));
  const details = fws.map((f) => {
    const v = run.frameworks[f]!;
    const info = v.info ?? {};
    const build = (info.build ?? {}) as Record<string, unknown>;
    const threadSettings = Object.entries(build).filter(([k]) => THREAD_KEYS.test(k))
      .map(([k, val]) => `${k}=${typeof val === "object" ? JSON.stringify(val) : val}`);
    return [
      { text: frameworkStyle(f).label, swatch: frameworkStyle(f).colour },
      String(info.framework_version ?? "?"),
      v.image,
      v.imageId ?? "?",
      String(info.threads ?? "?"),
      String(info.cpus ?? "?"),
      threadSettings.join(", ") || "–",
    ];
  });
  return [
    { kind: "heading", level: 2, text: "Environment" },
    {
      kind: "table",
      columns: ["", ""],
      textColumns: 2,
      className: "wrap",
      rows: rows.map(([k, v]) => [k, v]),
    },
    {
      kind: "table",
      columns: ["framework", "version", "image", "image id", "threads", "CPUs seen", "thread settings"],
      textColumns: 7,
      className: "wrap",
      rows: details,
    },
    ...gemmBlocks(run),
    { kind: "preformatted", summary: "Every CPU flag", text: e.cpu.flags.join(" ") },
    {
      kind: "preformatted",
      summary: "Each server's /info answer",
      text: JSON.stringify(Object.fromEntries(fws.map((f) => [f, run.frameworks[f]?.info ?? null])), null, 2),
    },
  ];
}

function methodologySection(run: RunInfo): Block[] {
  const c = run.config;
  const models = Object.entries(run.models).map(([id, m]) =>
    `${id}: ${m.name}, ${m.architecture}, ${m.pooling} pooling${
      m.normalize ? ", L2-normalised" : ""
    }, ${m.embedding_dim} dimensions, at most ${m.max_seq_length} tokens`
  );
  const items = [
    `Models: ${models.join("; ")}.`,
    `Frameworks: ${c.frameworks.map((f) => frameworkStyle(f).label).join(", ")}. ${
      run.verifyGate === true
        ? "Each one had to pass 'embbench verify' (the contract, and embeddings matching the PyTorch reference) before it was timed; one that failed has its cells failed with the reason."
        : run.verifyGate === false
        ? "This run was started with --skip-verify: frameworks were timed without proving they compute the reference embeddings."
        : "Whether frameworks had to pass 'embbench verify' first was not recorded for this run."
    }`,
    `Each framework serves from its own container, one at a time, pinned to CPUs ${run.cpus.server} (${
      cpusetSize(run.cpus.server)
    } CPUs) with a ${c.container.memory_limit} memory limit, NUM_THREADS by the policy ${
      policyText(run)
    } (each server's value is under Environment), batches of at most ${c.container.max_batch} texts and ${c.container.max_inflight} request(s) computed at a time (MAX_INFLIGHT; further requests wait in a FIFO queue). ${
      servingText(c)
    }`,
    `Load: oha pinned to CPUs ${run.cpus.loadgen}, uncompressed answers, a ${c.measurement.timeout_s} s timeout per request. Closed loop: each of c connections sends its next request when the previous one is answered.${
      c.open_loop
        ? ` Open loop: requests arrive at a fixed rate, ${
          c.open_loop.fractions.map((f) => `${f * 100} %`).join(", ")
        } of the framework's best closed-loop batch-1 throughput at that sequence length in the same pass (over its closed-loop batch-1 cells; the first pass's rate is kept), over up to ${c.open_loop.connections} connections, latency counted from each request's scheduled send time (oha -q with --latency-correction).`
        : ""
    }`,
    `Request bodies: for each sequence length (${
      c.input.sequence_lengths.join(", ")
    } tokens) and batch size, distinct bodies (one per line, oha picks one at random per request), texts of exactly that many tokens, special tokens included, so no server can answer from a cache.${
      c.input.prompt_name
        ? ` Every body names the model's "${c.input.prompt_name}" prompt (prompt_name), and its texts are exactly that many tokens with the prompt applied.`
        : " The texts are documents without a prompt."
    }`,
    `Passes: every cell is measured in ${c.measurement.passes} pass(es). Each pass starts every framework's container afresh and takes the frameworks in turn, starting one further each pass, so drift over time is not blamed on one framework. One container serves all of a framework's cells of a model in a pass, one cell after the other.`,
    `Start-up: each server stamps the stages of its start on its monotonic clock (/info startup: process started, runtime ready, model loaded, warm-up answered), and the harness places the stamps on its own timeline through the clock reading /info returns, taken within the harness's /info call (so off by at most half that call's round trip): container start, runtime import, model load and warm-up. Healthy is container creation requested → the first 200 from /health, polled every 20 ms at first and every 200 ms after 50 polls; a server answers 200 only after one warm-up inference. A cell's start-up figures are the medians over its passes' containers.`,
    !(c.measurement.cold_starts >= 0)
      ? "How many cold starts were measured was not recorded for this run."
      : c.measurement.cold_starts > 0
      ? `Cold starts: before a framework's first container for a model's cells (in the first pass, or a later one if they failed), ${c.measurement.cold_starts} fresh containers are started one after the other with WARMUP=0 (healthy as soon as the model is loaded, no warm-up inference), each after the page-cache eviction below. The harness times the first /embed each container ever answers, from sending it to reading the whole answer with its own HTTP client (a new loopback connection, not oha), with the first body of the smallest batch at the shortest sequence length among the framework's cells of the model, then the same request again; the report gives medians over the starts.`
      : "Cold starts were not measured (measurement.cold_starts is 0).",
    `Each pass of a cell: a discarded warm-up of max(${c.input.warmup_requests}, 2 × concurrency) requests at the cell's own concurrency over oha's connections, then windows of ${c.measurement.window_s} s (longer for cells too slow to fill one with 20 requests) until the last ${c.measurement.steady_windows} windows' throughput agree within ${
      c.measurement.steady_tolerance * 100
    } % and the pass has its share of the cell's requests, or ${c.measurement.max_s} s of windows pass. Cells that did not reach steady state are marked. In each window the requests sent before its first answer (one per connection: connection set-up and the initial burst) are set apart; throughput is taken between completions, from the answer to the last of those openers to the last answer before the deadline, so no partial request at either end biases it.`,
    `Figures: every percentile (p50, p90, p95, p99, p99.9), the mean, min and max come from the pooled measured successful requests of all windows of all passes, never from other percentiles. Each percentile has a 95 % distribution-free confidence interval from order statistics. A percentile p is shown only when the cell has at least 10 / (1 − p) requests (1,000 for p99, 10,000 for p99.9); otherwise it says how many it needs. Every request is kept in logs/requests/.`,
    `Verdicts: a lead or a change is significant when two tests both reject after one Holm–Bonferroni correction over all verdicts of the summary or comparison (family-wise error ${
      FAMILY_ALPHA * 100
    } %): the Brown–Mood quantile test on the per-request latencies (Welch's t-test on window throughputs for throughput), and, because requests are not independent across container starts, a t-test of the cells' per-pass figures (log scale) against the pass-to-pass noise pooled over every cell of the run. The larger p-value counts, so a difference between containers alone is not called one; each cell has ${c.measurement.passes} passes.`,
    `Load generator: oha's own CPU time is measured in every window; a cell where it was over ${
      LOADGEN_BUSY_LIMIT * 100
    } % busy is flagged. Connections opened per window are counted from the kernel's socket tables (client ports to the server's port that were not there before the window, TIME_WAIT included); more than the concurrency, beyond 10 % + 2, marks a server that drops keep-alive.${
      run.placement
        ? ` The harness and the container engine ran on CPUs ${run.placement.cpus}${
          run.placement.notMoved.length ? `, except: ${run.placement.notMoved.join("; ")}` : ""
        }.`
        : ""
    }`,
    `Server CPU: the container cgroup's CPU time (cgroup v2 cpu.stat usage_usec, v1 cpuacct.usage; Docker's stats API when the cgroup files are not on this host) is read right before oha is spawned and right after it exits, in every measured window, so it covers the window's whole oha run, its start and its wait for the requests in flight included (the warm-up is outside). CPU per request: those CPU seconds over the answers oha received in the same spans (2xx or not, each window's openers included); per 1,000 tokens: per request over batch × sequence length / 1,000. Busy cores: CPU seconds over the spans' wall seconds, the mean over all windows of all passes and the busiest window of at least 1 s; CPU % of cpuset is the mean busy cores over the cpuset's ${
      cpusetSize(run.cpus.server)
    } CPUs. Steal: the host's stolen CPU time over all its CPU time in the same spans (/proc/stat, host-wide), shown when the host reports any.`,
    `Memory: before each container starts, the harness evicts the model's files from the page cache (dd iflag=nocache, then fincore checks what stayed cached), so that the container's load reads them and the pages it maps are charged to it. In this run: ${
      run.pageCache === undefined
        ? "not recorded."
        : run.pageCache === "evicted"
        ? "every container started with them evicted."
        : `not always: ${run.pageCache}.`
    } Load peak: the cgroup's memory peak (v2 memory.peak, v1 memory.max_usage_in_bytes) when /health first answers 200, which counts the container's anonymous memory and the page cache charged to it: the model's files (evicted before it started), but not library or image files an earlier container already read, which stay charged to that container; so for a small model the load peak can be below the steady PSS, which counts every page a process maps. After each cell's windows, the harness reads /proc/<pid>/smaps_rollup of every process in the container (docker exec): proportional set size (PSS), as anonymous (Pss_Anon) and file-backed (Pss_File + Pss_Shmem), and RSS; a cell's steady figures are the medians over its passes, its load peak and its peak to the end of its windows the highest. Later cells of a container include what earlier cells left allocated.`,
    `Where the time goes: each server counts its /embed requests answered 200 and the seconds they spent in each phase (GET /metrics: parse, tokenize, queue, inference, serialize, and the whole request; docker/CONTRACT.md). The harness reads the counters just before and after each measured window, sums the differences over every window of every pass and divides by the requests counted. HTTP is the client's mean latency of the measured requests minus the server's mean request time (the counters also cover each window's openers, which the client's mean leaves out). A server without /metrics has no phase figures.`,
    `Efficiency: the floating-point operations of a request are counted from the model's config.json as its matrix multiplies (projections, attention scores and their weighted sum, the MLP; 2 per multiply-add) at the cell's sequence length × batch size, leaving out layer norms, softmax, activations, embeddings and pooling, so achieved GFLOP/s (throughput × operations per request) is a slight underestimate. The fp32 GEMM peak is measured once per run in each Python framework image present (numpy's BLAS, ONNX Runtime's MLAS, torch, OpenVINO), on the server cpuset with the servers' NUM_THREADS, ${
      c.measurement.gemm_seconds ?? "?"
    } s per library and matrix size (square float32 matrices); the best figure of all is the peak, so one library's slow path does not lower the bar.`,
    costSentence(run),
    `A cell fails when its failed fraction of requests is above ${
      fmt(c.max_error_rate * 100, 2)
    } %, when its container exits (crash, OOM kill) or when its server does not come up. Throughput counts successful (2xx) answers only${
      c.max_error_rate > 0
        ? `; because failures are tolerated, each failed request counts at the ${c.measurement.timeout_s} s timeout in the percentiles`
        : ""
    }.`,
  ];
  if (run.quick) {
    items.unshift(
      "This is a --quick run: a small model and short cells, for trying the pipeline, not for decisions.",
    );
  }
  return [
    { kind: "heading", level: 2, text: "Methodology" },
    { kind: "list", items },
    {
      kind: "table",
      columns: ["scenario", "concurrency", "batch", "requests"],
      rows: [
        ...c.scenarios.map((
          s,
        ) => [s.name, String(s.concurrency), String(s.batch_size), String(s.num_requests)]),
        ...(c.concurrency_sweep
          ? [[
            "sweep",
            c.concurrency_sweep.levels.join(", "),
            String(c.concurrency_sweep.batch_size),
            `${c.concurrency_sweep.num_requests} per level`,
          ]]
          : []),
      ],
    },
    {
      kind: "preformatted",
      summary: "The effective configuration",
      text: JSON.stringify(run.config, null, 2),
    },
  ];
}

/**
 * The report of one run. `samples` holds each cell's per-request latencies and window rates (read
 * from logs/ by the caller) for the summary's tests; without them verdicts say "not tested".
 */
export function buildReport(
  run: RunInfo,
  cellList: CellResult[],
  samples: Map<string, CellSample> = new Map(),
): ReportDocument {
  const cells = sortCells(cellList, run.config.scenarios.map((s) => s.name));
  const ok = cells.filter((c) => c.status === "ok");
  const failed = cells.length - ok.length;
  const serverCpus = cpusetSize(run.cpus.server);
  const models = [...new Set(cells.map((c) => c.model))];
  return {
    title: `embbench run ${run.runId}`,
    subtitle: `${cells.length} cells: ${ok.length} ok, ${failed} failed${
      run.interrupted ? "; the run was interrupted" : ""
    }${run.quick ? ". A --quick run: small model, short cells, not a benchmark result." : "."}`,
    blocks: [
      ...summarySection(cells, run, samples),
      ...recommendationsSection(run, cells, samples),
      ...servingSection(cells),
      ...models.flatMap((m) =>
        modelSection(
          m,
          ok.filter((c) => c.model === m),
          serverCpus,
          run.config.open_loop?.p99_target_ms ?? {},
        )
      ),
      ...cpuSection(run, cells),
      ...memorySection(run, cells),
      ...startupSection(run, cells),
      ...phasesSection(cells),
      ...efficiencySection(run, cells),
      ...costSection(run, cells),
      { kind: "heading", level: 2, text: "Every cell" },
      {
        kind: "paragraph",
        text:
          "Percentiles come from every measured request of the cell; brackets hold 95 % confidence intervals. A percentile its sample cannot support says how many requests it needs. Throughput and latency count successful (2xx) responses only. The server's resources for the same cells follow in the next table.",
      },
      cellTable(cells),
      { kind: "heading", level: 3, text: "Every cell: resources" },
      {
        kind: "paragraph",
        text:
          `The server's CPU time per answered request (ms), per 1,000 input tokens, and as a share of the cpuset's ${serverCpus} CPUs; busy cores, the mean over the windows and the busiest window (capped at the cpuset's CPUs); steady PSS after the cell's windows (anonymous + file-backed), the container's load peak (cgroup, page cache included); achieved GFLOP/s and its share of the measured GEMM peak; cost per million embeddings in ${
            costOf(run).currency
          } (see Cost); the mean inputs per inference the server ran; load ms, the median over the cell's containers of container creation to healthy. "–": the cell has no such figure (a failed pass, a server without /metrics, a skipped calibration).`,
      },
      resourceTable(cells, run),
      ...failedSection(cells),
      ...environmentSection(run),
      ...methodologySection(run),
    ],
  };
}

/** The methodology's sentence on the serving modes the run measured (docker/CONTRACT.md). */
function servingText(
  c: { serving?: readonly string[]; container: { max_batch_tokens?: number; max_wait_us?: number } },
): string {
  const modes = c.serving ?? ["sequential"];
  const sequential =
    "sequential: each request's texts are tokenized, padded to their longest row and run as one inference";
  const batched = `batched: the server joins queued requests into one inference of at most ${
    c.container.max_batch_tokens ?? 16384
  } padded tokens, waiting at most ${
    c.container.max_wait_us ?? 0
  } µs for more, and returns each request its own rows (text-embeddings-inference's way)`;
  const described = modes.map((m) => m === "batched" ? batched : sequential);
  return modes.length > 1
    ? `Each framework is measured in ${modes.length} serving modes, labelled apart (batched cells as "<framework>+batched"): ${
      described.join("; ")
    }.`
    : `Serving mode ${described[0]}.`;
}
