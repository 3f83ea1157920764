//! The ONNX Runtime backend through the `ort` crate: `MODEL_DIR/onnx/model.onnx`, whose graph already
//! pools and L2-normalises (output `sentence_embedding`). ONNX Runtime is loaded at run time from the
//! shared library named by ORT_DYLIB_PATH, so this image runs the same ONNX Runtime build as the C++ one.

use anyhow::{bail, Context, Result};
use embbench_server::{Backend, FrameworkInfo, LoadProgress, Loaded, ModelSpec, Settings, TokenBatch};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;
use serde_json::json;
use std::borrow::Cow;
use std::ffi::CStr;

/// The graph output the contract names.
const OUTPUT: &str = "sentence_embedding";

/// The oldest ONNX Runtime whose C API `ort` 2.0.0-rc.9 can use (it asks for API version 20).
const MIN_MINOR_VERSION: u32 = 20;

/// What feeds one graph input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    InputIds,
    AttentionMask,
    /// BERT graphs exported with segment ids get zeros.
    TokenTypeIds,
}

/// A session and the order of its inputs.
pub struct OrtBackend {
    session: Session,
    feeds: Vec<(String, Feed)>,
}

/// Loads ONNX Runtime and the model's graph; the runtime is ready once its environment exists.
pub fn load(settings: &Settings, _spec: &ModelSpec, progress: &LoadProgress<'_>) -> Result<Loaded> {
    let dylib =
        std::env::var("ORT_DYLIB_PATH").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "libonnxruntime.so".into());
    // Checked here first: `ort` panics instead of returning an error when the library cannot load.
    let version = library_version(&dylib)?;
    ort::init_from(&dylib).with_name("embbench").commit().context("cannot create the ONNX Runtime environment")?;
    progress.runtime_ready();
    let model = settings.model_dir.join("onnx").join("model.onnx");
    if !model.is_file() {
        bail!("{} is missing: the ort backend serves the ONNX graph written by `embbench convert`", model.display());
    }
    let session = Session::builder()?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(settings.num_threads)?
        .with_inter_threads(1)?
        .with_parallel_execution(false)?
        .commit_from_file(&model)
        .with_context(|| format!("ONNX Runtime cannot load {}", model.display()))?;
    let backend = OrtBackend::new(session).with_context(|| format!("{} does not fit the contract", model.display()))?;
    let build = json!({
        "binding": format!("ort crate {} (Rust), load-dynamic", env!("EMBBENCH_ORT_CRATE_VERSION")),
        "library": dylib,
        "ort_build_info": ort::info(),
        "execution_provider": "CPU",
        "intra_op_threads": settings.num_threads,
        "inter_op_threads": 1,
        "execution_mode": "sequential",
        "graph_optimization_level": "ORT_ENABLE_ALL",
    });
    let info = FrameworkInfo {
        framework: "onnxruntime".into(),
        framework_version: version,
        build: build.as_object().cloned().unwrap_or_default(),
    };
    Ok(Loaded { backend: Box::new(backend), info })
}

/// Opens the ONNX Runtime library and asks it for its version ("1.21.0").
fn library_version(path: &str) -> Result<String> {
    // SAFETY: loading ONNX Runtime runs only its own initialisers; the handle stays open for the
    // process's life (ort opens the same library again and shares the mapping).
    let lib = unsafe { libloading::Library::new(path) }
        .with_context(|| format!("cannot load the ONNX Runtime library ORT_DYLIB_PATH=\"{path}\""))?;
    let version = unsafe {
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort_sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase").with_context(|| format!("{path} has no OrtGetApiBase: not ONNX Runtime"))?;
        let base = get_base();
        anyhow::ensure!(!base.is_null(), "{path}: OrtGetApiBase returned null");
        let get_version = (*base).GetVersionString.context("ONNX Runtime lacks GetVersionString")?;
        CStr::from_ptr(get_version()).to_string_lossy().into_owned()
    };
    std::mem::forget(lib);
    let minor = version.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
    if !version.starts_with("1.") || minor < MIN_MINOR_VERSION {
        bail!("{path} is ONNX Runtime {version}: this build needs 1.{MIN_MINOR_VERSION} or newer");
    }
    Ok(version)
}

impl OrtBackend {
    fn new(session: Session) -> Result<Self> {
        let feeds = session
            .inputs
            .iter()
            .map(|input| {
                let feed = match input.name.as_str() {
                    "input_ids" => Feed::InputIds,
                    "attention_mask" => Feed::AttentionMask,
                    "token_type_ids" => Feed::TokenTypeIds,
                    other => bail!("unexpected graph input \"{other}\": expected input_ids, attention_mask"),
                };
                Ok((input.name.clone(), feed))
            })
            .collect::<Result<Vec<_>>>()?;
        for needed in [Feed::InputIds, Feed::AttentionMask] {
            if !feeds.iter().any(|(_, f)| *f == needed) {
                bail!("the graph has no {needed:?} input");
            }
        }
        if !session.outputs.iter().any(|o| o.name == OUTPUT) {
            let names: Vec<_> = session.outputs.iter().map(|o| o.name.as_str()).collect();
            bail!("the graph has no \"{OUTPUT}\" output, only {names:?}");
        }
        Ok(Self { session, feeds })
    }
}

impl Backend for OrtBackend {
    fn embed(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>> {
        let shape = [batch.batch as i64, batch.seq as i64];
        let widen = |v: &[u32]| v.iter().map(|&x| i64::from(x)).collect::<Vec<i64>>();
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(self.feeds.len());
        for (name, feed) in &self.feeds {
            let data = match feed {
                Feed::InputIds => widen(&batch.input_ids),
                Feed::AttentionMask => widen(&batch.attention_mask),
                Feed::TokenTypeIds => vec![0i64; batch.input_ids.len()],
            };
            inputs.push((Cow::Borrowed(name.as_str()), Tensor::from_array((shape, data))?.into()));
        }
        let outputs = self.session.run(inputs)?;
        let (dims, values) = outputs[OUTPUT].try_extract_raw_tensor::<f32>()?;
        let [rows, dim] = dims else { bail!("\"{OUTPUT}\" has shape {dims:?}, expected [batch, dim]") };
        if *rows as usize != batch.batch {
            bail!("\"{OUTPUT}\" has {rows} rows for a batch of {}", batch.batch);
        }
        Ok(values.chunks(*dim as usize).map(<[f32]>::to_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_an_error_naming_ort_dylib_path() {
        let e = library_version("/nonexistent/libonnxruntime.so.1.21").unwrap_err();
        assert!(format!("{e:#}").contains("ORT_DYLIB_PATH=\"/nonexistent/libonnxruntime.so.1.21\""), "{e:#}");
    }

    #[test]
    fn a_library_that_is_not_onnx_runtime_is_an_error() {
        // libc is loadable everywhere and has no OrtGetApiBase.
        let e = library_version("libc.so.6").unwrap_err();
        assert!(format!("{e:#}").contains("has no OrtGetApiBase"), "{e:#}");
    }
}
