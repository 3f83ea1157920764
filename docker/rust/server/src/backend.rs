//! The one seam between the HTTP layer and an inference framework.

use crate::settings::{ModelSpec, Settings};
use crate::startup::{Stage, Startup};
use crate::tokenize::TokenBatch;
use serde_json::{Map, Value};
use std::time::Duration;

/// An inference engine with a model loaded. Called from the inference threads (`embbench-infer`, one
/// per MAX_INFLIGHT), so at most MAX_INFLIGHT calls run at once.
pub trait Backend: Send + Sync + 'static {
    /// One embedding per batch row, pooled as the model's spec says and L2-normalised.
    fn embed(&self, batch: &TokenBatch) -> anyhow::Result<Vec<Vec<f32>>>;

    /// Called once on each inference thread (`index` 0 to MAX_INFLIGHT - 1) before its first
    /// inference, and on `--bench-run`'s timing thread (index 0): a backend may pin the thread, for
    /// example. Does nothing by default.
    fn prepare_inference_thread(&self, _index: usize) {}
}

/// What `/info` reports about the framework behind a backend.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameworkInfo {
    pub framework: String,
    pub framework_version: String,
    /// Framework-specific facts, merged into `/info`'s `build` object.
    pub build: Map<String, Value>,
}

/// A loaded backend and its description.
pub struct Loaded {
    pub backend: Box<dyn Backend>,
    pub info: FrameworkInfo,
}

/// Loads a backend: runs once, on a plain thread, after the port is bound. It calls
/// [`LoadProgress::runtime_ready`] once its runtime is up, just before it reads the model.
pub type Loader = fn(&Settings, &ModelSpec, &LoadProgress<'_>) -> anyhow::Result<Loaded>;

/// How a [`Loader`] tells the server how far it got, for `/info`'s `startup` stamps.
pub struct LoadProgress<'a> {
    startup: &'a Startup,
    load_delay: Duration,
}

impl<'a> LoadProgress<'a> {
    pub fn new(startup: &'a Startup, load_delay: Duration) -> Self {
        Self { startup, load_delay }
    }

    /// The inference runtime is initialised (ONNX Runtime's environment created, Candle's device
    /// ready) and the model is about to be read: stamps `runtime_ready`, then sleeps `LOAD_DELAY_MS`,
    /// which so counts as model load. Only the first call does anything.
    pub fn runtime_ready(&self) {
        if self.startup.mark(Stage::RuntimeReady) {
            std::thread::sleep(self.load_delay);
        }
    }
}
