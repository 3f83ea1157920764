//! The one seam between the HTTP layer and an inference framework.

use crate::settings::{ModelSpec, Settings};
use crate::tokenize::TokenBatch;
use serde_json::{Map, Value};

/// An inference engine with a model loaded. Called from blocking threads, at most MAX_INFLIGHT at once.
pub trait Backend: Send + Sync + 'static {
    /// One embedding per batch row, pooled as the model's spec says and L2-normalised.
    fn embed(&self, batch: &TokenBatch) -> anyhow::Result<Vec<Vec<f32>>>;
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

/// Loads a backend: runs once, on a plain thread, after the port is bound.
pub type Loader = fn(&Settings, &ModelSpec) -> anyhow::Result<Loaded>;
