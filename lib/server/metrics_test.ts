import { equal, ok, throws } from "node:assert/strict";
import { metricsDelta, parsePrometheus, phaseTimes, sumDeltas } from "./metrics.ts";

const TEXT = (n: number, inf: number) =>
  `# TYPE embbench_requests_total counter
embbench_requests_total ${n}
embbench_request_seconds_total ${n * 0.02}
embbench_parse_seconds_total ${n * 0.001}
embbench_tokenize_seconds_total ${n * 0.002}
embbench_queue_seconds_total ${n * 0.003}
embbench_inference_seconds_total ${inf}
embbench_serialize_seconds_total ${n * 0.0005}
embbench_batch_size_bucket{le="1"} ${n}
embbench_batch_size_bucket{le="+Inf"} ${n}
embbench_batch_size_sum ${n * 2}
embbench_batch_size_count ${n}
`;

Deno.test("parsePrometheus() reads samples with labels, skips comments, and names a bad line", () => {
  const r = parsePrometheus(TEXT(10, 0.1) + "\nplain_total 3 1700000000000\n");
  equal(r["embbench_requests_total"], 10);
  equal(r['embbench_batch_size_bucket{le="+Inf"}'], 10);
  equal(r["plain_total"], 3);
  throws(() => parsePrometheus("ok 1\nthis is not a sample\n"), /line 2 is not a Prometheus sample/);
});

Deno.test("phaseTimes() divides the window's counter differences by its requests", () => {
  const d = metricsDelta(parsePrometheus(TEXT(10, 0.1)), parsePrometheus(TEXT(110, 1.6)));
  const p = phaseTimes(d)!;
  equal(p.requests, 100);
  ok(Math.abs(p.ms.inference - 15) < 1e-9, `inference ${p.ms.inference}`);
  ok(Math.abs(p.ms.request - 20) < 1e-9);
  ok(Math.abs(p.ms.queue - 3) < 1e-9);
  equal(p.meanBatch, 2);
  equal(phaseTimes(metricsDelta(parsePrometheus(TEXT(5, 0)), parsePrometheus(TEXT(5, 0)))), undefined);
  equal(sumDeltas([d, d])["embbench_requests_total"], 200);
});
