//! `--bench-run`: the backend's inference timed in-process, without HTTP, queue or tokenizer in the
//! loop. The backend is loaded exactly as the server loads it (same environment, same loader, same
//! thread pools); the payload (a request body, as `payloads/seq128_b1.json`) is tokenized once and its
//! padded batch run `--warmup` times untimed, then `--runs` times timed. The figures go to stdout as
//! one JSON object:
//!
//! ```text
//! embbench-ort --bench-run --payload /model/payloads/seq128_b1.json --runs 200
//! {"median_ms": 7.91, "p10_ms": 7.80, "p90_ms": 8.12, "runs": 200, ..., "build": {...session facts}}
//! ```

use crate::backend::{LoadProgress, Loaded};
use crate::http::serving_info;
use crate::info;
use crate::request::parse_embed_request;
use crate::settings::{ModelSpec, Settings};
use crate::startup::Startup;
use crate::tokenize::TextTokenizer;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How to invoke the binary: with no arguments it serves; `--bench-run` times the backend.
pub const USAGE: &str = "\
usage: <server>                 serve the contract (settings from the environment: MODEL_DIR, NUM_THREADS, ...)
       <server> --bench-run --payload FILE [--runs N] [--warmup N]
                                load the backend as the server does (same environment), tokenize the request
                                body in FILE once, run its inference N times (default 100) after --warmup
                                untimed runs (default 5), print {median_ms, p10_ms, p90_ms, runs, ...} as JSON";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve,
    Help,
    Bench(BenchArgs),
}

/// `--bench-run`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchArgs {
    /// A request body: `{"inputs": [...]}`.
    pub payload: PathBuf,
    /// Timed inferences.
    pub runs: usize,
    /// Untimed inferences first.
    pub warmup: usize,
}

/// Parses the arguments after the program name.
pub fn parse_args(args: &[String]) -> Result<Command> {
    if args.is_empty() {
        return Ok(Command::Serve);
    }
    let mut bench = false;
    let (mut payload, mut runs, mut warmup) = (None, None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            match inline.clone().or_else(|| it.next().cloned()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => bail!("{name} needs a value"),
            }
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--bench-run" if inline.is_none() => bench = true,
            "--payload" => set_once(&mut payload, "--payload", PathBuf::from(value("--payload")?))?,
            "--runs" => set_once(&mut runs, "--runs", count("--runs", &value("--runs")?, 1)?)?,
            "--warmup" => set_once(&mut warmup, "--warmup", count("--warmup", &value("--warmup")?, 0)?)?,
            _ => bail!("unknown argument \"{arg}\""),
        }
    }
    if !bench {
        bail!("--payload, --runs and --warmup go with --bench-run; the server itself takes no arguments");
    }
    let Some(payload) = payload else { bail!("--bench-run needs --payload FILE (a request body)") };
    Ok(Command::Bench(BenchArgs { payload, runs: runs.unwrap_or(100), warmup: warmup.unwrap_or(5) }))
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<()> {
    if slot.replace(value).is_some() {
        bail!("{name} is given twice");
    }
    Ok(())
}

fn count(name: &str, raw: &str, min: usize) -> Result<usize> {
    match raw.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => bail!("{name} \"{raw}\" is not a whole number of at least {min}"),
    }
}

