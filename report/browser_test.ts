import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { checkPage, skipBrowserTests } from "./browser.ts";

const ignore = await skipBrowserTests();

async function withPage(html: string, fn: (path: string, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "embbench-browser-test-" });
  try {
    const path = join(dir, "page.html");
    await Deno.writeTextFile(path, html);
    await fn(path, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "checkPage() tells a drawn canvas from blank or background-only ones and sees a clean offline page",
  ignore,
  fn: () =>
    withPage(
      `<!doctype html><html><head><meta charset="utf-8"><title>Canvas test</title></head><body>
<canvas id="drawn" width="40" height="30"></canvas>
<canvas id="blank" width="20" height="10"></canvas>
<canvas id="filled" width="10" height="10"></canvas>
<script>
  const ctx = document.getElementById("drawn").getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, 40, 30);
  ctx.fillStyle = "#c00";
  ctx.fillRect(10, 10, 8, 8);
  const bg = document.getElementById("filled").getContext("2d");
  bg.fillStyle = "#eee";
  bg.fillRect(0, 0, 10, 10);
</script></body></html>`,
      async (path, dir) => {
        const shot = join(dir, "shot.png");
        const check = await checkPage(path, shot);
        deepEqual(check.canvases, [
          { id: "drawn", width: 40, height: 30, drawn: true },
          { id: "blank", width: 20, height: 10, drawn: false },
          { id: "filled", width: 10, height: 10, drawn: false }, // background colour only
        ]);
        deepEqual(check.consoleErrors, []);
        deepEqual(check.requests, []);
        equal(check.title, "Canvas test");
        const png = await Deno.readFile(shot);
        deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
      },
    ),
});

Deno.test({
  name: "checkPage() reports console errors, uncaught exceptions and blocked requests",
  ignore,
  fn: () =>
    withPage(
      `<!doctype html><html><head><title>Broken</title></head><body>
<img src="https://example.invalid/x.png">
<script>console.error("boom");</script>
<script>throw new Error("kaboom");</script>
</body></html>`,
      async (path) => {
        const check = await checkPage(path);
        ok(check.consoleErrors.includes("boom"), JSON.stringify(check.consoleErrors));
        ok(check.consoleErrors.some((e) => e.includes("kaboom")), JSON.stringify(check.consoleErrors));
        deepEqual(check.requests, ["https://example.invalid/x.png"]);
        deepEqual(check.canvases, []);
        equal(check.title, "Broken");
      },
    ),
});

Deno.test({
  name: "checkPage() names the executable and the fix when Chromium cannot start",
  async fn() {
    const saved = Deno.env.get("CHROMIUM");
    Deno.env.set("CHROMIUM", "/nonexistent/chromium");
    try {
      await withPage("<title>x</title>", async (path) => {
        const err = await checkPage(path).then(() => undefined, (e: unknown) => e);
        ok(err instanceof Error);
        ok(err.message.startsWith("Cannot start Chromium at /nonexistent/chromium: "), err.message);
        ok(err.message.includes("sudo apt-get install chromium"), err.message);
      });
    } finally {
      if (saved === undefined) Deno.env.delete("CHROMIUM");
      else Deno.env.set("CHROMIUM", saved);
    }
  },
});
