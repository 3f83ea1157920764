import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { readRequestLog, type RequestRecord, writeRequestLog } from "./requests.ts";
import { runWindow, splitWindow } from "./window.ts";

const rec = (startS: number, endS: number, status = 200): RequestRecord => ({
  startS,
  endS,
  latencyMs: (endS - startS) * 1000,
  status,
});

Deno.test("splitWindow() sets apart the requests sent before the first answer and counts answers inside the window", () => {
  // Two connections: both open at 0; the first answer comes at 0.10 s.
  const records = [
    rec(0.0, 0.1),
    rec(0.0, 0.2),
    rec(0.1, 0.3),
    rec(0.2, 0.4, 503),
    rec(0.3, 0.5),
    rec(0.4, 1.2), // completes after the 1 s deadline: measured latency, not throughput
  ];
  const s = splitWindow(records, 1.0);
  deepStrictEqual(s.measured, [false, false, true, true, true, true]);
  equal(s.record.openers, 2);
  equal(s.record.measured, 4);
  equal(s.record.successful, 3);
  equal(s.record.failedStatus, 1);
  // 2xx answers from the last opener's (0.2 s) to the last before the deadline (0.5 s): 0.2, 0.3, 0.5.
  ok(Math.abs(s.record.durationS - 0.3) < 1e-12);
  ok(Math.abs(s.record.throughputRps - 2 / 0.3) < 1e-9);
});

Deno.test("splitWindow() measures one connection's rate exactly, whatever the deadline cuts", () => {
  // One connection, 0.1 s per request; the deadline falls mid-request.
  const records = Array.from({ length: 12 }, (_, i) => rec(i * 0.1, (i + 1) * 0.1));
  const s = splitWindow(records, 1.05);
  ok(Math.abs(s.record.throughputRps - 10) < 1e-9, `${s.record.throughputRps} req/s`);
  equal(s.record.openers, 1);
});

Deno.test("splitWindow() of an empty window measures nothing", () => {
  const s = splitWindow([], 1);
  equal(s.record.measured, 0);
  equal(s.record.throughputRps, 0);
});

Deno.test("writeRequestLog() and readRequestLog() keep every request through gzip", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "requests", "c.p1.csv.gz");
  const rows = [
    { ...rec(0, 0.0123456), pass: 1, window: 1, measured: false },
    { ...rec(0.5, 0.75, 500), pass: 1, window: 2, measured: true },
  ];
  await writeRequestLog(path, rows);
  const back = await readRequestLog(path);
  equal(back.length, 2);
  deepStrictEqual(back.map((r) => [r.pass, r.window, r.measured, r.status]), [[1, 1, false, 200], [
    1,
    2,
    true,
    500,
  ]]);
  ok(Math.abs(back[0]!.latencyMs - 12.3456) < 1e-3);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runWindow() recovers a known service time from the real oha", async () => {
  // A server that answers after 20 ms, one request at a time: p50 ≈ 20 ms at concurrency 1.
  const ac = new AbortController();
  let busy = Promise.resolve();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen() {} },
    async (req) => {
      await req.text();
      const turn = busy.then(() => new Promise<void>((r) => setTimeout(r, 20)));
      busy = turn;
      await turn;
      return new Response("[[1]]", { headers: { "content-type": "application/json" } });
    },
  );
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "b.jsonl"), '{"inputs":["a"]}\n{"inputs":["b"]}\n');
    const w = await runWindow({
      oha: {
        url: `http://127.0.0.1:${server.addr.port}/embed`,
        bodyFile: join(dir, "b.jsonl"),
        bodyLines: true,
        concurrency: 1,
      },
      durationS: 1,
      loadgenCpus: 1,
      outFile: join(dir, "w.json"),
      dbFile: join(dir, "w.db"),
    }, 1);
    equal(w.record.openers, 1, "one connection, one opener");
    ok(w.record.successful >= 30, `${w.record.successful} measured requests in 1 s at 20 ms each`);
    const lat = w.records.filter((_, i) => w.measured[i]).map((r) => r.latencyMs).sort((a, b) => a - b);
    const p50 = lat[Math.floor(lat.length / 2)]!;
    ok(p50 >= 20 && p50 < 26, `p50 ${p50} ms for a 20 ms service`);
    ok(w.record.throughputRps > 38 && w.record.throughputRps <= 50.5, `${w.record.throughputRps} req/s`);
    ok(w.record.loadgenBusy !== undefined && w.record.loadgenBusy < 0.6, "oha is far from busy");
  } finally {
    ac.abort();
    await server.finished;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runWindow() counts the connections of a server that drops keep-alive", async () => {
  const ac = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen() {} },
    async (req) => {
      await req.text();
      await new Promise((r) => setTimeout(r, 5));
      return new Response("[[1]]", { headers: { "content-type": "application/json", connection: "close" } });
    },
  );
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "b.jsonl"), '{"inputs":["a"]}\n');
    const w = await runWindow({
      oha: {
        url: `http://127.0.0.1:${server.addr.port}/embed`,
        bodyFile: join(dir, "b.jsonl"),
        bodyLines: true,
        concurrency: 2,
      },
      durationS: 1,
      loadgenCpus: 1,
      outFile: join(dir, "w.json"),
      dbFile: join(dir, "w.db"),
    }, 1);
    const answered = w.records.length;
    ok(answered >= 20, `${answered} answers`);
    ok(
      w.record.connectionsOpened! >= answered * 0.9,
      `${w.record.connectionsOpened} connections for ${answered} answers`,
    );
  } finally {
    ac.abort();
    await server.finished;
    await Deno.remove(dir, { recursive: true });
  }
});
