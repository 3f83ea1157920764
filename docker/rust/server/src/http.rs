//! The HTTP layer: routes, the `/embed` pipeline (validate, tokenize, queue for the inference workers),
//! timing headers and phase counters, `/health`, `/info` and `/metrics`.

use crate::backend::{Backend, FrameworkInfo};
use crate::batcher::{Batcher, BatcherConfig, Policy};
use crate::error::{ApiError, ErrorKind};
use crate::info;
use crate::metrics::{self, Metrics, Phases, RequestRecord};
use crate::pipeline::truncate_rows;
use crate::request::{check_content_type, parse_embed_request};
use crate::settings::{ModelSpec, ServingMode, Settings};
use crate::startup::Startup;
use crate::tokenize::TextTokenizer;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// What serving needs once the model is loaded and warmed up.
pub struct Ready {
    pub backend: Arc<dyn Backend>,
    pub tokenizer: Arc<TextTokenizer>,
    pub info: FrameworkInfo,
}

/// What serves requests once the model is ready: the tokenizer, and the queue whose workers own the backend.
struct Serving {
    tokenizer: Arc<TextTokenizer>,
    info: FrameworkInfo,
    batcher: Batcher,
}

/// Shared by every request.
pub struct AppState {
    pub settings: Settings,
    pub spec: ModelSpec,
    ready: OnceLock<Serving>,
    /// The start-up stamps, written by the loading thread.
    pub startup: Startup,
    /// `/metrics`' counters.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(settings: Settings, spec: ModelSpec) -> Arc<Self> {
        Arc::new(Self { settings, spec, ready: OnceLock::new(), startup: Startup::new(), metrics: Arc::default() })
    }

    /// Starts the inference workers (`MAX_INFLIGHT`, in the `SERVING` mode) and marks the model as
    /// loaded and warmed up: `/health` turns 200 from here on.
    pub fn set_ready(&self, ready: Ready) -> anyhow::Result<()> {
        anyhow::ensure!(self.ready.get().is_none(), "the model was marked ready twice");
        let batcher = Batcher::start(BatcherConfig {
            backend: ready.backend,
            policy: Policy::from_settings(&self.settings),
            workers: self.settings.max_inflight,
            pad_id: ready.tokenizer.pad_id(),
            embedding_dim: self.spec.embedding_dim,
            metrics: Arc::clone(&self.metrics),
        })
        .map_err(|e| anyhow::anyhow!("cannot start the inference threads: {e}"))?;
        let serving = Serving { tokenizer: ready.tokenizer, info: ready.info, batcher };
        if self.ready.set(serving).is_err() {
            anyhow::bail!("the model was marked ready twice");
        }
        Ok(())
    }

    fn ready(&self) -> Result<&Serving, ApiError> {
        self.ready.get().ok_or_else(|| ApiError::new(ErrorKind::Unhealthy, "model is loading"))
    }
}

