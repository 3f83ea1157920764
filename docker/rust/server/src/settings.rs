//! Server settings from the environment (docker/CONTRACT.md, "Environment") and the model's serving facts.

use crate::pipeline::{check_dense, Attention, DenseLayer, Dimensions, Prompts};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Everything the container's environment configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub model_dir: PathBuf,
    pub host: String,
    pub port: u16,
    /// The inference thread pool size: the only source of any thread count.
    pub num_threads: usize,
    pub max_batch: usize,
    pub max_inflight: usize,
    pub max_body_bytes: usize,
    pub load_delay_ms: u64,
    /// `WARMUP`: run one warm-up inference before `/health` turns 200.
    pub warmup: bool,
    /// `SERVING`: one inference per request, or the batcher joining queued requests.
    pub serving: ServingMode,
    /// `MAX_BATCH_TOKENS` (batched): most padded tokens (rows × longest row) in one inference.
    pub max_batch_tokens: usize,
    /// `MAX_WAIT_US` (batched): how long a batch may wait for more requests after its oldest arrived.
    pub max_wait_us: u64,
}

/// How requests are admitted to inference (docker/CONTRACT.md, "Serving modes and the batcher").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingMode {
    /// Each request's inputs are one inference.
    Sequential,
    /// Queued requests are joined into one inference within the token budget.
    Batched,
}

impl ServingMode {
    /// The `SERVING` value naming this mode.
    pub fn name(self) -> &'static str {
        match self {
            ServingMode::Sequential => "sequential",
            ServingMode::Batched => "batched",
        }
    }
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let model_dir = get("MODEL_DIR")
            .context("MODEL_DIR is not set: expected the model folder written by `embbench convert`")?;
        let num_threads = get("NUM_THREADS")
            .context("NUM_THREADS is not set: expected the inference thread count (the container's cpuset size)")?;
        Ok(Self {
            model_dir: PathBuf::from(model_dir),
            host: get("HOST").unwrap_or_else(|| "127.0.0.1".into()),
            port: parse_number("PORT", get("PORT"), 8080u16, 1)?,
            num_threads: parse_number("NUM_THREADS", Some(num_threads), 0usize, 1)?,
            max_batch: parse_number("MAX_BATCH", get("MAX_BATCH"), 64usize, 1)?,
            max_inflight: parse_number("MAX_INFLIGHT", get("MAX_INFLIGHT"), 1usize, 1)?,
            max_body_bytes: parse_number("MAX_BODY_BYTES", get("MAX_BODY_BYTES"), 2_097_152usize, 1)?,
            load_delay_ms: parse_number("LOAD_DELAY_MS", get("LOAD_DELAY_MS"), 0u64, 0)?,
            warmup: parse_switch("WARMUP", get("WARMUP"), true)?,
            serving: parse_serving(get("SERVING"))?,
            max_batch_tokens: parse_number("MAX_BATCH_TOKENS", get("MAX_BATCH_TOKENS"), 16_384usize, 1)?,
            max_wait_us: parse_number("MAX_WAIT_US", get("MAX_WAIT_US"), 0u64, 0)?,
        })
    }
}

fn parse_number<T>(name: &str, value: Option<String>, default: T, min: T) -> Result<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = value else { return Ok(default) };
    let Ok(n) = raw.trim().parse::<T>() else {
        bail!("{name}=\"{raw}\" is not a whole number: expected an integer of at least {min}");
    };
    if n < min {
        bail!("{name}={n} is too small: expected at least {min}");
    }
    Ok(n)
}

/// A 0/1 switch; anything else is an error naming the variable and its value.
fn parse_switch(name: &str, value: Option<String>, default: bool) -> Result<bool> {
    let Some(raw) = value else { return Ok(default) };
    match raw.trim() {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => bail!("{name}=\"{raw}\" is not 0 or 1: expected 1 (on) or 0 (off)"),
    }
}

