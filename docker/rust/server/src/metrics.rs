//! `GET /metrics`: the phase counters of docker/CONTRACT.md in the Prometheus text format 0.0.4.
//!
//! Every counter is an atomic (durations as nanoseconds), so recording a request takes no lock. A
//! scrape reads each counter once; a request recorded during a scrape may show in some counters and
//! not yet in others, which the harness's before/after differences over a window absorb.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The `Content-Type` of a `/metrics` answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Upper bounds of the `embbench_batch_size` buckets; one more bucket, `+Inf`, follows.
pub const BATCH_BUCKETS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// How long one `/embed` request spent in each phase. The phases are measured between consecutive
/// stamps, so they add up exactly to `request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phases {
    /// The whole body has been read → the request is parsed and validated.
    pub parse: Duration,
    /// The texts are handed to the tokenizer → the padded batch is ready.
    pub tokenize: Duration,
    /// The padded batch is ready → the request holds an inference slot (MAX_INFLIGHT).
    pub queue: Duration,
    /// The request holds an inference slot → the model's output is back.
    pub inference: Duration,
    /// The model's output is back → the answer body is serialised.
    pub serialize: Duration,
}

impl Phases {
    /// The phases between six stamps taken in order: body read, parsed, tokenized, slot held,
    /// output back, answer serialised.
    pub fn between(stamps: [Instant; 6]) -> Self {
        let [body_read, parsed, tokenized, slot_held, inferred, serialised] = stamps;
        Self {
            parse: parsed - body_read,
            tokenize: tokenized - parsed,
            queue: slot_held - tokenized,
            inference: inferred - slot_held,
            serialize: serialised - inferred,
        }
    }

    /// From the body read to the answer serialised: the sum of the phases.
    pub fn request(&self) -> Duration {
        self.parse + self.tokenize + self.queue + self.inference + self.serialize
    }
}

/// One `/embed` request answered 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestRecord {
    pub inputs: u64,
    /// Tokens after truncation, special tokens included, padding excluded.
    pub tokens: u64,
    pub phases: Phases,
}

/// The cumulative counters since the process started.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    inputs: AtomicU64,
    tokens: AtomicU64,
    request_ns: AtomicU64,
    parse_ns: AtomicU64,
    tokenize_ns: AtomicU64,
    queue_ns: AtomicU64,
    inference_ns: AtomicU64,
    serialize_ns: AtomicU64,
    /// Inferences per bucket, not cumulative: `[i]` counts batches in (BATCH_BUCKETS[i-1], BATCH_BUCKETS[i]],
    /// the last one those over 256.
    batch_buckets: [AtomicU64; BATCH_BUCKETS.len() + 1],
    batch_sum: AtomicU64,
}

