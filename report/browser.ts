/**
 * Opens a static HTML report in headless Chromium (Debian's package, not a Playwright browser build) and
 * tells what happened: console errors, uncaught exceptions, failed loads, every request the page tried
 * (all blocked: a report must work offline), whether each canvas got drawn, and the title.
 *
 * Drives Chromium with playwright-core over its pipe transport; this works under Deno's Node
 * compatibility layer, so there is no hand-written DevTools Protocol client here.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import type { BrowserContext, Page } from "playwright-core";

export interface PageCheck {
  /** console.error messages, uncaught exceptions, failed resource loads and page errors, in order. */
  consoleErrors: string[];
  /** Every URL the page tried to fetch other than the file itself (each once, in order); all were blocked. */
  requests: string[];
  /**
   * Every `<canvas>` of the page in document order: its id (`canvas[N]` when it has none), its bitmap
   * size, and whether it has at least one non-transparent pixel that differs from its background, i.e.
   * it has a non-transparent pixel and is not all one colour (a canvas only filled with a background
   * colour counts as not drawn).
   */
  canvases: { id: string; width: number; height: number; drawn: boolean }[];
  title: string;
}

/** Flags for a quiet, offline, throwaway browser; Playwright adds its own pipe, profile and headless ones. */
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/** Longest wait for the page to load, and for its canvases to stop changing after that. */
const LOAD_TIMEOUT_MS = 30_000;
const SETTLE_TIMEOUT_MS = 10_000;
/** Canvases are sampled this far apart; two equal samples in a row count as rendered. */
const SETTLE_POLL_MS = 250;

/** The executable checkPage() starts: $CHROMIUM, else Debian's /usr/bin/chromium. */
export function chromiumPath(): string {
  return Deno.env.get("CHROMIUM") || "/usr/bin/chromium";
}

function launchError(path: string, reason: string, cause?: unknown): Error {
  return new Error(
    `Cannot start Chromium at ${path}: ${reason}; install it with 'sudo apt-get install chromium' or set CHROMIUM`,
    { cause },
  );
}

/**
 * The useful part of Playwright's launch error: its first line, how the process ended, and the last lines
 * the browser wrote to stderr (the full message repeats the long command line twice).
 */
function launchReason(e: unknown): string {
  // deno-lint-ignore no-control-regex
  const lines = (e instanceof Error ? e.message : String(e)).replace(/\x1b\[[0-9;]*m/g, "").split("\n");
  const parts = [(lines[0] ?? "launch failed").replace(/^browserType\.\w+: /, "")];
  const exit = lines.map((l) => /process did exit: (exitCode=\S+ signal=\S+)>/.exec(l)?.[1]).find(Boolean);
  if (exit) parts.push(`process exited (${exit})`);
  const stderr = [...new Set(lines.flatMap((l) => /^\[pid=\d+\]\[err\] (.*)$/.exec(l)?.[1] ?? []))];
  if (stderr.length) parts.push(`stderr: ${stderr.slice(-3).join(" | ")}`);
  return parts.join("; ");
}

/** A URL without its fragment, to compare the page's own address with request URLs. */
function withoutHash(url: string): string {
  try {
    const u = new URL(url);
    u.hash = "";
    return u.href;
  } catch {
    return url;
  }
}

/** What one canvas looks like now, read inside the page; `sig` is a hash of its pixels. */
interface CanvasSample {
  id: string;
  width: number;
  height: number;
  drawn: boolean;
  sig: string;
  error?: string;
}

/**
 * The few browser globals that the functions run in the page use. The project type-checks without the DOM
 * library (adding it would change the globals of every other module), so they are spelled out here; each
 * such function takes them from `globalThis` itself, since Playwright sends only its source text.
 */
interface InPage {
  document: {
    readyState: string;
    querySelectorAll(selector: "canvas"): ArrayLike<InPageCanvas>;
    createElement(tag: "canvas"): InPageCanvas;
  };
  requestAnimationFrame(callback: () => void): number;
}
interface InPageCanvas {
  id: string;
  width: number;
  height: number;
  getContext(type: "2d", options: { willReadFrequently: boolean }): {
    drawImage(source: InPageCanvas, x: number, y: number): void;
    getImageData(x: number, y: number, width: number, height: number): { data: Uint8ClampedArray };
  } | null;
}

/**
 * Runs in the page: copies each canvas (whatever its context type) onto a scratch 2D canvas and reads the
 * pixels back.
 */
function sampleCanvases(): CanvasSample[] {
  const { document } = globalThis as unknown as InPage;
  return Array.from(document.querySelectorAll("canvas"), (canvas, i) => {
    const base = { id: canvas.id || `canvas[${i}]`, width: canvas.width, height: canvas.height };
    if (canvas.width === 0 || canvas.height === 0) return { ...base, drawn: false, sig: "empty" };
    try {
      const scratch = document.createElement("canvas");
      scratch.width = canvas.width;
      scratch.height = canvas.height;
      const ctx = scratch.getContext("2d", { willReadFrequently: true });
      if (!ctx) throw new Error("no 2d context for reading");
      ctx.drawImage(canvas, 0, 0);
      const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      // Drawn: some pixel is not transparent, and not every pixel is the same (a uniform canvas is
      // background only, transparent or filled).
      const first = (px[0]! << 24) | (px[1]! << 16) | (px[2]! << 8) | px[3]!;
      let uniform = true, opaque = false;
      let hash = 0x811c9dc5;
      for (let j = 0; j < px.length; j += 4) {
        const rgba = (px[j]! << 24) | (px[j + 1]! << 16) | (px[j + 2]! << 8) | px[j + 3]!;
        if (rgba !== first) uniform = false;
        if (px[j + 3]! > 0) opaque = true;
        hash = Math.imul(hash ^ rgba, 0x01000193);
      }
      return { ...base, drawn: opaque && !uniform, sig: (hash >>> 0).toString(16) };
    } catch (e) {
      return { ...base, drawn: false, sig: "unreadable", error: String(e) };
    }
  });
}

/** Runs in the page: resolves after two animation frames, so requestAnimationFrame-driven drawing gets a turn. */
function twoFrames(): Promise<void> {
  const { requestAnimationFrame } = globalThis as unknown as InPage;
  return new Promise<void>((done) => requestAnimationFrame(() => requestAnimationFrame(() => done())));
}

/** Runs in the page. */
function loaded(): boolean {
  return (globalThis as unknown as InPage).document.readyState === "complete";
}

/** Waits until the canvases look the same in two samples in a row (Chart.js animates for about 1 s). */
async function settledCanvases(page: Page): Promise<CanvasSample[]> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  let last = "";
  for (;;) {
    await page.evaluate(twoFrames);
    const samples = await page.evaluate(sampleCanvases);
    const now = JSON.stringify(samples.map((s) => [s.id, s.width, s.height, s.sig]));
    if (now === last || Date.now() >= deadline) return samples;
    last = now;
    await page.waitForTimeout(SETTLE_POLL_MS);
  }
}

