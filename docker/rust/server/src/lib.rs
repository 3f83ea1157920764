//! embbench's Rust serving layer: the HTTP contract of docker/CONTRACT.md written once, over any
//! [`Backend`]. A backend crate's `main` is one line:
//!
//! ```ignore
//! fn main() -> std::process::ExitCode { embbench_server::serve(my_backend::load) }
//! ```
//!
//! The same binary times its backend in-process with `--bench-run` (see [`bench`]).

pub mod backend;
pub mod batcher;
pub mod bench;
pub mod error;
pub mod http;
pub mod info;
pub mod metrics;
pub mod pipeline;
pub mod request;
pub mod settings;
pub mod startup;
#[cfg(test)]
mod test_support;
pub mod tokenize;

pub use backend::{Backend, FrameworkInfo, LoadProgress, Loaded, Loader};
pub use error::{ApiError, ErrorKind};
pub use pipeline::{Attention, DenseActivation, DenseLayer, Dimensions, Prompts};
pub use settings::{ModelSpec, Pooling, ServingMode, Settings};
pub use tokenize::{TextTokenizer, TokenBatch};

use anyhow::{Context, Result};
use startup::Stage;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Runs a server: reads the environment, binds the port, loads the model in the background, serves
/// until SIGTERM or SIGINT. Exit code 2 for bad settings, 1 when the model cannot load.
///
/// With `--bench-run --payload FILE [--runs N] [--warmup N]` it loads the backend the same way and
/// prints the timing of the payload's inference as JSON instead ([`bench`]).
pub fn serve(load: Loader) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match bench::parse_args(&args) {
        Ok(c) => c,
        Err(e) => return fail(2, &format!("{e:#}\n{}", bench::USAGE)),
    };
    let bench_args = match command {
        bench::Command::Serve => None,
        bench::Command::Help => {
            println!("{}", bench::USAGE);
            return ExitCode::SUCCESS;
        }
        bench::Command::Bench(a) => Some(a),
    };
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => return fail(2, &format!("{e:#}")),
    };
    let spec = match ModelSpec::load(&settings.model_dir) {
        Ok(s) => s,
        Err(e) => return fail(2, &format!("{e:#}")),
    };
    size_thread_pools(settings.num_threads);
    if let Some(bench_args) = bench_args {
        return match bench::run(&settings, &spec, load, &bench_args) {
            Ok(out) => {
                println!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &format!("{e:#}")),
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.num_threads)
        // Tokenization runs here; inference runs on the batcher's MAX_INFLIGHT threads.
        .max_blocking_threads(settings.num_threads + 1)
        .thread_name("embbench-http")
        .enable_all()
        .build()
        .expect("the tokio runtime builds");
    match runtime.block_on(run(settings, spec, load)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &format!("{e:#}")),
    }
}