/// `SERVING`: `sequential` (the default) or `batched`; anything else is an error naming the variable.
fn parse_serving(value: Option<String>) -> Result<ServingMode> {
    let Some(raw) = value else { return Ok(ServingMode::Sequential) };
    match raw.trim() {
        "sequential" => Ok(ServingMode::Sequential),
        "batched" => Ok(ServingMode::Batched),
        _ => bail!("SERVING=\"{raw}\" is not a serving mode: expected sequential or batched"),
    }
}

/// How token states become one vector (`pooling` in embbench_model.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The first token's state.
    Cls,
    /// The mean over real (unpadded) tokens.
    Mean,
    /// The last real token's state.
    LastToken,
}

/// `MODEL_DIR/embbench_model.json`: the serving facts of a converted model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub name: String,
    pub architecture: String,
    /// `None` in folders converted before the field existed; a backend that builds the network
    /// itself decides what that means for its architecture.
    pub attention: Option<Attention>,
    pub pooling: Pooling,
    /// The Dense layers after pooling, in order: only a backend that builds the model applies them.
    pub dense: Vec<DenseLayer>,
    pub normalize: bool,
    pub max_seq_length: usize,
    pub embedding_dim: usize,
    pub prompts: Prompts,
    pub dimensions: Dimensions,
}

/// embbench_model.json as written; the fields added with prompts and Matryoshka sizes may be absent
/// (folders converted before them): no Dense layers, no prompts, the embedding size only.
#[derive(Deserialize)]
struct SpecFile {
    name: String,
    architecture: String,
    #[serde(default)]
    attention: Option<Attention>,
    pooling: Pooling,
    #[serde(default)]
    dense: Vec<DenseLayer>,
    normalize: bool,
    max_seq_length: usize,
    embedding_dim: usize,
    #[serde(default)]
    prompts: Prompts,
    #[serde(default)]
    dimensions: Option<Dimensions>,
}

