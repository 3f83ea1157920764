//! The HTTP layer: routes, the `/embed` pipeline (validate, tokenize, infer under a semaphore), timing
//! headers, `/health` and `/info`.

use crate::backend::{Backend, FrameworkInfo};
use crate::error::{ApiError, ErrorKind};
use crate::info;
use crate::request::{check_content_type, parse_embed_request};
use crate::settings::{ModelSpec, Settings};
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
}

impl AppState {
    pub fn new(settings: Settings, spec: ModelSpec) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(settings.max_inflight));
        Arc::new(Self { settings, spec, ready: OnceLock::new(), inference_slots: slots })
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
        .fallback(|| async { ApiError::new(ErrorKind::NotFound, "no such path: expected /embed, /health or /info") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorKind::MethodNotAllowed, "wrong method: /embed takes POST, /health and /info take GET")
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
    })
}

async fn embed(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match embed_inner(state, headers, body).await {
        Ok(response) => response,
        Err(e) => {
            // These answers leave (part of) the body unread, so the connection cannot be reused:
            // say so, or a client sends its next request on a connection the server then drops.
            let unread = matches!(
                e.kind,
                ErrorKind::PayloadTooLarge | ErrorKind::UnsupportedMediaType | ErrorKind::Unhealthy
            );
            let mut response = e.into_response();
            if unread {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

async fn embed_inner(state: Arc<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let ready = state.ready()?;
    check_content_type(headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)")))?;
    let body = read_body(body, state.settings.max_body_bytes).await?;
    let started = Instant::now();

    let request = parse_embed_request(&body, state.settings.max_batch)?;
    let tokenizer = Arc::clone(&ready.tokenizer);
    let batch = run_blocking(move || tokenizer.encode(&request.inputs, request.truncate)).await??;
    let tokenized = Instant::now();

    let permit = Arc::clone(&state.inference_slots)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::new(ErrorKind::Backend, "the inference queue is closed"))?;
    let backend = Arc::clone(&ready.backend);
    let rows = run_blocking(move || {
        let _permit = permit;
        backend.embed(&batch).map(|rows| (rows, batch.batch))
    })
    .await?
    .map_err(|e| ApiError::new(ErrorKind::Backend, format!("inference failed: {e:#}")))?;
    let inferred = Instant::now();
    check_rows(&rows.0, rows.1, state.spec.embedding_dim)?;

    let json = serde_json::to_vec(&rows.0)
        .map_err(|e| ApiError::new(ErrorKind::Backend, format!("cannot serialise the embeddings: {e}")))?;
    let finished = Instant::now();

    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], json).into_response();
    let h = response.headers_mut();
    h.insert("x-tokenization-time", millis(tokenized - started));
    h.insert("x-inference-time", millis(inferred - tokenized));
    h.insert("x-total-time", millis(finished - started));
    Ok(response)
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
    use crate::settings::Pooling;
    use crate::tokenize::test_support::tiny_tokenizer;
    use crate::tokenize::TokenBatch;
    use axum::http::Request;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use tower::ServiceExt;

    /// Answers each row as [real token count, first id, 0]; records the batches it saw and the most
    /// inferences that overlapped.
    #[derive(Default)]
    struct FakeBackend {
        fail: bool,
        delay_ms: u64,
        running: AtomicUsize,
        most_running: AtomicUsize,
        seen: Mutex<Vec<TokenBatch>>,
    }

    impl Backend for FakeBackend {
        fn embed(&self, batch: &TokenBatch) -> anyhow::Result<Vec<Vec<f32>>> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(self.delay_ms));
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.seen.lock().unwrap().push(batch.clone());
            if self.fail {
                anyhow::bail!("fake backend failure");
            }
            Ok(batch
                .lengths()
                .iter()
                .zip(batch.input_ids.chunks(batch.seq))
                .map(|(&len, row)| vec![len as f32, row[0] as f32, 0.0])
                .collect())
        }
    }

    fn state(max_inflight: usize) -> Arc<AppState> {
        let settings = Settings {
            model_dir: "/nonexistent".into(),
            host: "127.0.0.1".into(),
            port: 0,
            num_threads: 1,
            max_batch: 3,
            max_inflight,
            max_body_bytes: 200,
            load_delay_ms: 0,
        };
        let spec = ModelSpec {
            name: "fake".into(),
            architecture: "bert".into(),
            pooling: Pooling::Cls,
            normalize: true,
            max_seq_length: 5,
            embedding_dim: 3,
        };
        AppState::new(settings, spec)
    }

    fn ready_state(backend: Arc<FakeBackend>, max_inflight: usize) -> Arc<AppState> {
        let s = state(max_inflight);
        s.set_ready(Ready {
            backend,
            tokenizer: Arc::new(tiny_tokenizer(5)),
            info: FrameworkInfo {
                framework: "fake".into(),
                framework_version: "0.0.1".into(),
                build: Default::default(),
            },
        });
        s
    }

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
    }
}