/** Records errors and requests of every page in the context, and blocks every request but the file's own. */
async function watch(context: BrowserContext, fileUrl: string, check: PageCheck): Promise<void> {
  const own = withoutHash(fileUrl);
  const seen = new Set<string>();
  const blocked = new Set<string>();
  const record = (url: string) => {
    if (url.startsWith("data:") || url.startsWith("blob:") || withoutHash(url) === own) return;
    if (!seen.has(url)) {
      seen.add(url);
      check.requests.push(url);
    }
  };
  await context.route("**/*", async (route) => {
    const url = route.request().url();
    if (withoutHash(url) === own) return await route.continue();
    record(url);
    blocked.add(url);
    await route.abort("blockedbyclient");
  });
  await context.routeWebSocket(/.*/, (ws) => {
    record(ws.url());
    ws.close();
  });
  // Requests that routing does not see (other schemes) are still recorded.
  context.on("request", (req) => record(req.url()));
  context.on("console", (msg) => {
    // Chromium's own "Failed to load resource: ..." lines lack the URL; requestfailed and response below
    // report the same failures with it.
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource:")) {
      check.consoleErrors.push(msg.text());
    }
  });
  context.on("weberror", (err) => {
    const e = err.error();
    check.consoleErrors.push(`Uncaught ${e.name}: ${e.message}`);
  });
  context.on("requestfailed", (req) => {
    const url = req.url();
    check.consoleErrors.push(
      blocked.has(url)
        ? `Failed to load ${url}: blocked, the page must not load anything but itself`
        : `Failed to load ${url}: ${req.failure()?.errorText ?? "unknown error"}`,
    );
  });
  context.on("response", (res) => {
    if (res.status() >= 400) check.consoleErrors.push(`Failed to load ${res.url()}: HTTP ${res.status()}`);
  });
}

/**
 * Loads `htmlPath` by file:// URL in a fresh headless Chromium with a throwaway profile, waits until the
 * canvases have stopped changing, optionally saves a full-page PNG screenshot, and reports what happened.
 */
export async function checkPage(htmlPath: string, screenshotPath?: string): Promise<PageCheck> {
  const absolute = resolve(htmlPath);
  await Deno.stat(absolute); // a clear NotFound before a browser starts
  const fileUrl = pathToFileURL(absolute).href;
  const executablePath = chromiumPath();
  try {
    const info = await Deno.stat(executablePath);
    if (!info.isFile) throw new Error("not a file");
    if (info.mode !== null && (info.mode & 0o111) === 0) throw new Error("not executable");
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound
      ? "not found"
      : e instanceof Error
      ? e.message
      : String(e);
    throw launchError(executablePath, reason, e);
  }

  const profile = await Deno.makeTempDir({ prefix: "embbench-chromium-" });
  let context: BrowserContext | undefined;
  try {
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath,
        headless: true,
        args: FLAGS,
        timeout: LOAD_TIMEOUT_MS,
        serviceWorkers: "block",
      });
    } catch (e) {
      throw launchError(executablePath, launchReason(e), e);
    }
    const check: PageCheck = { consoleErrors: [], requests: [], canvases: [], title: "" };
    await watch(context, fileUrl, check);
    const page = context.pages()[0] ?? await context.newPage();
    await page.goto(fileUrl, { waitUntil: "load", timeout: LOAD_TIMEOUT_MS });
    await page.waitForFunction(loaded, undefined, { timeout: LOAD_TIMEOUT_MS });
    const samples = await settledCanvases(page);
    for (const s of samples) {
      check.canvases.push({ id: s.id, width: s.width, height: s.height, drawn: s.drawn });
      if (s.error) check.consoleErrors.push(`Cannot read canvas ${s.id}: ${s.error}`);
    }
    check.title = await page.title();
    if (screenshotPath) await page.screenshot({ path: screenshotPath, fullPage: true, type: "png" });
    return check;
  } finally {
    await context?.close().catch(() => {});
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

/** For browser tests: skip them only on a machine without Chromium, never in CI (CI=true). */
export async function skipBrowserTests(): Promise<boolean> {
  if (Deno.env.get("CI") === "true") return false;
  try {
    await Deno.stat(chromiumPath());
    return false;
  } catch {
    return true;
  }
}
