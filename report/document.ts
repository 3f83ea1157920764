/**
 * A report as a list of blocks (headings, text, tables, charts), rendered twice: as one
 * self-contained HTML page and as its markdown twin. Sections are built once; the two renderers only
 * format, so the page and the markdown cannot drift apart.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** A chart the page draws: a Chart.js configuration (plain JSON, no functions). */
export interface ChartSpec {
  id: string;
  title: string;
  /** What the chart shows and how to read it (line styles, axes). */
  note?: string;
  config: Record<string, unknown>;
  /**
   * The chart's figures are in the table that follows it (with more than the chart shows): the
   * markdown twin then names the chart instead of repeating its data as a table.
   */
  tableFollows?: boolean;
}

/** One table cell: its text, and optionally a tooltip, a class and a heat (0–1) for heatmaps. */
export interface TableCell {
  text: string;
  title?: string;
  className?: string;
  heat?: number;
  /** Colour swatch shown before the text (a framework's colour). */
  swatch?: string;
}

export type Cell = string | TableCell;

export type Block =
  | { kind: "heading"; level: 2 | 3; text: string }
  | { kind: "paragraph"; text: string }
  | { kind: "list"; items: string[] }
  | {
    kind: "table";
    columns: string[];
    rows: Cell[][];
    /** Columns (by index) aligned left; the rest are numbers, aligned right. */
    textColumns?: number;
    className?: string;
    /** Class per row (e.g. "failed"). */
    rowClasses?: (string | undefined)[];
  }
  | { kind: "charts"; charts: ChartSpec[] }
  | { kind: "preformatted"; summary: string; text: string };

export interface ReportDocument {
  title: string;
  /** One line under the title. */
  subtitle: string;
  blocks: Block[];
}

export const esc = (s: unknown) =>
  String(s ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );

const cellOf = (c: Cell): TableCell => (typeof c === "string" ? { text: c } : c);

/** Background of a heatmap cell: white (0) to a saturated orange (1). */
export function heatColour(heat: number): string {
  const h = Math.max(0, Math.min(1, heat));
  const mix = (from: number, to: number) => Math.round(from + (to - from) * h);
  return `rgb(${mix(255, 230)}, ${mix(255, 97)}, ${mix(255, 1)})`;
}

function tableHtml(b: Extract<Block, { kind: "table" }>): string {
  const textColumns = b.textColumns ?? 1;
  const td = (raw: Cell, i: number, tag: "td" | "th") => {
    const c = cellOf(raw);
    const classes = [i < textColumns ? "text" : "num", c.className].filter(Boolean).join(" ");
    const style = c.heat !== undefined ? ` style="background:${heatColour(c.heat)}"` : "";
    const title = c.title ? ` title="${esc(c.title)}"` : "";
    const swatch = c.swatch ? `<span class="swatch" style="background:${esc(c.swatch)}"></span>` : "";
    return `<${tag} class="${classes}"${style}${title}>${swatch}${esc(c.text)}</${tag}>`;
  };
  const head = `<tr>${b.columns.map((h, i) => td(h, i, "th")).join("")}</tr>`;
  const rows = b.rows.map((r, ri) => {
    const cls = b.rowClasses?.[ri];
    return `<tr${cls ? ` class="${esc(cls)}"` : ""}>${r.map((c, i) => td(c, i, "td")).join("")}</tr>`;
  });
  return `<div class="scroll"><table${
    b.className ? ` class="${esc(b.className)}"` : ""
  }><thead>${head}</thead><tbody>\n${rows.join("\n")}\n</tbody></table></div>`;
}

/** The blocks as HTML (the page's body content; charts become canvases the page script draws). */
export function blocksToHtml(blocks: Block[]): string {
  return blocks.map((b) => {
    switch (b.kind) {
      case "heading":
        return `<h${b.level} id="${slug(b.text)}">${esc(b.text)}</h${b.level}>`;
      case "paragraph":
        return `<p>${esc(b.text)}</p>`;
      case "list":
        return `<ul>${b.items.map((i) => `<li>${esc(i)}</li>`).join("")}</ul>`;
      case "table":
        return tableHtml(b);
      case "charts":
        return `<div class="charts">${
          b.charts.map((c) =>
            `<figure><figcaption>${esc(c.title)}</figcaption><div class="chart"><canvas id="${
              esc(c.id)
            }" role="img" aria-label="${esc(c.title)}"></canvas></div>${
              c.note ? `<p class="note">${esc(c.note)}</p>` : ""
            }</figure>`
          ).join("\n")
        }</div>`;
      case "preformatted":
        return `<details><summary>${esc(b.summary)}</summary><pre>${esc(b.text)}</pre></details>`;
    }
  }).join("\n");
}

export function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

/** Markdown table text: pipes and newlines escaped. */
const mdText = (s: string) => s.replaceAll("\\", "\\\\").replaceAll("|", "\\|").replace(/\s*\n\s*/g, " ");