/// Nanoseconds in a u64 (584 years): a longer duration saturates.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Exact decimal seconds from nanoseconds ("31.200000000"), without float rounding.
fn seconds_text(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request answered 200, once its answer is serialised. Its inference is counted
    /// apart, by [`Metrics::record_batch`], once per inference however many requests it served.
    pub fn record(&self, r: &RequestRecord) {
        let add = |counter: &AtomicU64, v: u64| {
            counter.fetch_add(v, Ordering::Relaxed);
        };
        add(&self.inputs, r.inputs);
        add(&self.tokens, r.tokens);
        add(&self.request_ns, nanos(r.phases.request()));
        add(&self.parse_ns, nanos(r.phases.parse));
        add(&self.tokenize_ns, nanos(r.phases.tokenize));
        add(&self.queue_ns, nanos(r.phases.queue));
        add(&self.inference_ns, nanos(r.phases.inference));
        add(&self.serialize_ns, nanos(r.phases.serialize));
        add(&self.requests, 1);
    }

    /// Counts one inference of `rows` inputs in `embbench_batch_size`, once it answered.
    pub fn record_batch(&self, rows: u64) {
        let bucket = BATCH_BUCKETS.iter().position(|&le| rows <= le).unwrap_or(BATCH_BUCKETS.len());
        self.batch_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.batch_sum.fetch_add(rows, Ordering::Relaxed);
    }

    /// The `/metrics` body.
    pub fn render(&self) -> String {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut out = String::with_capacity(1600);
        let mut counter = |name: &str, value: String| {
            out.push_str(&format!("# TYPE {name} counter\n{name} {value}\n"));
        };
        counter("embbench_requests_total", get(&self.requests).to_string());
        counter("embbench_inputs_total", get(&self.inputs).to_string());
        counter("embbench_tokens_total", get(&self.tokens).to_string());
        counter("embbench_request_seconds_total", seconds_text(get(&self.request_ns)));
        counter("embbench_parse_seconds_total", seconds_text(get(&self.parse_ns)));
        counter("embbench_tokenize_seconds_total", seconds_text(get(&self.tokenize_ns)));
        counter("embbench_queue_seconds_total", seconds_text(get(&self.queue_ns)));
        counter("embbench_inference_seconds_total", seconds_text(get(&self.inference_ns)));
        counter("embbench_serialize_seconds_total", seconds_text(get(&self.serialize_ns)));
        out.push_str("# TYPE embbench_batch_size histogram\n");
        // Each bucket is read once and summed here, so this answer's buckets never decrease and
        // `_count` equals its `+Inf` bucket.
        let mut cumulative = 0;
        for (i, bucket) in self.batch_buckets.iter().enumerate() {
            cumulative += get(bucket);
            let le = BATCH_BUCKETS.get(i).map_or_else(|| "+Inf".to_string(), u64::to_string);
            out.push_str(&format!("embbench_batch_size_bucket{{le=\"{le}\"}} {cumulative}\n"));
        }
        out.push_str(&format!("embbench_batch_size_sum {}\n", get(&self.batch_sum)));
        out.push_str(&format!("embbench_batch_size_count {cumulative}\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The samples of a /metrics body by name (with labels), checking the format on the way: every
    /// sample line is `name value`, after a `# TYPE` line naming its metric family.
    fn samples(text: &str) -> HashMap<String, String> {
        assert!(text.ends_with('\n'), "the body ends with a newline");
        let mut typed: Vec<String> = Vec::new();
        let mut out = HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(kind == "counter" || kind == "histogram", "{line}");
                typed.push(name.to_string());
                continue;
            }
            let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
            let family = name.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"].iter().fold(family, |f, s| f.strip_suffix(s).unwrap_or(f));
            assert_eq!(typed.last().map(String::as_str), Some(family), "{line} follows its # TYPE line");
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(out.insert(name.to_string(), value.to_string()).is_none(), "{name} twice");
        }
        out
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fresh_counters_are_zero_in_the_contract_format() {
        let text = Metrics::new().render();
        let expected = "\
# TYPE embbench_requests_total counter
embbench_requests_total 0
# TYPE embbench_inputs_total counter
embbench_inputs_total 0
# TYPE embbench_tokens_total counter
embbench_tokens_total 0
# TYPE embbench_request_seconds_total counter
embbench_request_seconds_total 0.000000000
# TYPE embbench_parse_seconds_total counter
embbench_parse_seconds_total 0.000000000
# TYPE embbench_tokenize_seconds_total counter
embbench_tokenize_seconds_total 0.000000000
# TYPE embbench_queue_seconds_total counter
embbench_queue_seconds_total 0.000000000
# TYPE embbench_inference_seconds_total counter
embbench_inference_seconds_total 0.000000000
# TYPE embbench_serialize_seconds_total counter
embbench_serialize_seconds_total 0.000000000
# TYPE embbench_batch_size histogram
embbench_batch_size_bucket{le=\"1\"} 0
embbench_batch_size_bucket{le=\"2\"} 0
embbench_batch_size_bucket{le=\"4\"} 0
embbench_batch_size_bucket{le=\"8\"} 0
embbench_batch_size_bucket{le=\"16\"} 0
embbench_batch_size_bucket{le=\"32\"} 0
embbench_batch_size_bucket{le=\"64\"} 0
embbench_batch_size_bucket{le=\"128\"} 0
embbench_batch_size_bucket{le=\"256\"} 0
embbench_batch_size_bucket{le=\"+Inf\"} 0
embbench_batch_size_sum 0
embbench_batch_size_count 0
";
        assert_eq!(text, expected);
        samples(&text);
    }

    #[test]
    fn counters_add_up_requests_and_the_histogram_is_cumulative() {
        let m = Metrics::new();
        let phases =
            |p, t, q, i, s| Phases { parse: ms(p), tokenize: ms(t), queue: ms(q), inference: ms(i), serialize: ms(s) };
        // Four requests, each its own inference (sequential serving).
        let record = |r: RequestRecord| {
            m.record(&r);
            m.record_batch(r.inputs);
        };
        record(RequestRecord { inputs: 1, tokens: 7, phases: phases(1, 2, 0, 30, 1) });
        record(RequestRecord { inputs: 3, tokens: 20, phases: phases(2, 5, 10, 90, 3) });
        record(RequestRecord { inputs: 64, tokens: 640, phases: phases(3, 40, 1500, 800, 7) });
        record(RequestRecord {
            inputs: 300,
            tokens: 3000,
            phases: Phases { inference: Duration::new(2, 5), ..Default::default() },
        });
        let s = samples(&m.render());
        for (name, want) in [
            ("embbench_requests_total", "4"),
            ("embbench_inputs_total", "368"),
            ("embbench_tokens_total", "3667"),
            ("embbench_parse_seconds_total", "0.006000000"),
            ("embbench_tokenize_seconds_total", "0.047000000"),
            ("embbench_queue_seconds_total", "1.510000000"),
            ("embbench_inference_seconds_total", "2.920000005"),
            ("embbench_serialize_seconds_total", "0.011000000"),
            // 34 + 110 + 2350 ms + 2 s 5 ns: the sum of the phases.
            ("embbench_request_seconds_total", "4.494000005"),
            ("embbench_batch_size_bucket{le=\"1\"}", "1"),
            ("embbench_batch_size_bucket{le=\"2\"}", "1"),
            ("embbench_batch_size_bucket{le=\"4\"}", "2"),
            ("embbench_batch_size_bucket{le=\"8\"}", "2"),
            ("embbench_batch_size_bucket{le=\"16\"}", "2"),
            ("embbench_batch_size_bucket{le=\"32\"}", "2"),
            ("embbench_batch_size_bucket{le=\"64\"}", "3"),
            ("embbench_batch_size_bucket{le=\"128\"}", "3"),
            ("embbench_batch_size_bucket{le=\"256\"}", "3"),
            ("embbench_batch_size_bucket{le=\"+Inf\"}", "4"),
            ("embbench_batch_size_sum", "368"),
            ("embbench_batch_size_count", "4"),
        ] {
            assert_eq!(s.get(name).map(String::as_str), Some(want), "{name}");
        }
        assert_eq!(s.len(), 9 + 10 + 2, "no other samples");
    }

    #[test]
    fn recording_from_many_threads_loses_nothing() {
        let m = Metrics::new();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        m.record(&RequestRecord {
                            inputs: 2,
                            tokens: 5,
                            phases: Phases { parse: ms(1), ..Default::default() },
                        });
                        m.record_batch(2);
                    }
                });
            }
        });
        let s = samples(&m.render());
        assert_eq!(s["embbench_requests_total"], "4000");
        assert_eq!(s["embbench_tokens_total"], "20000");
        assert_eq!(s["embbench_parse_seconds_total"], "4.000000000");
        assert_eq!(s["embbench_batch_size_bucket{le=\"2\"}"], "4000");
        assert_eq!(s["embbench_batch_size_bucket{le=\"1\"}"], "0");
    }

    #[test]
    fn batches_are_counted_apart_from_requests() {
        // Batched serving: three requests of 1, 2 and 3 inputs answered by one inference of 6 rows.
        let m = Metrics::new();
        for inputs in [1, 2, 3] {
            m.record(&RequestRecord { inputs, tokens: inputs * 4, phases: Phases::default() });
        }
        m.record_batch(6);
        let s = samples(&m.render());
        assert_eq!(s["embbench_requests_total"], "3");
        assert_eq!(s["embbench_inputs_total"], "6");
        assert_eq!(s["embbench_batch_size_count"], "1");
        assert_eq!(s["embbench_batch_size_sum"], "6");
        assert_eq!(s["embbench_batch_size_bucket{le=\"4\"}"], "0");
        assert_eq!(s["embbench_batch_size_bucket{le=\"8\"}"], "1");
    }

    #[test]
    fn phases_are_the_gaps_between_the_stamps_and_add_up_to_the_request() {
        let t0 = Instant::now();
        let at = |ms_after: u64| t0 + ms(ms_after);
        let p = Phases::between([at(0), at(2), at(7), at(17), at(107), at(110)]);
        assert_eq!(p, Phases { parse: ms(2), tokenize: ms(5), queue: ms(10), inference: ms(90), serialize: ms(3) });
        assert_eq!(p.request(), ms(110));
    }

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds_text(0), "0.000000000");
        assert_eq!(seconds_text(1), "0.000000001");
        assert_eq!(seconds_text(31_200_000_000), "31.200000000");
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }
}