fn serving_summary(settings: &Settings) -> String {
    match settings.serving {
        ServingMode::Sequential => "sequential".into(),
        ServingMode::Batched => {
            format!("batched (MAX_BATCH_TOKENS={}, MAX_WAIT_US={})", settings.max_batch_tokens, settings.max_wait_us)
        }
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("embbench-server: {message}");
    ExitCode::from(code)
}

/// NUM_THREADS is the only source of thread counts: rayon's global pool (Candle's ops and gemm's
/// matrix products run on it, and Candle reads RAYON_NUM_THREADS itself) and any OpenMP runtime.
fn size_thread_pools(num_threads: usize) {
    // Set before any other thread exists, so no concurrent getenv can race.
    std::env::set_var("RAYON_NUM_THREADS", num_threads.to_string());
    std::env::set_var("OMP_NUM_THREADS", num_threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(num_threads)
        .thread_name(|i| format!("embbench-compute-{i}"))
        .build_global()
        .expect("rayon's global pool is built once, first");
}

async fn run(settings: Settings, spec: ModelSpec, load: Loader) -> Result<()> {
    let addr = format!("{}:{}", settings.host, settings.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot bind {addr}"))?;
    eprintln!(
        "embbench-server: listening on {addr}; model \"{}\" from {}, {} threads, serving {} (MAX_INFLIGHT={})",
        spec.name,
        settings.model_dir.display(),
        settings.num_threads,
        serving_summary(&settings),
        settings.max_inflight,
    );
    let state = http::AppState::new(settings, spec);
    let loader_state = Arc::clone(&state);
    std::thread::Builder::new()
        .name("embbench-load".into())
        .spawn(move || match load_and_warm_up(&loader_state, load).and_then(|ready| loader_state.set_ready(ready)) {
            Ok(()) => {}
            Err(e) => {
                eprintln!("embbench-server: cannot load the model: {e:#}");
                std::process::exit(1);
            }
        })
        .context("cannot start the loading thread")?;
    axum::serve(listener, http::router(state)).with_graceful_shutdown(shutdown_signal()).await.context("server failed")
}

/// Loads backend and tokenizer, then (with `WARMUP=1`) answers one warm-up inference, stamping each
/// stage for `/info`. `/health` reports 200 once this returns.
fn load_and_warm_up(
    state: &http::AppState,
    load: impl FnOnce(&Settings, &ModelSpec, &LoadProgress<'_>) -> Result<Loaded>,
) -> Result<http::Ready> {
    let progress = LoadProgress::new(&state.startup, Duration::from_millis(state.settings.load_delay_ms));
    let loaded = load(&state.settings, &state.spec, &progress)?;
    let Some(runtime_ready) = state.startup.get(Stage::RuntimeReady) else {
        anyhow::bail!("the backend loaded without reporting its runtime ready (LoadProgress::runtime_ready)");
    };
    let tokenizer = TextTokenizer::load(&state.settings.model_dir, state.spec.max_seq_length)?;
    state.startup.mark(Stage::ModelLoaded);
    if state.settings.warmup {
        // Straight to the backend, not through /embed: the warm-up is not counted in /metrics.
        let batch = tokenizer.encode(&["warm-up".to_string()], true).map_err(|e| anyhow::anyhow!("{e}"))?;
        let rows = loaded.backend.embed(&batch).context("the warm-up inference failed")?;
        let dim = rows.first().map_or(0, Vec::len);
        anyhow::ensure!(
            dim == state.spec.embedding_dim,
            "the model answers {dim} values per row, embbench_model.json says embedding_dim={}",
            state.spec.embedding_dim
        );
        state.startup.mark(Stage::Warmed);
    }
    let ms = |from: Option<f64>, to: Option<f64>| match (from, to) {
        (Some(a), Some(b)) => format!("{:.0} ms", (b - a) * 1000.0),
        _ => "-".to_string(),
    };
    eprintln!(
        "embbench-server: {} {}: runtime ready {} after the process started, model loaded in {} (LOAD_DELAY_MS={} included), warm-up {}",
        loaded.info.framework,
        loaded.info.framework_version,
        ms(state.startup.process_start(), Some(runtime_ready)),
        ms(Some(runtime_ready), state.startup.get(Stage::ModelLoaded)),
        state.settings.load_delay_ms,
        if state.settings.warmup {
            ms(state.startup.get(Stage::ModelLoaded), state.startup.get(Stage::Warmed))
        } else {
            "skipped (WARMUP=0)".to_string()
        },
    );
    Ok(http::Ready { backend: Arc::from(loaded.backend), tokenizer: Arc::new(tokenizer), info: loaded.info })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fake_info, settings, spec, FakeBackend, ModelDir};

    /// A server state over a model folder holding the tiny tokenizer.
    fn loading_state(dir: &ModelDir, warmup: bool, load_delay_ms: u64) -> Arc<http::AppState> {
        let settings = Settings { warmup, load_delay_ms, ..settings(dir.0.clone(), 1) };
        http::AppState::new(settings, spec())
    }

    #[test]
    fn stages_are_stamped_in_order_and_the_load_delay_counts_as_model_load() {
        let dir = ModelDir::new("stamps");
        let state = loading_state(&dir, true, 80);
        let backend = Arc::new(FakeBackend::default());
        let handle = Arc::clone(&backend);
        let mut called_at = None;
        let ready = load_and_warm_up(&state, |_, _, progress| {
            called_at = Some(startup::monotonic_seconds());
            progress.runtime_ready();
            progress.runtime_ready(); // a second call neither restamps nor sleeps again
            Ok(Loaded { backend: Box::new(handle), info: fake_info() })
        })
        .unwrap();
        let after = startup::monotonic_seconds();

        let s = &state.startup;
        let (process_start, runtime_ready, model_loaded, warmed) = (
            s.process_start().unwrap(),
            s.get(Stage::RuntimeReady).unwrap(),
            s.get(Stage::ModelLoaded).unwrap(),
            s.get(Stage::Warmed).unwrap(),
        );
        assert!(process_start <= called_at.unwrap());
        assert!(called_at.unwrap() <= runtime_ready);
        assert!(runtime_ready + 0.080 <= model_loaded, "LOAD_DELAY_MS=80 sleeps after runtime_ready");
        assert!(model_loaded - runtime_ready < 0.160, "and only once: {}", model_loaded - runtime_ready);
        assert!(model_loaded <= warmed && warmed <= after);
        // The warm-up embedded "warm-up" ([CLS] [UNK] [SEP]) once, and nothing was counted.
        let seen = backend.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].input_ids, vec![2, 1, 3]);
        assert!(state.metrics.render().contains("embbench_requests_total 0\n"));
        assert_eq!(ready.info, fake_info());
    }

    #[test]
    fn warmup_0_skips_the_warm_up_inference() {
        let dir = ModelDir::new("no-warmup");
        let state = loading_state(&dir, false, 0);
        let backend = Arc::new(FakeBackend::default());
        let handle = Arc::clone(&backend);
        load_and_warm_up(&state, |_, _, progress| {
            progress.runtime_ready();
            Ok(Loaded { backend: Box::new(handle), info: fake_info() })
        })
        .unwrap();
        assert!(backend.seen.lock().unwrap().is_empty(), "no inference ran");
        assert!(state.startup.get(Stage::ModelLoaded).is_some());
        assert_eq!(state.startup.get(Stage::Warmed), None);
        assert!(state.startup.to_json()["warmed"].is_null());
    }

    #[test]
    fn a_loader_that_never_reports_its_runtime_ready_is_an_error() {
        let dir = ModelDir::new("no-runtime-ready");
        let state = loading_state(&dir, true, 0);
        let e = load_and_warm_up(&state, |_, _, _| {
            Ok(Loaded { backend: Box::new(FakeBackend::default()), info: fake_info() })
        })
        .err()
        .unwrap();
        assert!(format!("{e:#}").contains("runtime_ready"), "{e:#}");
    }

    #[test]
    fn a_warm_up_answering_the_wrong_dimension_is_an_error() {
        struct TwoValues;
        impl Backend for TwoValues {
            fn embed(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>> {
                Ok(vec![vec![0.0, 1.0]; batch.batch])
            }
        }
        let dir = ModelDir::new("wrong-dim");
        let state = loading_state(&dir, true, 0);
        let e = load_and_warm_up(&state, |_, _, progress| {
            progress.runtime_ready();
            Ok(Loaded { backend: Box::new(TwoValues), info: fake_info() })
        })
        .err()
        .unwrap();
        assert!(format!("{e:#}").contains("embedding_dim=3"), "{e:#}");
        assert_eq!(state.startup.get(Stage::Warmed), None);
    }
}