/** The blocks as GitHub-flavoured markdown; charts are listed by title (their data are in the tables). */
export function blocksToMarkdown(doc: ReportDocument): string {
  const out: string[] = [`# ${doc.title}`, "", doc.subtitle, ""];
  for (const b of doc.blocks) {
    switch (b.kind) {
      case "heading":
        out.push(`${"#".repeat(b.level)} ${b.text}`, "");
        break;
      case "paragraph":
        out.push(b.text, "");
        break;
      case "list":
        out.push(...b.items.map((i) => `- ${i}`), "");
        break;
      case "table": {
        const textColumns = b.textColumns ?? 1;
        out.push(`| ${b.columns.map(mdText).join(" | ")} |`);
        out.push(`|${b.columns.map((_, i) => (i < textColumns ? " --- " : " ---: ")).join("|")}|`);
        for (const r of b.rows) out.push(`| ${r.map((c) => mdText(cellOf(c).text)).join(" | ")} |`);
        out.push("");
        break;
      }
      case "charts":
        for (const c of b.charts) {
          if (c.tableFollows) {
            out.push(`**${c.title}** (a chart in report.html; its figures are in the table below)`, "");
            if (c.note) out.push(c.note, "");
            continue;
          }
          const t = chartTable(c);
          out.push(`**${c.title}** (a chart in report.html)`, "");
          if (c.note) out.push(c.note, "");
          out.push(
            `| ${t.columns.map(mdText).join(" | ")} |`,
            `| --- |${" ---: |".repeat(t.columns.length - 1)}`,
          );
          for (const r of t.rows) out.push(`| ${r.map(mdText).join(" | ")} |`);
          out.push("");
        }
        break;
      case "preformatted":
        out.push(
          `<details><summary>${esc(b.summary)}</summary>`,
          "",
          "```",
          b.text,
          "```",
          "",
          "</details>",
          "",
        );
        break;
    }
  }
  return out.join("\n").replace(/\n{3,}/g, "\n\n").trimEnd() + "\n";
}

export const finite = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v);

/** A number with fixed decimals and thousands separators; "–" for missing values. */
export function fmt(v: number | undefined, digits = 1): string {
  if (!finite(v)) return "–";
  const text = v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
  // A tiny negative (a difference of two equal figures) rounds to "-0.00": show it as zero.
  return /^-[0.,]+$/.test(text) ? text.slice(1) : text;
}

/** A chart value with as many decimals as its size needs: 0.12, 12.3, 1,234. */
const chartNumber = (v: unknown) =>
  typeof v === "number" ? fmt(v, Math.abs(v) < 10 ? 2 : Math.abs(v) < 1000 ? 1 : 0) : "–";

/** A chart's data as a table: a row per dataset, a column per label (bar) or x value (line). */
export function chartTable(chart: ChartSpec): { columns: string[]; rows: string[][] } {
  const data = chart.config.data as {
    labels?: unknown[];
    datasets: { label: string; data: (number | null | { x: number; y: number })[] }[];
  };
  const xy = (p: unknown): p is { x: number; y: number } => typeof p === "object" && p !== null && "x" in p;
  if (data.labels) {
    return {
      columns: ["", ...data.labels.map(String)],
      rows: data.datasets.map((d) => [d.label, ...d.data.map(chartNumber)]),
    };
  }
  const xs = [...new Set(data.datasets.flatMap((d) => d.data.filter(xy).map((p) => p.x)))].sort((a, b) =>
    a - b
  );
  const axis = (chart.config.options as { scales?: { x?: { title?: { text?: string } } } })?.scales?.x?.title
    ?.text;
  return {
    columns: ["", ...xs.map((x) => `${axis === "concurrency" ? "c=" : ""}${x}`)],
    rows: data.datasets.map((
      d,
    ) => [d.label, ...xs.map((x) => chartNumber(d.data.filter(xy).find((p) => p.x === x)?.y))]),
  };
}

/** Chart.js's UMD bundle from the pinned npm package. */
export async function chartJsSource(): Promise<string> {
  const require = createRequire(import.meta.url);
  return await Deno.readTextFile(join(dirname(require.resolve("chart.js")), "chart.umd.min.js"));
}

/** The whole HTML page: template, Chart.js inlined, chart configurations as JSON. */
export async function documentToHtml(doc: ReportDocument): Promise<string> {
  const charts = doc.blocks.flatMap((b) => (b.kind === "charts" ? b.charts : []));
  const toc = doc.blocks.filter((b) => b.kind === "heading" && b.level === 2).map((b) =>
    `<a href="#${slug((b as { text: string }).text)}">${esc((b as { text: string }).text)}</a>`
  ).join(" · ");
  const template = await Deno.readTextFile(new URL("./template.html", import.meta.url));
  const fill: Record<string, string> = {
    TITLE: esc(doc.title),
    SUBTITLE: esc(doc.subtitle),
    TOC: toc,
    BODY: blocksToHtml(doc.blocks),
    CHART_JS: (await chartJsSource()).replaceAll("</script", "<\\/script"),
    CHART_DATA: JSON.stringify(charts.map((c) => ({ id: c.id, config: c.config }))).replaceAll("</", "<\\/"),
  };
  return template.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => fill[k] ?? "");
}
