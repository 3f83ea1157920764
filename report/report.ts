/**
 * The run report as a document: summary, charts, every cell, failures, environment and the
 * methodology, all from run.json and the cell files. render.ts turns it into HTML and markdown.
 */
import type { CellResult, RunInfo } from "../lib/results/results.ts";
import { cpusetSize } from "../lib/server/server.ts";
import { median, spread } from "../lib/stats/noise.ts";
import { type Block, type Cell, type ChartSpec, finite, fmt, type ReportDocument } from "./document.ts";
import {
  frameworkOrder,
  frameworkStyle,
  METRICS,
  summarize,
  type Verdict,
  verdictText,
  withRange,
} from "./summary.ts";

const MIB = 2 ** 20;
/** Line style per latency percentile, the same in every chart. */
const PERCENTILES = [
  { key: "p50", label: "p50", dash: [] as number[], point: "circle" },
  { key: "p95", label: "p95", dash: [6, 3], point: "triangle" },
  { key: "p99", label: "p99", dash: [2, 2], point: "rect" },
] as const;

/** Cells ordered for tables: model, sequence length, scenario (config order, sweep last), concurrency, framework. */
export function sortCells(cells: CellResult[], scenarioOrder: string[]): CellResult[] {
  const fw = frameworkOrder(cells.map((c) => c.framework));
  const sc = (s: string) => (s === "sweep" ? 1e6 : scenarioOrder.indexOf(s));
  return [...cells].sort((a, b) =>
    a.model.localeCompare(b.model) || a.sequenceLength - b.sequenceLength ||
    sc(a.scenario) - sc(b.scenario) ||
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
  return { cells: ok.filter((c) => c.batchSize === 1), source: "the batch-1 scenarios" };
}

function modelSection(model: string, ok: CellResult[], all: CellResult[], serverCpus: number): Block[] {
  const blocks: Block[] = [{ kind: "heading", level: 2, text: `Charts: ${model}` }];
  const charts: ChartSpec[] = [];
  const key = model.replace(/[^a-z0-9]+/gi, "-");
  const { cells: curve, source } = concurrencyCells(ok);
  const seqs = [...new Set(ok.map((c) => c.sequenceLength))].sort((a, b) => a - b);
  const frameworks = frameworkOrder(all.map((c) => c.framework));
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
      }. Solid p50, dashed p95, dotted p99; both axes logarithmic.`,
      config: {
        type: "line",
        data: {
          datasets: fws.flatMap((f) =>
            PERCENTILES.map((p) =>
              frameworkDataset(f, {
                label: `${frameworkStyle(f).label} ${p.label}`,
                // One legend entry per framework; the note explains the line styles.
                hideInLegend: p.key !== "p50",
                data: points(f, (c) => c.oha?.latencyMs[p.key]),
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
    heatmaps.push({ kind: "heading", level: 3, text: `${model}, ${seq} tokens: mean CPU % by concurrency` }, {
      kind: "table",
      columns: ["framework", ...levels.map((l) => `c=${l}`)],
      rows: fws.map((f) => [
        { text: frameworkStyle(f).label, swatch: frameworkStyle(f).colour },
        ...levels.map((l): Cell => {
          const cpu = group.find((c) => c.framework === f && c.concurrency === l)?.resources?.cpuPercentMean;
          return finite(cpu) ? { text: fmt(cpu, 0), heat: cpu / (serverCpus * 100) } : "–";
        }),
      ]),
      className: "heatmap",
    });
  }

  // Memory over all of a framework's cells for this model.
  const memory = frameworks.map((f) => {
    const r = ok.filter((c) => c.framework === f && c.resources).map((c) => c.resources!);
    const samples = r.reduce((a, x) => a + x.samples, 0);
    return {
      f,
      peak: r.length ? Math.max(...r.map((x) => x.rssBytesPeak)) / MIB : undefined,
      mean: samples ? r.reduce((a, x) => a + x.rssBytesMean * x.samples, 0) / samples / MIB : undefined,
    };
  }).filter((m) => finite(m.peak));
  if (memory.length) {
    charts.push({
      id: `rss-${key}`,
      title: `${model}: resident memory per framework`,
      note: "Peak: the highest sample of any cell; mean: over every sample of every cell (MiB).",
      config: {
        type: "bar",
        data: {
          labels: ["peak RSS", "mean RSS"],
          datasets: memory.map((m) => frameworkDataset(m.f, { data: [m.peak, m.mean ?? null] })),
        },
        options: { scales: { y: { ...axis("MiB"), beginAtZero: true } } },
      },
    });
  }

  // Start-up: load time and the cold first request, per framework (median over its containers).
  const startup = frameworks.map((f) => {
    const mine = all.filter((c) => c.framework === f);
    return {
      f,
      load: spread(mine.map((c) => c.loadTimeMs))?.median,
      cold: spread(mine.map((c) => c.firstRequestMs))?.median,
    };
  });
  for (
    const [id, title, unit, read, scale] of [
      ["load", "model load time (container start to healthy)", "s", (s: typeof startup[0]) => s.load, 1000],
      ["cold", "cold first request (first /embed after healthy)", "ms", (s: typeof startup[0]) => s.cold, 1],
    ] as const
  ) {
    const have = startup.filter((s) => finite(read(s)));
    if (!have.length) continue;
    charts.push({
      id: `${id}-${key}`,
      title: `${model}: ${title}`,
      note: id === "cold"
        ? "At the first cell's sequence length and batch size; median when a container was restarted."
        : "Median over the framework's containers when one was restarted.",
      config: {
        type: "bar",
        data: {
          labels: [title.replace(/ \(.*/, "")],
          datasets: have.map((s) => frameworkDataset(s.f, { data: [read(s)! / scale] })),
        },
        options: { scales: { y: { ...axis(unit), beginAtZero: true } } },
      },
    });
  }

  // Batching: texts/s of the concurrency-1 scenarios, by batch size.
  for (const seq of seqs) {
    const single = ok.filter((c) =>
      c.sequenceLength === seq && c.scenario !== "sweep" && c.concurrency === 1
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
  blocks.push({ kind: "charts", charts }, ...heatmaps);
  return blocks;
}

function verdictCell(v: Verdict): Cell {
  return {
    text: verdictText(v),
    className: v.beyondNoise === undefined ? undefined : v.beyondNoise ? "beyond" : "noise",
    swatch: v.ranking[0] ? frameworkStyle(v.ranking[0].framework).colour : undefined,
  };
}

function summarySection(cells: CellResult[], run: RunInfo): Block[] {
  const rows = summarize(cells, run.config.scenarios.map((s) => s.name));
  const blocks: Block[] = [{ kind: "heading", level: 2, text: "Summary" }];
  if (!rows.length) {
    return [...blocks, { kind: "paragraph", text: "No cell completed, so there is nothing to rank." }];
  }
  blocks.push({
    kind: "paragraph",
    text:
      `The leader per scenario and sequence length, its margin over the runner-up, and whether that margin is beyond the noise: "beyond noise" means the two frameworks' ranges over ${
        run.config.repetitions ?? 1
      } repetition(s) do not overlap; "within noise" means they do, so the order may not hold in another run. Latency is at the scenario's concurrency (the sweep: its lowest level); the sweep's throughput is each framework's best level; memory is peak RSS (the sweep: its highest).`,
  });
  const ranges = cells.flatMap((c) => {
    const s = c.status === "ok" ? c.noise?.textsPerSecond : undefined;
    return s && s.n > 1 ? [{ id: c.id, pct: s.relativeRangePercent }] : [];
  }).sort((a, b) => a.pct - b.pct);
  if (ranges.length) {
    const widest = ranges.at(-1)!;
    blocks.push({
      kind: "paragraph",
      text:
        `Noise in this run: across ${ranges.length} cells, the spread of throughput between a cell's repetitions (max − min, as % of the median) has a median of ${
          fmt(median(ranges.map((r) => r.pct)), 1)
        } % and a maximum of ${fmt(widest.pct, 1)} % (${widest.id}).`,
    });
  } else {
    blocks.push({
      kind: "paragraph",
      text: "This run measured no noise (one repetition per cell): no margin below can be judged against it.",
    });
  }
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