/// Nearest-rank interpolation between the two closest order statistics (numpy's default `linear`);
/// `sorted` is ascending and not empty, `q` in [0, 1].
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// CPU time this process has used, all threads (CLOCK_PROCESS_CPUTIME_ID).
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock exists on every Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The process CPU time of the timed runs, in milliseconds: robust where the wall time is not (a
/// machine busy with other work), and it shows CPU burnt besides the inference (spinning threads).
pub fn summarise_cpu(cpu: &[Duration]) -> Value {
    let s = summarise(cpu);
    json!({"cpu_median_ms": s["median_ms"], "cpu_p10_ms": s["p10_ms"], "cpu_p90_ms": s["p90_ms"]})
}

/// The timing summary of `--bench-run`, in milliseconds.
pub fn summarise(times: &[Duration]) -> Value {
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({
        "median_ms": round(quantile(&ms, 0.5)),
        "p10_ms": round(quantile(&ms, 0.1)),
        "p90_ms": round(quantile(&ms, 0.9)),
        "mean_ms": round(ms.iter().sum::<f64>() / ms.len() as f64),
        "min_ms": round(ms[0]),
        "max_ms": round(ms[ms.len() - 1]),
        "runs": ms.len(),
    })
}

/// Loads the backend with `load` as the server would, then times the payload's inference.
pub fn run(
    settings: &Settings,
    spec: &ModelSpec,
    load: impl FnOnce(&Settings, &ModelSpec, &LoadProgress<'_>) -> Result<Loaded>,
    args: &BenchArgs,
) -> Result<Value> {
    let body =
        std::fs::read(&args.payload).with_context(|| format!("cannot read the payload {}", args.payload.display()))?;
    let request = parse_embed_request(&body, settings.max_batch)
        .map_err(|e| anyhow::anyhow!("{} is not a valid /embed body: {}", args.payload.display(), e.message))?;
    // A prompt payload (seq<L>_b<B>_<prompt>.jsonl) is timed with its prompt applied, as the server would.
    let options = request.options(spec).map_err(|e| anyhow::anyhow!("{}: {}", args.payload.display(), e.message))?;

    // LOAD_DELAY_MS only serves `verify`'s 503 check: not slept here.
    let startup = Startup::new();
    let load_started = Instant::now();
    let loaded = load(settings, spec, &LoadProgress::new(&startup, Duration::ZERO))?;
    let load_time = load_started.elapsed();
    let tokenizer = TextTokenizer::load(&settings.model_dir, spec.max_seq_length)?;
    let batch = tokenizer
        .encode_with_prompt(&request.inputs, &options.prompt, request.truncate)
        .map_err(|e| anyhow::anyhow!("{}: {}", args.payload.display(), e.message))?;

    loaded.backend.prepare_inference_thread(0);
    for _ in 0..args.warmup {
        loaded.backend.embed(&batch).context("a warm-up inference failed")?;
    }
    let (mut times, mut cpu) = (Vec::with_capacity(args.runs), Vec::with_capacity(args.runs));
    for i in 0..args.runs {
        let (start, cpu_start) = (Instant::now(), process_cpu_time());
        let rows = loaded.backend.embed(&batch)?;
        times.push(start.elapsed());
        cpu.push(process_cpu_time().saturating_sub(cpu_start));
        if i == 0 {
            let dim = rows.first().map_or(0, Vec::len);
            anyhow::ensure!(
                rows.len() == batch.batch && dim == spec.embedding_dim,
                "the backend answered {} rows of {dim} values for {} inputs of embedding_dim={}",
                rows.len(),
                batch.batch,
                spec.embedding_dim
            );
        }
    }

    let mut out = summarise(&times);
    if let (Value::Object(out), Value::Object(cpu)) = (&mut out, summarise_cpu(&cpu)) {
        out.extend(cpu);
    }
    let mut build = info::rust_build_facts();
    build.extend(loaded.info.build.clone());
    let facts = json!({
        "warmup_runs": args.warmup,
        "payload": args.payload.display().to_string(),
        "batch": batch.batch,
        "seq": batch.seq,
        "tokens": batch.token_count(),
        "model": spec.name,
        "framework": loaded.info.framework,
        "framework_version": loaded.info.framework_version,
        "threads": settings.num_threads,
        "cpus": info::allowed_cpus(),
        "load_ms": (load_time.as_secs_f64() * 1e6).round() / 1000.0,
        "serving": serving_info(settings),
        "build": build,
    });
    if let (Value::Object(out), Value::Object(facts)) = (&mut out, facts) {
        out.extend(facts);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fake_info, settings, spec, FakeBackend, ModelDir};
    use std::sync::Arc;

    fn args(items: &[&str]) -> Result<Command> {
        parse_args(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn bench(payload: &str, runs: usize, warmup: usize) -> Command {
        Command::Bench(BenchArgs { payload: payload.into(), runs, warmup })
    }

    #[test]
    fn no_arguments_serve() {
        assert_eq!(args(&[]).unwrap(), Command::Serve);
    }

    #[test]
    fn bench_run_arguments_in_either_form_and_any_order() {
        assert_eq!(
            args(&["--bench-run", "--payload", "/model/payloads/seq128_b1.json", "--runs", "200"]).unwrap(),
            bench("/model/payloads/seq128_b1.json", 200, 5)
        );
        assert_eq!(
            args(&["--runs=7", "--warmup=0", "--payload=p.json", "--bench-run"]).unwrap(),
            bench("p.json", 7, 0)
        );
        assert_eq!(args(&["--bench-run", "--payload", "p.json"]).unwrap(), bench("p.json", 100, 5), "the defaults");
        assert_eq!(args(&["--bench-run", "--help"]).unwrap(), Command::Help);
    }

    #[test]
    fn bad_arguments_are_named() {
        for (given, says) in [
            (&["--bench-run"][..], "needs --payload"),
            (&["--bench-run", "--payload"], "--payload needs a value"),
            (&["--bench-run", "--payload="], "--payload needs a value"),
            (&["--bench-run", "--payload", "p", "--runs", "0"], "--runs \"0\" is not a whole number of at least 1"),
            (&["--bench-run", "--payload", "p", "--runs", "ten"], "--runs \"ten\""),
            (&["--bench-run", "--payload", "p", "--runs", "-3"], "--runs \"-3\""),
            (&["--bench-run", "--payload", "p", "--warmup", "x"], "--warmup \"x\""),
            (&["--bench-run", "--payload", "p", "--payload", "q"], "--payload is given twice"),
            (&["--bench-run", "--payload", "p", "--rusn", "3"], "unknown argument \"--rusn\""),
            (&["--bench-run=1", "--payload", "p"], "unknown argument \"--bench-run=1\""),
            (&["--payload", "p"], "go with --bench-run"),
            (&["serve"], "unknown argument \"serve\""),
        ] {
            let e = args(given).unwrap_err().to_string();
            assert!(e.contains(says), "{given:?}: {e}");
        }
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v: Vec<f64> = (1..=11).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 6.0);
        assert_eq!(quantile(&v, 0.1), 2.0);
        assert_eq!(quantile(&v, 0.9), 10.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 1.5);
        assert_eq!(quantile(&[4.0], 0.9), 4.0);
        let s = summarise(&[4, 1, 3, 2].map(Duration::from_millis));
        assert_eq!(s["median_ms"], 2.5);
        assert_eq!(s["min_ms"], 1.0);
        assert_eq!(s["max_ms"], 4.0);
        assert_eq!(s["runs"], 4);
        assert!((s["p90_ms"].as_f64().unwrap() - 3.7).abs() < 1e-9, "{s}");
    }

    #[test]
    fn runs_the_payload_through_the_loaded_backend() {
        let dir = ModelDir::new("bench");
        let payload = dir.0.join("seq4_b2.json");
        std::fs::write(&payload, r#"{"inputs": ["a b", "c"]}"#).unwrap();
        let backend = Arc::new(FakeBackend { delay_ms: 2, ..Default::default() });
        let handle = Arc::clone(&backend);
        let mut runtime_ready_called = false;
        let out = run(
            &settings(dir.0.clone(), 1),
            &spec(),
            |_, _, progress| {
                progress.runtime_ready();
                runtime_ready_called = true;
                Ok(Loaded { backend: Box::new(handle), info: fake_info() })
            },
            &BenchArgs { payload: payload.clone(), runs: 6, warmup: 2 },
        )
        .unwrap();
        assert!(runtime_ready_called);
        let seen = backend.seen.lock().unwrap();
        assert_eq!(seen.len(), 8, "2 warm-up runs and 6 timed ones");
        assert!(seen.iter().all(|b| b == &seen[0]), "the payload is tokenized once, the same batch every run");
        assert_eq!(seen[0].input_ids, vec![2, 4, 5, 3, 2, 6, 3, 0]);
        assert_eq!((out["runs"].clone(), out["warmup_runs"].clone()), (json!(6), json!(2)));
        assert_eq!((out["batch"].clone(), out["seq"].clone(), out["tokens"].clone()), (json!(2), json!(4), json!(7)));
        assert!(out["median_ms"].as_f64().unwrap() >= 2.0, "{out}");
        // The fake backend sleeps: CPU time is reported, and far below the wall time.
        assert!(out["cpu_median_ms"].as_f64().unwrap() < out["median_ms"].as_f64().unwrap(), "{out}");
        assert!(
            out["p10_ms"].as_f64() <= out["median_ms"].as_f64() && out["median_ms"].as_f64() <= out["p90_ms"].as_f64()
        );
        assert_eq!(out["framework"], "fake");
        assert!(out["build"]["target_cpu"].is_string(), "{out}");
        assert_eq!(out["payload"], payload.display().to_string());
    }

    #[test]
    fn a_payload_that_is_not_a_request_body_is_an_error() {
        let dir = ModelDir::new("bench-bad");
        let payload = dir.0.join("bad.json");
        std::fs::write(&payload, r#"{"texts": ["a"]}"#).unwrap();
        let e = run(
            &settings(dir.0.clone(), 1),
            &spec(),
            |_, _, _| panic!("the payload is checked before the model loads"),
            &BenchArgs { payload, runs: 1, warmup: 0 },
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("not a valid /embed body"), "{e:#}");
        let e = run(
            &settings(dir.0.clone(), 1),
            &spec(),
            |_, _, _| panic!("unreachable"),
            &BenchArgs { payload: dir.0.join("missing.json"), runs: 1, warmup: 0 },
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("cannot read the payload"), "{e:#}");
    }
}
