//! Fixtures shared by this crate's unit tests: a fake backend, settings and a model folder.

use crate::backend::{Backend, FrameworkInfo};
use crate::http::{AppState, Ready};
use crate::pipeline::{Attention, Dimensions, Prompts};
use crate::settings::{ModelSpec, Pooling, ServingMode, Settings};
use crate::tokenize::test_support::tiny_tokenizer;
use crate::tokenize::TokenBatch;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Answers each row as [real token count, first id, 0]; records the batches it saw and the most
/// inferences that overlapped.
#[derive(Default)]
pub(crate) struct FakeBackend {
    pub fail: bool,
    pub delay_ms: u64,
    pub running: AtomicUsize,
    pub most_running: AtomicUsize,
    pub seen: Mutex<Vec<TokenBatch>>,
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

/// Lets a test keep a handle on the backend it hands to a loader.
impl Backend for Arc<FakeBackend> {
    fn embed(&self, batch: &TokenBatch) -> anyhow::Result<Vec<Vec<f32>>> {
        self.as_ref().embed(batch)
    }
}

pub(crate) fn fake_info() -> FrameworkInfo {
    FrameworkInfo { framework: "fake".into(), framework_version: "0.0.1".into(), build: Default::default() }
}

pub(crate) fn settings(model_dir: PathBuf, max_inflight: usize) -> Settings {
    Settings {
        model_dir,
        host: "127.0.0.1".into(),
        port: 0,
        num_threads: 1,
        max_batch: 3,
        max_inflight,
        max_body_bytes: 200,
        load_delay_ms: 0,
        warmup: true,
        serving: ServingMode::Sequential,
        max_batch_tokens: 16_384,
        max_wait_us: 0,
    }
}

/// The fake model: 3 values per row (Matryoshka sizes 3 and 2), at most 5 tokens, prompts "query"
/// (the text "b ") and "document" (none).
pub(crate) fn spec() -> ModelSpec {
    ModelSpec {
        name: "fake".into(),
        architecture: "bert".into(),
        attention: Some(Attention::Bidirectional),
        pooling: Pooling::Cls,
        dense: Vec::new(),
        normalize: true,
        max_seq_length: 5,
        embedding_dim: 3,
        prompts: Prompts(vec![("query".into(), "b ".into()), ("document".into(), String::new())]),
        dimensions: Dimensions { min: 1, max: 3, sizes: Some(vec![3, 2]) },
    }
}

/// A server whose model is still loading.
pub(crate) fn state(max_inflight: usize) -> Arc<AppState> {
    AppState::new(settings("/nonexistent".into(), max_inflight), spec())
}

/// A server serving `backend` with the tiny tokenizer.
pub(crate) fn ready_state(backend: Arc<FakeBackend>, max_inflight: usize) -> Arc<AppState> {
    ready_state_with(backend, settings("/nonexistent".into(), max_inflight))
}

/// A server serving `backend` with the tiny tokenizer and these settings.
pub(crate) fn ready_state_with(backend: Arc<FakeBackend>, settings: Settings) -> Arc<AppState> {
    let s = AppState::new(settings, spec());
    s.set_ready(Ready { backend, tokenizer: Arc::new(tiny_tokenizer(5)), info: fake_info() }).unwrap();
    s
}

/// A fresh model folder holding the tiny tokenizer as `pytorch/tokenizer.json` (pad id 0 from
/// `config.json`), under the system's temporary folder; removed when dropped.
pub(crate) struct ModelDir(pub PathBuf);

impl ModelDir {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("embbench-server-test-{}-{name}", std::process::id()));
        let pytorch = dir.join("pytorch");
        std::fs::create_dir_all(&pytorch).unwrap();
        crate::tokenize::test_support::tiny_raw_tokenizer().save(pytorch.join("tokenizer.json"), false).unwrap();
        std::fs::write(pytorch.join("config.json"), r#"{"pad_token_id": 0}"#).unwrap();
        Self(dir)
    }
}

impl Drop for ModelDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