/** A cell's values for CELL_COLUMNS, with its status shown as given. */
export function cellIdentity(c: CellResult, status: Cell): Cell[] {
  return [
    c.model,
    { text: frameworkStyle(c.framework).label, swatch: frameworkStyle(c.framework).colour },
    c.scenario,
    String(c.sequenceLength),
    String(c.batchSize),
    String(c.concurrency),
    status,
  ];
}

function cellTable(cells: CellResult[]): Block {
  const n = METRICS;
  return {
    kind: "table",
    columns: [
      ...CELL_COLUMNS,
      "reps",
      "req/s",
      "texts/s (range)",
      "p50 ms (range)",
      "p95 ms",
      "p99 ms (range)",
      "p99.9 ms",
      "errors",
      "CPU % mean",
      "CPU % peak",
      "RSS MiB mean",
      "RSS MiB peak (range)",
      "load ms",
      "cold ms",
    ],
    textColumns: 3,
    rowClasses: cells.map((c) => c.status),
    rows: cells.map((c) => [
      ...cellIdentity(c, c.status === "ok" ? "ok" : { text: "failed", title: c.failure }),
      String(c.repetitions?.length ?? (c.oha ? 1 : 0)),
      fmt(c.oha?.throughputRps, 1),
      withRange(c.textsPerSecond, n.texts.spread(c), 1),
      withRange(c.oha?.latencyMs.p50, n.p50.spread(c), 2),
      fmt(c.oha?.latencyMs.p95, 2),
      withRange(c.oha?.latencyMs.p99, n.p99.spread(c), 2),
      fmt(c.oha?.latencyMs.p999, 2),
      c.oha ? `${fmt(c.oha.errorRate * 100, 2)} %` : "–",
      fmt(c.resources?.cpuPercentMean, 0),
      fmt(c.resources?.cpuPercentPeak, 0),
      fmt(c.resources ? c.resources.rssBytesMean / MIB : undefined, 0),
      withRange(n.rss.value(c), n.rss.spread(c), 0),
      fmt(c.loadTimeMs, 0),
      fmt(c.firstRequestMs, 1),
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
    `Each framework serves from its own container, one at a time, pinned to CPUs ${run.cpus.server} with a ${c.container.memory_limit} memory limit, NUM_THREADS set to ${
      cpusetSize(run.cpus.server)
    } (the cpuset's size), batches of at most ${c.container.max_batch} texts and ${c.container.max_inflight} request(s) computed at a time.`,
    `Load: oha pinned to CPUs ${run.cpus.loadgen}, closed loop (each of c connections sends its next request when the previous one is answered), a fixed number of requests per cell, uncompressed answers, 120 s timeout per request.`,
    `Request bodies: for each sequence length (${
      c.input.sequence_lengths.join(", ")
    } tokens), texts of exactly that many tokens, special tokens included, batch size per scenario.`,
    `Before a framework's first cell the harness records its load time (container start to healthy /health) and one cold /embed; then ${c.input.warmup_requests} warm-up requests per request body, untimed.`,
    `Repetitions: each cell's requests are split over ${
      c.repetitions ?? 1
    } back-to-back oha runs. The cell's throughput counts all of them; its percentiles are the median of the runs' percentiles; the min–max range over the runs is the cell's noise, shown in brackets.`,
    `Resources: CPU and memory are read from the container's cgroup every 250 ms during each run. CPU % is of one CPU (${
      cpusetSize(run.cpus.server) * 100
    } = every server CPU busy); RSS is anonymous memory.`,
    `A cell fails when its error rate is above ${
      fmt(c.max_error_rate * 100, 2)
    } %, when its container exits (crash, OOM kill) or when its server does not come up; throughput and latency count successful (2xx) responses only.`,
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

/** The report of one run. */
export function buildReport(run: RunInfo, cellList: CellResult[]): ReportDocument {
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
      ...summarySection(cells, run),
      ...models.flatMap((m) =>
        modelSection(m, ok.filter((c) => c.model === m), cells.filter((c) => c.model === m), serverCpus)
      ),
      { kind: "heading", level: 2, text: "Every cell" },
      {
        kind: "paragraph",
        text:
          "Ranges in brackets are min–max over the cell's repetitions. Throughput and latency count successful (2xx) responses only. CPU % is of one CPU. Load ms is container start to healthy; cold ms is the first request after healthy.",
      },
      cellTable(cells),
      ...failedSection(cells),
      ...environmentSection(run),
      ...methodologySection(run),
    ],
  };
}
