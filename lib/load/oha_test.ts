import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { ohaCommand, parseOhaJson, parseTimes } from "./oha.ts";
import { clientPorts, opened } from "./connections.ts";
import { RunError } from "../errors.ts";

const sample = (name: string) => Deno.readTextFileSync(new URL(`./testdata/${name}`, import.meta.url));

Deno.test("parseOhaJson() reads a clean run recorded from oha 1.16", () => {
  const s = parseOhaJson(sample("oha_ok.json"));
  equal(s.responses, 500);
  equal(s.successful, 500);
  equal(s.errorCount, 0);
  equal(s.errorRate, 0);
  equal(s.durationS, 5.756871321);
  equal(s.throughputRps, 500 / 5.756871321);
  equal(s.latencyMs.p50, 0.044066575 * 1000);
  equal(s.latencyMs.mean, 0.04600633510200001 * 1000);
  ok(s.latencyMs.p999 >= s.latencyMs.p99 && s.latencyMs.p99 >= s.latencyMs.p95);
  ok(s.latencyMs.p95 >= s.latencyMs.p90 && s.latencyMs.p90 >= s.latencyMs.p50);
});

Deno.test("parseOhaJson() counts only 2xx as throughput and keeps deadline cuts apart from errors", () => {
  const s = parseOhaJson(sample("oha_errors_deadline.json"));
  equal(s.successful, 0);
  equal(s.failedStatus, 1084);
  deepStrictEqual(s.statusCodes, { "404": 1084 });
  equal(s.cutAtDeadline, 2);
  deepStrictEqual(s.errors, { "invalid HTTP version parsed": 693, "operation was canceled": 7 });
  equal(s.errorCount, 700);
  equal(s.throughputRps, 0);
  ok(s.ohaRequestsPerSec > 1000, "oha's own figure counts the failures");
  equal(s.errorRate, 1);
  ok(Number.isNaN(s.latencyMs.p50), "no successful response, no successful latency");
});

Deno.test("parseOhaJson() handles a run where nothing answered", () => {
  const s = parseOhaJson(sample("oha_refused.json"));
  deepStrictEqual(s.errors, { "Connection refused (os error 111)": 20 });
  equal(s.errorRate, 1);
  ok(Number.isNaN(s.latencyMs.mean));
});

Deno.test("parseOhaJson() names the field when the output does not match the pinned schema", () => {
  throws(() => parseOhaJson('{"summary": {}}'), (e: Error) => {
    ok(e instanceof RunError);
    ok(
      e.message.startsWith(
        "Cannot parse oha output: summary.successRate: Invalid input: expected number, received undefined",
      ),
      e.message,
    );
    return true;
  });
  throws(() => parseOhaJson("not json"), RunError);
});

Deno.test("ohaCommand() pins oha with taskset and passes rate and latency correction", () => {
  const { cmd, args } = ohaCommand({
    url: "http://127.0.0.1:1/embed",
    bodyFile: "/b.json",
    concurrency: 4,
    durationS: 10,
    rateQps: 50,
    latencyCorrection: true,
    cpus: "1",
    workerThreads: 1,
  }, "/o.json");
  equal(cmd, "taskset");
  deepStrictEqual(args.slice(0, 3), ["-c", "1", "oha"]);
  for (const flag of ["-z", "10s", "-q", "50", "--latency-correction", "--worker-threads", "-D", "/b.json"]) {
    ok(args.includes(flag), flag);
  }
  throws(() => ohaCommand({ url: "u", bodyFile: "b", concurrency: 1 }, "o"), RangeError);
});

Deno.test("ohaCommand() sends a random line of a bodies file, waits at the deadline and stores every response", () => {
  const { args } = ohaCommand({
    url: "http://127.0.0.1:1/embed",
    bodyFile: "/b.jsonl",
    bodyLines: true,
    concurrency: 2,
    durationS: 3,
    waitOngoing: true,
    dbFile: "/w.db",
  }, "/o.json");
  for (const flag of ["-Z", "/b.jsonl", "-w", "--db-url", "/w.db", "-z", "3s"]) ok(args.includes(flag), flag);
  ok(!args.includes("-D"));
});

Deno.test("parseTimes() reads the children's CPU time from bash's times", () => {
  equal(parseTimes("oha said\n0m0.010s 0m0.002s\n1m2.500s 0m0.250s\n"), 62.75);
  equal(parseTimes("no times here"), undefined);
});

Deno.test("clientPorts() finds the client ports of a port's connections in any state but listening", () => {
  const table = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1",
    "   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2",
    "   2: 0100007F:1F90 0100007F:D432 06 00000000:00000000 00:00000000 00000000     0        0 3",
    "   3: 0100007F:D433 0100007F:0050 01 00000000:00000000 00:00000000 00000000     0        0 4",
  ].join("\n");
  // 0x1F90 = 8080; 0xD431 = 54321 (established), 0xD432 = 54322 (TIME_WAIT on the server side).
  deepStrictEqual([...clientPorts(8080, [table])!].sort(), [54321, 54322]);
  equal(opened(new Set([54321]), new Set([54321, 54322, 54323])), 2);
  equal(opened(undefined, new Set([1])), undefined);
});

Deno.test("runOha() drives the real pinned oha against a local server", async () => {
  const { runOha } = await import("./oha.ts");
  const ac = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen() {} },
    async (req) => {
      await req.text();
      return new Response("[[0.6,0.8]]", { headers: { "content-type": "application/json" } });
    },
  );
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/body.json`, '{"inputs":["hi"]}');
    const run = await runOha({
      url: `http://127.0.0.1:${server.addr.port}/embed`,
      bodyFile: `${dir}/body.json`,
      concurrency: 2,
      requests: 200,
    }, `${dir}/out.json`);
    const s = run.summary;
    equal(s.successful, 200);
    equal(s.errorRate, 0);
    ok(s.throughputRps > 0);
    ok(run.cpuSeconds !== undefined && run.cpuSeconds >= 0 && run.cpuSeconds < run.wallSeconds * 4);
    equal(run.connectionsOpened, 2, "two connections, kept alive");
  } finally {
    ac.abort();
    await server.finished;
    await Deno.remove(dir, { recursive: true });
  }
});
