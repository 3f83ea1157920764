//! The HTTP layer: routes, the `/embed` pipeline (validate, tokenize, infer under a semaphore), timing
//! headers and phase counters, `/health`, `/info` and `/metrics`.

use crate::backend::{Backend, FrameworkInfo};
use crate::error::{ApiError, ErrorKind};
use crate::info;
use crate::metrics::{self, Metrics, Phases, RequestRecord};
use crate::request::{check_content_type, parse_embed_request};
use crate::settings::{ModelSpec, Settings};
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
use tokio::sync::Semaphore;

/// What serving needs once the model is loaded and warmed up.
pub struct Ready {
    pub backend: Arc<dyn Backend>,
    pub tokenizer: Arc<TextTokenizer>,
    pub info: FrameworkInfo,
}

/// Shared by every request.
pub struct AppState {
    pub settings: Settings,
    pub spec: ModelSpec,
    ready: OnceLock<Ready>,
    /// One permit per inference allowed to run (MAX_INFLIGHT); waiters queue in FIFO order.
    inference_slots: Arc<Semaphore>,
    /// The start-up stamps, written by the loading thread.
    pub startup: Startup,
    /// `/metrics`' counters.
    pub metrics: Metrics,
}

impl AppState {
    pub fn new(settings: Settings, spec: ModelSpec) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(settings.max_inflight));
        Arc::new(Self {
            settings,
            spec,
            ready: OnceLock::new(),
            inference_slots: slots,
            startup: Startup::new(),
            metrics: Metrics::new(),
        })
    }

    /// Marks the model as loaded and warmed up: `/health` turns 200 from here on.
    pub fn set_ready(&self, ready: Ready) {
        if self.ready.set(ready).is_err() {
            panic!("the model was marked ready twice");
        }
    }

    fn ready(&self) -> Result<&Ready, ApiError> {
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
        "build": build,
        "warmup": state.settings.warmup,
        "startup": state.startup.to_json(),
        "os_threads": info::os_threads(),
    })
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
/// stamps taken here, in the handler, so they add up to `request`: `tokenize` and `inference` include
/// handing the work to a blocking thread and getting its result back.
async fn embed_inner(state: Arc<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let ready = state.ready()?;
    check_content_type(headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)")))?;
    let body = read_body(body, state.settings.max_body_bytes).await?;
    let body_read = Instant::now();

    let request = parse_embed_request(&body, state.settings.max_batch)?;
    let parsed = Instant::now();

    let tokenizer = Arc::clone(&ready.tokenizer);
    let (batch, tokens) = run_blocking(move || {
        let batch = tokenizer.encode(&request.inputs, request.truncate)?;
        let tokens = batch.token_count();
        Ok::<_, ApiError>((batch, tokens))
    })
    .await??;
    let tokenized = Instant::now();

    let permit = Arc::clone(&state.inference_slots)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::new(ErrorKind::Backend, "the inference queue is closed"))?;
    let slot_held = Instant::now();
    let backend = Arc::clone(&ready.backend);
    let inputs = batch.batch;
    let rows = run_blocking(move || {
        let _permit = permit;
        backend.embed(&batch)
    })
    .await?
    .map_err(|e| ApiError::new(ErrorKind::Backend, format!("inference failed: {e:#}")))?;
    let inferred = Instant::now();
    check_rows(&rows, inputs, state.spec.embedding_dim)?;

    let json = serde_json::to_vec(&rows)
        .map_err(|e| ApiError::new(ErrorKind::Backend, format!("cannot serialise the embeddings: {e}")))?;
    let serialised = Instant::now();

    let phases = Phases::between([body_read, parsed, tokenized, slot_held, inferred, serialised]);
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
        .map_err(|e| ApiError::new(ErrorKind::Backend, format!("the inference task failed: {e}")))
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

/// A backend answering the wrong shape is a backend failure, not a client's problem.
fn check_rows(rows: &[Vec<f32>], batch: usize, dim: usize) -> Result<(), ApiError> {
    if rows.len() != batch {
        return Err(ApiError::new(
            ErrorKind::Backend,
            format!("backend answered {} rows for {batch} inputs", rows.len()),
        ));
    }
    if let Some(row) = rows.iter().find(|r| r.len() != dim) {
        return Err(ApiError::new(
            ErrorKind::Backend,
            format!("backend answered {} values per row, embedding_dim is {dim}", row.len()),
        ));
    }
    Ok(())
}

fn millis(d: std::time::Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("{:.3}", d.as_secs_f64() * 1000.0)).expect("a decimal number is a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{ready_state, state, FakeBackend};
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
        });
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
}
