//! embbench's Rust serving layer: the HTTP contract of docker/CONTRACT.md written once, over any
//! [`Backend`]. A backend crate's `main` is one line:
//!
//! ```ignore
//! fn main() -> std::process::ExitCode { embbench_server::serve(my_backend::load) }
//! ```

pub mod backend;
pub mod error;
pub mod http;
pub mod info;
pub mod request;
pub mod settings;
pub mod tokenize;

pub use backend::{Backend, FrameworkInfo, Loaded, Loader};
pub use error::{ApiError, ErrorKind};
pub use settings::{ModelSpec, Pooling, Settings};
pub use tokenize::{TextTokenizer, TokenBatch};

use anyhow::{Context, Result};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs a server: reads the environment, binds the port, loads the model in the background, serves
/// until SIGTERM or SIGINT. Exit code 2 for bad settings, 1 when the model cannot load.
pub fn serve(load: Loader) -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => return fail(2, &format!("{e:#}")),
    };
    let spec = match ModelSpec::load(&settings.model_dir) {
        Ok(s) => s,
        Err(e) => return fail(2, &format!("{e:#}")),
    };
    size_thread_pools(settings.num_threads);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.num_threads)
        // Tokenization and inference run here; inference is further limited by the MAX_INFLIGHT semaphore.
        .max_blocking_threads(settings.max_inflight + settings.num_threads + 1)
        .thread_name("embbench-http")
        .enable_all()
        .build()
        .expect("the tokio runtime builds");
    match runtime.block_on(run(settings, spec, load)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &format!("{e:#}")),
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
        "embbench-server: listening on {addr}; model \"{}\" from {}, {} threads",
        spec.name,
        settings.model_dir.display(),
        settings.num_threads
    );
    let state = http::AppState::new(settings, spec);
    let loader_state = Arc::clone(&state);
    std::thread::Builder::new()
        .name("embbench-load".into())
        .spawn(move || match load_and_warm_up(&loader_state, load) {
            Ok(ready) => loader_state.set_ready(ready),
            Err(e) => {
                eprintln!("embbench-server: cannot load the model: {e:#}");
                std::process::exit(1);
            }
        })
        .context("cannot start the loading thread")?;
    axum::serve(listener, http::router(state)).with_graceful_shutdown(shutdown_signal()).await.context("server failed")
}

/// Loads tokenizer and backend, then answers one warm-up inference: `/health` reports 200 only after.
fn load_and_warm_up(state: &http::AppState, load: Loader) -> Result<http::Ready> {
    std::thread::sleep(Duration::from_millis(state.settings.load_delay_ms));
    let started = Instant::now();
    let tokenizer = TextTokenizer::load(&state.settings.model_dir, state.spec.max_seq_length)?;
    let loaded = load(&state.settings, &state.spec)?;
    let loaded_in = started.elapsed();
    let batch = tokenizer.encode(&["warm-up".to_string()], true).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rows = loaded.backend.embed(&batch).context("the warm-up inference failed")?;
    let dim = rows.first().map_or(0, Vec::len);
    anyhow::ensure!(
        dim == state.spec.embedding_dim,
        "the model answers {dim} values per row, embbench_model.json says embedding_dim={}",
        state.spec.embedding_dim
    );
    eprintln!(
        "embbench-server: {} {} loaded in {:.0} ms, warmed up in {:.0} ms",
        loaded.info.framework,
        loaded.info.framework_version,
        loaded_in.as_secs_f64() * 1000.0,
        (started.elapsed() - loaded_in).as_secs_f64() * 1000.0
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
