/**
 * Renders a run as report.html (one self-contained page, Chart.js inlined, no network needed to view
 * it) and report.md (its markdown twin). It only presents what the collectors recorded, with
 * summaries of it (report/summary.ts); it measures nothing.
 */
import type { CellResult, RunInfo } from "../lib/results/results.ts";
import type { CellSample } from "../lib/stats/verdicts.ts";
import { blocksToMarkdown, documentToHtml, type ReportDocument } from "./document.ts";
import { buildReport } from "./report.ts";

export interface RenderedReport {
  html: string;
  markdown: string;
}

export async function renderDocument(doc: ReportDocument): Promise<RenderedReport> {
  return { html: await documentToHtml(doc), markdown: blocksToMarkdown(doc) };
}

/** The report of one run, as HTML and markdown. */
export function renderReport(
  run: RunInfo,
  cells: CellResult[],
  samples?: Map<string, CellSample>,
): Promise<RenderedReport> {
  return renderDocument(buildReport(run, cells, samples));
}