impl ModelSpec {
    /// Reads `embbench_model.json` from a model folder.
    pub fn load(model_dir: &Path) -> Result<Self> {
        let path = model_dir.join("embbench_model.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{} is not a valid model description", path.display()))
    }

    /// Parses and checks the text of an `embbench_model.json`.
    pub fn parse(text: &str) -> Result<Self> {
        let file: SpecFile = serde_json::from_str(text)?;
        if file.max_seq_length == 0 {
            bail!("\"max_seq_length\" is 0, expected a positive token count");
        }
        if file.embedding_dim == 0 {
            bail!("\"embedding_dim\" is 0, expected the size of the embeddings");
        }
        let dimensions = file.dimensions.unwrap_or_else(|| Dimensions::only(file.embedding_dim));
        dimensions.check(file.embedding_dim).map_err(anyhow::Error::msg)?;
        check_dense(&file.dense, file.embedding_dim).map_err(anyhow::Error::msg)?;
        Ok(Self {
            name: file.name,
            architecture: file.architecture,
            attention: file.attention,
            pooling: file.pooling,
            dense: file.dense,
            normalize: file.normalize,
            max_seq_length: file.max_seq_length,
            embedding_dim: file.embedding_dim,
            prompts: file.prompts,
            dimensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = settings(&[("MODEL_DIR", "/model"), ("NUM_THREADS", "2")]).unwrap();
        assert_eq!(s.host, "127.0.0.1");
        assert_eq!(s.port, 8080);
        assert_eq!(s.num_threads, 2);
        assert_eq!(s.max_batch, 64);
        assert_eq!(s.max_inflight, 1);
        assert_eq!(s.max_body_bytes, 2 * 1024 * 1024);
        assert_eq!(s.load_delay_ms, 0);
        assert!(s.warmup);
        assert_eq!(s.serving, ServingMode::Sequential);
        assert_eq!(s.max_batch_tokens, 16_384);
        assert_eq!(s.max_wait_us, 0);
    }

    fn with(name: &str, value: &str) -> Result<Settings> {
        settings(&[("MODEL_DIR", "/m"), ("NUM_THREADS", "1"), (name, value)])
    }

    #[test]
    fn serving_is_sequential_or_batched() {
        assert_eq!(with("SERVING", "batched").unwrap().serving, ServingMode::Batched);
        assert_eq!(with("SERVING", "sequential").unwrap().serving, ServingMode::Sequential);
        assert_eq!(with("SERVING", " batched ").unwrap().serving, ServingMode::Batched, "blanks are ignored");
        assert_eq!(with("SERVING", "").unwrap().serving, ServingMode::Sequential, "empty means the default");
        for bad in ["Batched", "batch", "dynamic", "1", "sequential,batched"] {
            let e = with("SERVING", bad).unwrap_err().to_string();
            assert!(e.contains(&format!("SERVING=\"{bad}\"")) && e.contains("sequential or batched"), "{bad}: {e}");
        }
    }

    #[test]
    fn batcher_settings_are_checked_numbers() {
        let s = settings(&[
            ("MODEL_DIR", "/m"),
            ("NUM_THREADS", "1"),
            ("SERVING", "batched"),
            ("MAX_BATCH_TOKENS", "4096"),
            ("MAX_WAIT_US", "2500"),
        ])
        .unwrap();
        assert_eq!((s.serving, s.max_batch_tokens, s.max_wait_us), (ServingMode::Batched, 4096, 2500));
        assert_eq!(with("MAX_WAIT_US", "0").unwrap().max_wait_us, 0, "0 is valid: take what is queued");
        for (name, bad, says) in [
            ("MAX_BATCH_TOKENS", "0", "MAX_BATCH_TOKENS=0 is too small"),
            ("MAX_BATCH_TOKENS", "-5", "MAX_BATCH_TOKENS=\"-5\""),
            ("MAX_BATCH_TOKENS", "16k", "MAX_BATCH_TOKENS=\"16k\""),
            ("MAX_WAIT_US", "-1", "MAX_WAIT_US=\"-1\""),
            ("MAX_WAIT_US", "1.5", "MAX_WAIT_US=\"1.5\""),
            ("MAX_WAIT_US", "soon", "MAX_WAIT_US=\"soon\""),
        ] {
            let e = with(name, bad).unwrap_err().to_string();
            assert!(e.contains(says), "{name}={bad}: {e}");
        }
        // Malformed batcher settings are errors in sequential mode too, where they are unused.
        assert!(with("MAX_BATCH_TOKENS", "x").is_err());
    }

    #[test]
    fn warmup_is_0_or_1() {
        let warmup = |v: &str| settings(&[("MODEL_DIR", "/m"), ("NUM_THREADS", "1"), ("WARMUP", v)]).map(|s| s.warmup);
        assert!(!warmup("0").unwrap());
        assert!(warmup("1").unwrap());
        assert!(warmup(" 0 ").is_ok_and(|w| !w), "surrounding blanks are ignored, as for the numbers");
        assert!(warmup("").unwrap(), "an empty value means the default, as for every variable");
        for bad in ["x", "true", "no", "2", "01", "-1"] {
            let e = warmup(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("WARMUP=\"{bad}\"")) && e.contains("not 0 or 1"), "{bad}: {e}");
        }
    }

    #[test]
    fn num_threads_is_required() {
        let e = settings(&[("MODEL_DIR", "/model")]).unwrap_err().to_string();
        assert!(e.contains("NUM_THREADS is not set"), "{e}");
    }

    #[test]
    fn bad_numbers_are_named() {
        let e = settings(&[("MODEL_DIR", "/m"), ("NUM_THREADS", "two")]).unwrap_err().to_string();
        assert!(e.contains("NUM_THREADS=\"two\""), "{e}");
        let e = settings(&[("MODEL_DIR", "/m"), ("NUM_THREADS", "0")]).unwrap_err().to_string();
        assert!(e.contains("NUM_THREADS=0 is too small"), "{e}");
        let e = settings(&[("MODEL_DIR", "/m"), ("NUM_THREADS", "1"), ("PORT", "99999")]).unwrap_err().to_string();
        assert!(e.contains("PORT=\"99999\""), "{e}");
    }

    #[test]
    fn model_spec_parses_every_pooling() {
        for (text, pooling) in [("cls", Pooling::Cls), ("mean", Pooling::Mean), ("last_token", Pooling::LastToken)] {
            let json = format!(
                r#"{{"name":"m","architecture":"bert","pooling":"{text}","normalize":true,"max_seq_length":8,"embedding_dim":4}}"#
            );
            assert_eq!(ModelSpec::parse(&json).unwrap().pooling, pooling);
        }
    }

    #[test]
    fn a_folder_converted_before_the_pipeline_fields_has_none_of_them() {
        let spec = ModelSpec::parse(
            r#"{"name":"m","architecture":"bert","pooling":"cls","normalize":true,"max_seq_length":8,"embedding_dim":4,"ort_graph":"onnx/model_fused.onnx"}"#,
        )
        .unwrap();
        assert_eq!(spec.attention, None);
        assert!(spec.dense.is_empty());
        assert_eq!(spec.prompts, Prompts::default());
        assert_eq!(spec.dimensions, Dimensions::only(4));
    }

    /// The example of docker/CONTRACT.md, "Model folder".
    const GEMMA: &str = r#"{
      "name": "tiny-gemma3", "architecture": "gemma3", "attention": "bidirectional", "pooling": "mean",
      "dense": [
        { "in": 64, "out": 256, "bias": false, "activation": "identity", "path": "pytorch/2_Dense" },
        { "in": 256, "out": 64, "bias": false, "activation": "identity", "path": "pytorch/3_Dense" }
      ],
      "normalize": true, "max_seq_length": 512, "embedding_dim": 64,
      "prompts": { "query": "task: search result | query: ", "document": "title: none | text: " },
      "dimensions": { "min": 16, "max": 64, "sizes": [16, 32, 48, 64] }
    }"#;

    #[test]
    fn the_contract_example_parses_whole() {
        let spec = ModelSpec::parse(GEMMA).unwrap();
        assert_eq!(spec.attention, Some(Attention::Bidirectional));
        assert_eq!(spec.dense.len(), 2);
        assert_eq!((spec.dense[1].in_features, spec.dense[1].out_features), (256, 64));
        assert_eq!(spec.dense[1].path, "pytorch/3_Dense");
        assert_eq!(spec.prompts.text("document").unwrap(), "title: none | text: ");
        assert_eq!(spec.dimensions, Dimensions { min: 16, max: 64, sizes: Some(vec![16, 32, 48, 64]) });
    }

    #[test]
    fn wrong_pipeline_fields_are_named() {
        for (from, to, says) in [
            (r#""attention": "bidirectional""#, r#""attention": "sideways""#, "sideways"),
            (r#""min": 16, "max": 64"#, r#""min": 16, "max": 32"#, "\"dimensions\".max is 32"),
            (r#""in": 256"#, r#""in": 128"#, "\"dense\"[1].in is 128"),
            (r#""activation": "identity", "path": "pytorch/3_Dense""#, r#""activation": "relu", "path": "x""#, "relu"),
            (r#""document": "title: none | text: ""#, r#""document": null"#, "null"),
        ] {
            assert!(GEMMA.contains(from), "{from}");
            let e = format!("{:#}", ModelSpec::parse(&GEMMA.replace(from, to)).unwrap_err());
            assert!(e.contains(says), "{to}: {e}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("embbench-spec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("embbench_model.json"), GEMMA.replace("\"mean\"", "\"max\"")).unwrap();
        let e = format!("{:#}", ModelSpec::load(&dir).unwrap_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(e.contains("embbench_model.json is not a valid model description") && e.contains("max"), "{e}");
    }
}