/// All routes; unknown paths answer 404 and wrong methods 405, both in the contract's error shape.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/embed", post(embed))
        .route("/health", get(health))
        .route("/info", get(info_handler))
        .route("/metrics", get(metrics_handler))
        .fallback(|| async {
            ApiError::new(ErrorKind::NotFound, "no such path: expected /embed, /health, /info or /metrics")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorKind::MethodNotAllowed,
                "wrong method: /embed takes POST; /health, /info and /metrics take GET",
            )
        })
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.ready() {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn info_handler(State(state): State<Arc<AppState>>) -> Response {
    match state.ready() {
        Ok(ready) => Json(info_body(&state, &ready.info)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The phase counters; answered while the model loads too (all zero then).
async fn metrics_handler(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.render()).into_response()
}

/// The `/info` object (docker/CONTRACT.md).
pub fn info_body(state: &AppState, framework: &FrameworkInfo) -> Value {
    let mut build = info::rust_build_facts();
    build.extend(framework.build.clone());
    json!({
        "framework": framework.framework,
        "framework_version": framework.framework_version,
        "model": state.spec.name,
        "embedding_dim": state.spec.embedding_dim,
        "max_seq_length": state.spec.max_seq_length,
        "dtype": "float32",
        "threads": state.settings.num_threads,
        "cpus": info::allowed_cpus(),
        "max_batch": state.settings.max_batch,
        "max_inflight": state.settings.max_inflight,
        "serving": serving_info(&state.settings),
        "build": build,
        "warmup": state.settings.warmup,
        "startup": state.startup.to_json(),
        "os_threads": info::os_threads(),
    })
}

/// `/info`'s `serving`: the mode, and the batcher's settings in batched mode.
pub fn serving_info(settings: &Settings) -> Value {
    match settings.serving {
        ServingMode::Sequential => json!({"mode": "sequential"}),
        ServingMode::Batched => json!({
            "mode": "batched",
            "max_batch_tokens": settings.max_batch_tokens,
            "max_wait_us": settings.max_wait_us,
        }),
    }
}

async fn embed(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match embed_inner(state, headers, body).await {
        Ok(response) => response,
        Err(e) => {
            // These answers leave (part of) the body unread, so the connection cannot be reused:
            // say so, or a client sends its next request on a connection the server then drops.
            let unread =
                matches!(e.kind, ErrorKind::PayloadTooLarge | ErrorKind::UnsupportedMediaType | ErrorKind::Unhealthy);
            let mut response = e.into_response();
            if unread {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

/// The `/embed` pipeline. Its phases (docker/CONTRACT.md, `GET /metrics`) run between consecutive
/// stamps, so they add up to `request`: `tokenize` includes handing the texts to a blocking thread and
/// getting the rows back; `queue` runs from the rows being queued to their batch's runtime call, which
/// the inference worker stamps, as it stamps the call's return; `serialize` includes the answer's trip
/// back from the worker.
async fn embed_inner(state: Arc<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let serving = state.ready()?;
    check_content_type(headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)")))?;
    let body = read_body(body, state.settings.max_body_bytes).await?;
    let body_read = Instant::now();

    let request = parse_embed_request(&body, state.settings.max_batch)?;
    let options = request.options(&state.spec)?;
    let parsed = Instant::now();

    let tokenizer = Arc::clone(&serving.tokenizer);
    let prompt = options.prompt;
    let rows = run_blocking(move || tokenizer.encode_rows(&request.inputs, &prompt, request.truncate)).await??;
    let (inputs, tokens) = (rows.len(), rows.iter().map(Vec::len).sum::<usize>());

    let (queued, answer) = serving.batcher.submit(rows);
    let mut answer =
        answer.await.map_err(|_| ApiError::new(ErrorKind::Backend, "the inference worker went away"))??;

    // Matryoshka: this request's rows only; the batch it shared ran at the full size.
    truncate_rows(&mut answer.rows, options.dimensions);
    let json = serde_json::to_vec(&answer.rows)
        .map_err(|e| ApiError::new(ErrorKind::Backend, format!("cannot serialise the embeddings: {e}")))?;
    let serialised = Instant::now();

    let phases = Phases::between([body_read, parsed, queued, answer.started, answer.finished, serialised]);
    state.metrics.record(&RequestRecord { inputs: inputs as u64, tokens: tokens as u64, phases });
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], json).into_response();
    let h = response.headers_mut();
    for (name, value) in timing_headers(&phases) {
        h.insert(name, value);
    }
    Ok(response)
}

/// The timing headers of a `200` answer: `tokenize`, `queue + inference` and `request`, in ms.
pub fn timing_headers(phases: &Phases) -> [(&'static str, HeaderValue); 3] {
    [
        ("x-tokenization-time", millis(phases.tokenize)),
        ("x-inference-time", millis(phases.queue + phases.inference)),
        ("x-total-time", millis(phases.request())),
    ]
}

/// Runs CPU work on tokio's blocking pool so the async workers keep serving.
async fn run_blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(ErrorKind::Backend, format!("the tokenization task failed: {e}")))
}

/// Reads the whole body, refusing more than `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::new(ErrorKind::PayloadTooLarge, format!("request body is over MAX_BODY_BYTES={limit} bytes")))
        }
        Err(e) => Err(ApiError::validation(format!("cannot read the request body: {e}"))),
    }
}

fn millis(d: std::time::Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("{:.3}", d.as_secs_f64() * 1000.0)).expect("a decimal number is a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{ready_state, ready_state_with, state, FakeBackend};
    use axum::http::Request;
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;
    use tower::ServiceExt;

    async fn send(state: &Arc<AppState>, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let res = router(Arc::clone(state)).oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    fn post_json(body: &str) -> Request<Body> {
        Request::post("/embed").header("content-type", "application/json").body(Body::from(body.to_string())).unwrap()
    }

    fn assert_error(status: StatusCode, body: &Value, code: u16, kind: &str) {
        assert_eq!(status.as_u16(), code, "{body}");
        assert_eq!(body["error_type"], kind, "{body}");
        assert!(body["error"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }

    #[tokio::test]
    async fn loading_answers_503_on_health_embed_and_info() {
        let s = state(1);
        let (status, _, body) = send(&s, Request::get("/health").body(Body::empty()).unwrap()).await;
        assert_error(status, &body, 503, "Unhealthy");
        assert_eq!(body["error"], "model is loading");
        let (status, _, body) = send(&s, post_json(r#"{"inputs": "a"}"#)).await;
        assert_error(status, &body, 503, "Unhealthy");
        let (status, _, body) = send(&s, Request::get("/info").body(Body::empty()).unwrap()).await;
        assert_error(status, &body, 503, "Unhealthy");
    }

    #[tokio::test]
    async fn ready_health_is_ok() {
        let s = ready_state(Default::default(), 1);
        let (status, _, body) = send(&s, Request::get("/health").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"status": "ok"}));
    }

    #[tokio::test]
    async fn embed_answers_rows_in_order_with_timing_headers() {
        let backend = Arc::new(FakeBackend::default());
        let s = ready_state(Arc::clone(&backend), 1);
        let (status, headers, body) = send(&s, post_json(r#"{"inputs": ["a b", "", "a"]}"#)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!([[4.0, 2.0, 0.0], [2.0, 2.0, 0.0], [3.0, 2.0, 0.0]]));
        assert_eq!(headers["content-type"], "application/json");
        for name in ["x-tokenization-time", "x-inference-time", "x-total-time"] {
            let v: f64 = headers[name].to_str().unwrap().parse().unwrap();
            assert!(v >= 0.0, "{name}={v}");
        }
        let seen = backend.seen.lock().unwrap();
        assert_eq!(seen[0].input_ids, vec![2, 4, 5, 3, 2, 3, 0, 0, 2, 4, 3, 0]);
    }

    #[tokio::test]
    async fn single_string_answers_a_list_of_one() {
        let s = ready_state(Default::default(), 1);
        let (status, _, body) = send(&s, post_json(r#"{"inputs": "a"}"#)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!([[3.0, 2.0, 0.0]]));
    }

    #[tokio::test]
    async fn every_contract_error_has_its_status_and_shape() {
        let s = ready_state(Default::default(), 1);
        let cases: Vec<(Request<Body>, u16, &str)> = vec![
            (Request::get("/nope").body(Body::empty()).unwrap(), 404, "NotFound"),
            (Request::get("/embed").body(Body::empty()).unwrap(), 405, "MethodNotAllowed"),
            (Request::post("/health").body(Body::empty()).unwrap(), 405, "MethodNotAllowed"),
            (Request::post("/metrics").body(Body::empty()).unwrap(), 405, "MethodNotAllowed"),
            (Request::delete("/metrics").body(Body::empty()).unwrap(), 405, "MethodNotAllowed"),
            (Request::get("/metrics/").body(Body::empty()).unwrap(), 404, "NotFound"),
            (post_json(r#"{"inputs": ["a", "a", "a", "a"]}"#), 413, "PayloadTooLarge"),
            (post_json(&format!(r#"{{"inputs": "{}"}}"#, "a ".repeat(200))), 413, "PayloadTooLarge"),
            (
                Request::post("/embed").header("content-type", "text/plain").body(Body::from("{}")).unwrap(),
                415,
                "UnsupportedMediaType",
            ),
            (Request::post("/embed").body(Body::from(r#"{"inputs": "a"}"#)).unwrap(), 415, "UnsupportedMediaType"),
            (post_json(r#"{"inputs": "a""#), 422, "Validation"),
            (post_json(r#"{"inputs": []}"#), 422, "Validation"),
            (post_json(r#"{"inputs": [null]}"#), 422, "Validation"),
            (post_json(r#"{"inputs": "a", "normalize": false}"#), 422, "Validation"),
            (post_json(r#"{"inputs": "a a a a", "truncate": false}"#), 422, "Validation"),
        ];
        for (req, code, kind) in cases {
            let what = format!("{} {}", req.method(), req.uri());
            let (status, headers, body) = send(&s, req).await;
            assert_eq!(status.as_u16(), code, "{what}: {body}");
            assert_error(status, &body, code, kind);
            // An answer sent before the whole body was read closes the connection, and says so.
            let closes = headers.get("connection").is_some_and(|v| v == "close");
            assert_eq!(closes, code == 413 || code == 415, "{what}: connection header");
        }
        // The server keeps serving after errors.
        let (status, _, _) = send(&s, post_json(r#"{"inputs": "a"}"#)).await;
        assert_eq!(status, StatusCode::OK);
    }

    /// `[a, b]` divided by its norm.
    fn unit(a: f32, b: f32) -> Vec<f32> {
        let norm = (a * a + b * b).sqrt();
        vec![a / norm, b / norm]
    }

    fn assert_rows_close(got: &[Vec<f32>], want: &[Vec<f32>]) {
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.len(), w.len(), "{got:?}");
            assert!(g.iter().zip(w).all(|(x, y)| (x - y).abs() < 1e-6), "{got:?} vs {want:?}");
        }
    }

    #[tokio::test]
    async fn a_prompt_is_prepended_to_every_input() {
        let backend = Arc::new(FakeBackend::default());
        let s = ready_state(Arc::clone(&backend), 1);
        // "query" is the text "b ": [CLS] b a [SEP], [CLS] b [SEP]; "document" is empty.
        let (status, _, body) = send(&s, post_json(r#"{"inputs": ["a", ""], "prompt_name": "query"}"#)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _, _) = send(&s, post_json(r#"{"inputs": "a", "prompt_name": "document"}"#)).await;
        assert_eq!(status, StatusCode::OK);
        let seen = backend.seen.lock().unwrap();
        assert_eq!(seen[0].input_ids, vec![2, 5, 4, 3, 2, 5, 3, 0]);
        assert_eq!(seen[1].input_ids, vec![2, 4, 3]);
    }

    #[tokio::test]
    async fn dimensions_cut_each_row_and_normalise_it_again() {
        let s = ready_state(Default::default(), 1);
        // The fake rows are [length, 2 ([CLS]), 0]: "a a" is [4, 2, 0], cut to [4, 2] and normalised.
        let (status, _, body) = send(&s, post_json(r#"{"inputs": ["a a", "a"], "dimensions": 2}"#)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rows: Vec<Vec<f32>> = serde_json::from_value(body).unwrap();
        assert_rows_close(&rows, &[unit(4.0, 2.0), unit(3.0, 2.0)]);
        let (_, _, body) = send(&s, post_json(r#"{"inputs": "a", "dimensions": null}"#)).await;
        assert_eq!(body, json!([[3.0, 2.0, 0.0]]), "null is the full size, as the backend answered it");
        let (_, _, body) = send(&s, post_json(r#"{"inputs": "a", "dimensions": 3}"#)).await;
        assert_eq!(body, json!([[3.0, 2.0, 0.0]]));
    }

    #[tokio::test]
    async fn unknown_prompts_and_sizes_are_422_naming_what_the_model_has() {
        let backend = Arc::new(FakeBackend::default());
        let s = ready_state(Arc::clone(&backend), 1);
        for (body, message) in [
            (
                r#"{"inputs": "a", "prompt_name": "summary"}"#,
                r#"'prompt_name' is "summary": the model's prompts are query, document"#,
            ),
            (r#"{"inputs": "a", "dimensions": 1}"#, "'dimensions' is 1: expected one of 2, 3"),
            (r#"{"inputs": "a", "dimensions": 4}"#, "'dimensions' is 4: expected one of 2, 3"),
            (r#"{"inputs": "a", "dimensions": "2"}"#, "'dimensions' is a string: expected an integer"),
        ] {
            let (status, _, answer) = send(&s, post_json(body)).await;
            assert_error(status, &answer, 422, "Validation");
            assert_eq!(answer["error"], message, "{body}");
        }
        assert!(backend.seen.lock().unwrap().is_empty(), "nothing ran");
        let (_, _, m) = metrics(&s).await;
        assert_eq!(m["embbench_requests_total"], 0.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batched_requests_with_different_prompts_and_sizes_share_one_inference() {
        let backend = Arc::new(FakeBackend { delay_ms: 150, ..Default::default() });
        let s = ready_state_with(Arc::clone(&backend), batched(16_384, 0));
        let first = {
            let s = Arc::clone(&s);
            tokio::spawn(async move { send(&s, post_json(r#"{"inputs": "a"}"#)).await })
        };
        until_running(&backend).await;
        let bodies = [
            r#"{"inputs": ["a", "a a"], "prompt_name": "query", "dimensions": 2}"#,
            r#"{"inputs": "a"}"#,
            r#"{"inputs": "a", "dimensions": 2}"#,
        ];
        let queued: Vec<_> = bodies
            .iter()
            .map(|body| {
                let s = Arc::clone(&s);
                let body = body.to_string();
                tokio::spawn(async move { send(&s, post_json(&body)).await })
            })
            .collect();
        assert_eq!(first.await.unwrap().0, StatusCode::OK);
        let mut answers = Vec::new();
        for r in queued {
            let (status, _, body) = r.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            answers.push(serde_json::from_value::<Vec<Vec<f32>>>(body).unwrap());
        }
        let seen = backend.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "the three queued requests ran as one inference: {seen:?}");
        // Prompted rows are one token longer ("b "); each request got its own size.
        let mut lengths = seen[1].lengths();
        lengths.sort_unstable();
        assert_eq!(lengths, vec![3, 3, 4, 5], "the requests may queue in any order");
        assert_rows_close(&answers[0], &[unit(4.0, 2.0), unit(5.0, 2.0)]);
        assert_eq!(answers[1], vec![vec![3.0, 2.0, 0.0]], "the full size is the backend's row");
        assert_rows_close(&answers[2], &[unit(3.0, 2.0)]);
    }

    #[tokio::test]
    async fn over_long_text_is_truncated_by_default() {
        let backend = Arc::new(FakeBackend::default());
        let s = ready_state(Arc::clone(&backend), 1);
        let (status, _, body) = send(&s, post_json(r#"{"inputs": "a a a a a a"}"#)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!([[5.0, 2.0, 0.0]]));
    }

    #[tokio::test]
    async fn backend_failure_is_500() {
        let s = ready_state(Arc::new(FakeBackend { fail: true, ..Default::default() }), 1);
        let (status, _, body) = send(&s, post_json(r#"{"inputs": "a"}"#)).await;
        assert_error(status, &body, 500, "Backend");
        assert!(body["error"].as_str().unwrap().contains("fake backend failure"), "{body}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inferences_never_exceed_max_inflight() {
        for max_inflight in [1, 2] {
            let backend = Arc::new(FakeBackend { delay_ms: 50, ..Default::default() });
            let s = ready_state(Arc::clone(&backend), max_inflight);
            let requests = (0..4).map(|_| {
                let s = Arc::clone(&s);
                tokio::spawn(async move { send(&s, post_json(r#"{"inputs": "a"}"#)).await.0 })
            });
            for r in requests.collect::<Vec<_>>() {
                assert_eq!(r.await.unwrap(), StatusCode::OK);
            }
            assert_eq!(backend.most_running.load(Ordering::SeqCst), max_inflight);
        }
    }

    #[tokio::test]
    async fn info_reports_the_contract_fields() {
        let s = ready_state(Default::default(), 1);
        let (status, _, body) = send(&s, Request::get("/info").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        for (field, want) in [
            ("framework", json!("fake")),
            ("framework_version", json!("0.0.1")),
            ("model", json!("fake")),
            ("embedding_dim", json!(3)),
            ("max_seq_length", json!(5)),
            ("dtype", json!("float32")),
            ("threads", json!(1)),
            ("max_batch", json!(3)),
            ("max_inflight", json!(1)),
        ] {
            assert_eq!(body[field], want, "{field}");
        }
        assert!(body["cpus"].is_string());
        assert!(body["build"]["target_cpu"].is_string());
        assert_eq!(body["warmup"], json!(true));
        let startup = &body["startup"];
        assert_eq!(startup["clock"], "monotonic");
        assert!(startup["process_start"].is_f64(), "{startup}");
        // This fixture was marked ready without the loader, so no stage was stamped.
        for stage in ["runtime_ready", "model_loaded", "warmed"] {
            assert!(startup[stage].is_null(), "{stage}: {startup}");
        }
        assert!(startup["process_start"].as_f64() <= startup["now"].as_f64(), "{startup}");
        let threads = body["os_threads"].as_array().unwrap();
        let pid = u64::from(std::process::id());
        assert!(threads.iter().any(|t| t["tid"] == json!(pid)), "the main thread is listed: {threads:?}");
        for t in threads {
            assert_eq!(t.as_object().unwrap().len(), 3, "{t}");
            assert!(t["tid"].is_u64() && t["name"].is_string() && t["cpu_seconds"].as_f64() >= Some(0.0), "{t}");
        }
    }

    #[tokio::test]
    async fn info_reports_warmup_off_and_the_stamps_reached() {
        let backend: Arc<FakeBackend> = Default::default();
        let s = AppState::new(
            Settings { warmup: false, ..crate::test_support::settings("/nonexistent".into(), 1) },
            crate::test_support::spec(),
        );
        s.startup.mark(crate::startup::Stage::RuntimeReady);
        s.startup.mark(crate::startup::Stage::ModelLoaded);
        s.set_ready(Ready {
            backend,
            tokenizer: Arc::new(crate::tokenize::test_support::tiny_tokenizer(5)),
            info: crate::test_support::fake_info(),
        })
        .unwrap();
        let (_, _, body) = send(&s, Request::get("/info").body(Body::empty()).unwrap()).await;
        assert_eq!(body["warmup"], json!(false));
        let t = |k: &str| body["startup"][k].as_f64().unwrap_or_else(|| panic!("{k}: {body}"));
        assert!(t("process_start") <= t("runtime_ready"));
        assert!(t("runtime_ready") <= t("model_loaded"));
        assert!(t("model_loaded") <= t("now"));
        assert!(body["startup"]["warmed"].is_null(), "{body}");
    }

    /// GET /metrics: its status, content type and samples by name.
    async fn metrics(s: &Arc<AppState>) -> (StatusCode, String, HashMap<String, f64>) {
        let res = router(Arc::clone(s)).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
        let status = res.status();
        let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
        let text = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (name, value) = l.rsplit_once(' ').unwrap();
                (name.to_string(), value.parse::<f64>().unwrap())
            })
            .collect();
        (status, content_type, samples)
    }

    fn header_ms(headers: &HeaderMap, name: &str) -> f64 {
        headers[name].to_str().unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn metrics_answer_zeros_while_the_model_loads() {
        let (status, content_type, m) = metrics(&state(1)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "text/plain; version=0.0.4");
        assert_eq!(m["embbench_requests_total"], 0.0);
        assert_eq!(m["embbench_batch_size_count"], 0.0);
        assert_eq!(m.len(), 21, "{m:?}");
    }

    #[tokio::test]
    async fn metrics_count_answered_requests_inputs_tokens_and_batches() {
        let s = ready_state(Default::default(), 1);
        // [CLS] a b [SEP]: 4 tokens.
        let (status, _, _) = send(&s, post_json(r#"{"inputs": "a b"}"#)).await;
        assert_eq!(status, StatusCode::OK);
        // 4 + 2 + 3 real tokens; the two padding positions are not counted.
        let (status, _, _) = send(&s, post_json(r#"{"inputs": ["a b", "", "a"]}"#)).await;
        assert_eq!(status, StatusCode::OK);
        // Answers other than 200 are not counted.
        let (status, _, _) = send(&s, post_json(r#"{"inputs": []}"#)).await;
        assert_eq!(status.as_u16(), 422);
        let (status, _, _) = send(&s, post_json(r#"{"inputs": "a a a a", "truncate": false}"#)).await;
        assert_eq!(status.as_u16(), 422);

        let (_, _, m) = metrics(&s).await;
        assert_eq!(m["embbench_requests_total"], 2.0);
        assert_eq!(m["embbench_inputs_total"], 4.0);
        assert_eq!(m["embbench_tokens_total"], 13.0);
        assert_eq!(m["embbench_batch_size_bucket{le=\"1\"}"], 1.0);
        assert_eq!(m["embbench_batch_size_bucket{le=\"2\"}"], 1.0);
        assert_eq!(m["embbench_batch_size_bucket{le=\"4\"}"], 2.0);
        assert_eq!(m["embbench_batch_size_bucket{le=\"+Inf\"}"], 2.0);
        assert_eq!(m["embbench_batch_size_sum"], 4.0);
        assert_eq!(m["embbench_batch_size_count"], 2.0);
        let phases: f64 = ["parse", "tokenize", "queue", "inference", "serialize"]
            .iter()
            .map(|p| m[&format!("embbench_{p}_seconds_total")])
            .sum();
        assert!((phases - m["embbench_request_seconds_total"]).abs() < 1e-8, "the phases add up to request: {m:?}");
    }

    #[tokio::test]
    async fn a_backend_failure_is_not_counted() {
        let s = ready_state(Arc::new(FakeBackend { fail: true, ..Default::default() }), 1);
        let (status, _, _) = send(&s, post_json(r#"{"inputs": "a"}"#)).await;
        assert_eq!(status.as_u16(), 500);
        let (_, _, m) = metrics(&s).await;
        assert_eq!(m["embbench_requests_total"], 0.0);
        assert_eq!(m["embbench_inference_seconds_total"], 0.0);
        assert_eq!(m["embbench_batch_size_count"], 0.0);
    }

    #[tokio::test]
    async fn timing_headers_are_the_phases_of_their_request() {
        // A slow backend makes inference the bulk of the request.
        let s = ready_state(Arc::new(FakeBackend { delay_ms: 30, ..Default::default() }), 1);
        // Unknown fields are parsed and skipped: parsing this body is work the tokenize phase must not hold.
        let body = format!(r#"{{"inputs": "a b", "pad": "{}"}}"#, "x".repeat(150));
        let (status, headers, _) = send(&s, post_json(&body)).await;
        assert_eq!(status, StatusCode::OK);
        let (_, _, m) = metrics(&s).await;
        let ms = |p: &str| m[&format!("embbench_{p}_seconds_total")] * 1000.0;
        // The headers have 3 decimals (µs); the counters are exact.
        let close = |header: f64, counters: f64| (header - counters).abs() <= 0.0005 + 1e-9;
        let tok = header_ms(&headers, "x-tokenization-time");
        let inf = header_ms(&headers, "x-inference-time");
        let total = header_ms(&headers, "x-total-time");
        assert!(ms("parse") > 0.0, "parsing is measured: {m:?}");
        assert!(close(tok, ms("tokenize")), "x-tokenization-time {tok} is the tokenize phase alone: {m:?}");
        assert!(close(inf, ms("queue") + ms("inference")), "x-inference-time {inf}: {m:?}");
        assert!(inf >= 30.0, "x-inference-time {inf} holds the model call");
        assert!(close(total, ms("request")), "x-total-time {total}: {m:?}");
        assert!(total >= tok + inf - 0.001, "{total} >= {tok} + {inf}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_for_an_inference_slot_is_queue_time() {
        let s = ready_state(Arc::new(FakeBackend { delay_ms: 60, ..Default::default() }), 1);
        let requests: Vec<_> = (0..2)
            .map(|_| {
                let s = Arc::clone(&s);
                tokio::spawn(async move { send(&s, post_json(r#"{"inputs": "a"}"#)).await })
            })
            .collect();
        let mut inference_headers = Vec::new();
        for r in requests {
            let (status, headers, _) = r.await.unwrap();
            assert_eq!(status, StatusCode::OK);
            inference_headers.push(header_ms(&headers, "x-inference-time"));
        }
        let (_, _, m) = metrics(&s).await;
        let queue = m["embbench_queue_seconds_total"];
        let inference = m["embbench_inference_seconds_total"];
        // One request ran while the other waited for the only slot (MAX_INFLIGHT=1).
        assert!(inference >= 0.12, "two 60 ms inferences: {m:?}");
        assert!(queue >= 0.03, "the second request queued behind the first: {m:?}");
        assert!(queue < inference, "{m:?}");
        // The waiter's x-inference-time holds its queue time too.
        let slowest = inference_headers.iter().cloned().fold(0.0, f64::max);
        assert!(slowest >= 90.0, "{inference_headers:?}");
    }

    fn batched(max_batch_tokens: usize, max_wait_us: u64) -> Settings {
        Settings {
            serving: ServingMode::Batched,
            max_batch_tokens,
            max_wait_us,
            ..crate::test_support::settings("/nonexistent".into(), 1)
        }
    }

    /// Waits until the backend is running an inference.
    async fn until_running(backend: &FakeBackend) {
        for _ in 0..1000 {
            if backend.running.load(Ordering::SeqCst) > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("no inference started");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batched_requests_share_one_inference_and_each_gets_its_own_rows() {
        let backend = Arc::new(FakeBackend { delay_ms: 150, ..Default::default() });
        let s = ready_state_with(Arc::clone(&backend), batched(16_384, 0));
        let first = {
            let s = Arc::clone(&s);
            tokio::spawn(async move { send(&s, post_json(r#"{"inputs": "a"}"#)).await })
        };
        until_running(&backend).await;
        // Three requests queue while the first one's inference runs: their rows differ in length
        // ([CLS] text [SEP]), which the fake backend answers as each row's first value.
        let bodies = [r#"{"inputs": ["a b c", "a"]}"#, r#"{"inputs": "a b"}"#, r#"{"inputs": ["", "c c", "a b c"]}"#];
        let expected = [
            json!([[5.0, 2.0, 0.0], [3.0, 2.0, 0.0]]),
            json!([[4.0, 2.0, 0.0]]),
            json!([[2.0, 2.0, 0.0], [4.0, 2.0, 0.0], [5.0, 2.0, 0.0]]),
        ];
        let queued: Vec<_> = bodies
            .iter()
            .map(|body| {
                let s = Arc::clone(&s);
                let body = body.to_string();
                tokio::spawn(async move { send(&s, post_json(&body)).await })
            })
            .collect();
        let (status, _, body) = first.await.unwrap();
        assert_eq!((status, body), (StatusCode::OK, json!([[3.0, 2.0, 0.0]])));
        for (r, want) in queued.into_iter().zip(expected) {
            let (status, headers, body) = r.await.unwrap();
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, want, "each request gets its own rows, in its own order");
            assert!(header_ms(&headers, "x-inference-time") >= 150.0, "it waited for the first inference");
        }
        let seen = backend.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "the three queued requests ran as one inference: {seen:?}");
        assert_eq!((seen[1].batch, seen[1].seq), (6, 5), "6 rows padded to the longest");
        let (_, _, m) = metrics(&s).await;
        assert_eq!(m["embbench_requests_total"], 4.0);
        assert_eq!(m["embbench_inputs_total"], 7.0);
        assert_eq!(m["embbench_batch_size_count"], 2.0, "one histogram entry per inference");
        assert_eq!(m["embbench_batch_size_sum"], 7.0);
        assert_eq!(m["embbench_batch_size_bucket{le=\"1\"}"], 1.0);
        assert_eq!(m["embbench_batch_size_bucket{le=\"8\"}"], 2.0);
        // The batch's inference counts whole for each of its three requests, and the wait for the
        // first request's inference is their queue time.
        assert!(m["embbench_inference_seconds_total"] >= 4.0 * 0.150, "{m:?}");
        assert!(m["embbench_queue_seconds_total"] >= 3.0 * 0.050, "{m:?}");
        let phases: f64 = ["parse", "tokenize", "queue", "inference", "serialize"]
            .iter()
            .map(|p| m[&format!("embbench_{p}_seconds_total")])
            .sum();
        assert!((phases - m["embbench_request_seconds_total"]).abs() < 1e-8, "the phases add up: {m:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batched_mode_keeps_the_token_budget_over_http() {
        // A budget of 10 padded tokens: "a b c" (5 tokens) twice fills it; a third waits for the next batch.
        let backend = Arc::new(FakeBackend { delay_ms: 100, ..Default::default() });
        let s = ready_state_with(Arc::clone(&backend), batched(10, 0));
        let first = {
            let s = Arc::clone(&s);
            tokio::spawn(async move { send(&s, post_json(r#"{"inputs": "a"}"#)).await.0 })
        };
        until_running(&backend).await;
        let mut queued = Vec::new();
        for _ in 0..3 {
            let s = Arc::clone(&s);
            queued.push(tokio::spawn(async move { send(&s, post_json(r#"{"inputs": "a b c"}"#)).await.0 }));
            // In order: each is queued before the next is sent.
            tokio::time::sleep(std::time::Duration::from_millis(15)).await;
        }
        assert_eq!(first.await.unwrap(), StatusCode::OK);
        for r in queued {
            assert_eq!(r.await.unwrap(), StatusCode::OK);
        }
        let sizes: Vec<usize> = backend.seen.lock().unwrap().iter().map(|b| b.batch).collect();
        assert_eq!(sizes, vec![1, 2, 1]);
    }

    #[tokio::test]
    async fn info_reports_the_serving_mode() {
        let (_, _, body) =
            send(&ready_state(Default::default(), 1), Request::get("/info").body(Body::empty()).unwrap()).await;
        assert_eq!(body["serving"], json!({"mode": "sequential"}));
        let s = ready_state_with(Default::default(), batched(4096, 250));
        let (_, _, body) = send(&s, Request::get("/info").body(Body::empty()).unwrap()).await;
        assert_eq!(body["serving"], json!({"mode": "batched", "max_batch_tokens": 4096, "max_wait_us": 250}));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sequential_requests_are_served_in_arrival_order() {
        let backend = Arc::new(FakeBackend { delay_ms: 40, ..Default::default() });
        let s = ready_state(Arc::clone(&backend), 1);
        let mut requests = Vec::new();
        // "a", "a a", "a a a": 3, 4 and 5 tokens, sent 10 ms apart while the first runs.
        for n in 1..=3 {
            let s = Arc::clone(&s);
            let body = format!(r#"{{"inputs": "{}"}}"#, vec!["a"; n].join(" "));
            requests.push(tokio::spawn(async move { send(&s, post_json(&body)).await.0 }));
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        for r in requests {
            assert_eq!(r.await.unwrap(), StatusCode::OK);
        }
        let seqs: Vec<usize> = backend.seen.lock().unwrap().iter().map(|b| b.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5], "one inference per request, first come first served");
    }
}
