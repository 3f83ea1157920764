//! The ONNX Runtime backend through the `ort` crate. The graph is `embbench_model.json`'s `ort_graph`
//! when it names one (the transformer-optimised `onnx/model_fused.onnx`), else `onnx/model.onnx`; both
//! already pool and L2-normalise (output `sentence_embedding`). ONNX Runtime is loaded at run time from
//! the shared library named by ORT_DYLIB_PATH, the same build the other ONNX Runtime images use, with
//! the contract's session options ("ONNX Runtime: one graph, one library, one set of session options").

use anyhow::{bail, Context, Result};
use embbench_server::{Backend, FrameworkInfo, LoadProgress, Loaded, ModelSpec, Settings, TokenBatch};
use ort::execution_providers::CPUExecutionProvider;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::ffi::CStr;
use std::path::{Component, Path, PathBuf};

/// The graph output the contract names.
const OUTPUT: &str = "sentence_embedding";

/// The oldest ONNX Runtime whose C API `ort` 2.0.0-rc.9 can use (it asks for API version 20).
const MIN_MINOR_VERSION: u32 = 20;

/// The graph served when `embbench_model.json` names no `ort_graph`.
const DEFAULT_GRAPH: &str = "onnx/model.onnx";

/// Whether the intra-op threads spin before they sleep, waiting for work (ONNX Runtime's
/// `session.intra_op.allow_spinning`, and `inter_op` alike); the same in the three ONNX Runtime
/// frontends. Off, by measurement (minilm, 2 CPUs, NUM_THREADS=2, the machine shared with other work,
/// spinning off vs on, two interleaved rounds): the server answered 99 vs 50 and 147 vs 74 req/s at
/// c=1, 100 vs 78 and 130 vs 140 at c=16 sequential, 133 vs 117 and 150 vs 162 batched, and spent
/// 8-50 % less CPU per request in every case; `--bench-run` at seq 128 spent 1.3-2x the CPU spinning
/// for no steady gain in wall time. A spinning pool thread takes its core from the HTTP and tokenizer
/// threads that share the cpuset. `ORT_INTRA_OP_SPINNING=0|1` overrides it for measurements, and
/// `/info.build.intra_op_spinning` reports what ran.
pub const INTRA_OP_SPINNING: bool = false;

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
    /// The CPU the inference thread pins itself to, as the intra-op pool's first thread.
    caller_cpu: Option<usize>,
}

/// The session options of the contract, as this process applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    pub intra_op_threads: usize,
    pub spinning: bool,
    /// `session.intra_op_thread_affinities`: one 1-based CPU per thread after the calling one (wrapping
    /// around when there are more threads than CPUs); `None` with one thread, which has nothing to pin.
    pub affinities: Option<String>,
    /// The CPUs in the order threads are given them: the first CPU of each physical core, then the
    /// second hyperthread of each, and so on.
    pub cpu_order: Vec<usize>,
}

/// Loads ONNX Runtime and the model's graph; the runtime is ready once its environment exists.
pub fn load(settings: &Settings, _spec: &ModelSpec, progress: &LoadProgress<'_>) -> Result<Loaded> {
    let dylib =
        std::env::var("ORT_DYLIB_PATH").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "libonnxruntime.so".into());
    let spinning = spinning_from(std::env::var("ORT_INTRA_OP_SPINNING").ok())?;
    // Checked here first: `ort` panics instead of returning an error when the library cannot load.
    let version = library_version(&dylib)?;
    ort::init_from(&dylib).with_name("embbench").commit().context("cannot create the ONNX Runtime environment")?;
    progress.runtime_ready();
    let (model, model_file) = graph_path(&settings.model_dir)?;
    let cpu_order = order_by_core(&allowed_cpus()?, core_of);
    let plan = SessionPlan::new(settings.num_threads, spinning, cpu_order);
    let mut builder = Session::builder()?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_parallel_execution(false)?
        .with_intra_threads(plan.intra_op_threads)?
        .with_inter_threads(1)?
        .with_execution_providers([CPUExecutionProvider::default().with_arena_allocator().build().error_on_failure()])?
        .with_intra_op_spinning(plan.spinning)?
        .with_inter_op_spinning(plan.spinning)?;
    if let Some(affinities) = &plan.affinities {
        builder = builder.with_config_entry("session.intra_op_thread_affinities", affinities)?;
    }
    let session =
        builder.commit_from_file(&model).with_context(|| format!("ONNX Runtime cannot load {}", model.display()))?;
    let mut backend =
        OrtBackend::new(session).with_context(|| format!("{} does not fit the contract", model.display()))?;
    // With one inference thread, it is the pool's first thread and takes the first CPU; several
    // inference threads share the session's pool, so they stay on the whole cpuset.
    backend.caller_cpu = (settings.max_inflight == 1).then(|| plan.thread_cpus().first().copied()).flatten();
    let build = json!({
        "binding": format!("ort crate {} (Rust), load-dynamic", env!("EMBBENCH_ORT_CRATE_VERSION")),
        "library": dylib,
        "library_version": version,
        "ort_build_info": ort::info(),
        "model_file": model_file,
        "execution_provider": "CPUExecutionProvider",
        "cpu_mem_arena": true,
        "intra_op_threads": plan.intra_op_threads,
        "inter_op_threads": 1,
        "execution_mode": "sequential",
        "graph_optimization_level": "ORT_ENABLE_ALL",
        "intra_op_spinning": plan.spinning,
        "intra_op_thread_affinities": plan.affinities,
        // The CPU of each intra-op thread, the calling (inference) thread first.
        "thread_cpus": plan.thread_cpus(),
        "inference_thread_cpu": backend.caller_cpu,
    });
    let info = FrameworkInfo {
        framework: "onnxruntime".into(),
        framework_version: version,
        build: build.as_object().cloned().unwrap_or_default(),
    };
    Ok(Loaded { backend: Box::new(backend), info })
}

/// The graph to load: `embbench_model.json`'s `ort_graph` (a path inside the model folder) when it
/// names one, else `onnx/model.onnx`. Returns the full path and the relative one `/info` reports.
pub fn graph_path(model_dir: &Path) -> Result<(PathBuf, String)> {
    let spec_path = model_dir.join("embbench_model.json");
    let text = std::fs::read_to_string(&spec_path).with_context(|| format!("cannot read {}", spec_path.display()))?;
    let spec: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", spec_path.display()))?;
    let relative = match spec.get("ort_graph") {
        None | Some(Value::Null) => DEFAULT_GRAPH.to_string(),
        Some(Value::String(s)) if !s.is_empty() => {
            let inside = Path::new(s).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !inside {
                bail!("{}: \"ort_graph\": \"{s}\" must be a path inside the model folder", spec_path.display());
            }
            s.clone()
        }
        Some(other) => bail!(
            "{}: \"ort_graph\" is {other}, expected a path such as \"onnx/model_fused.onnx\"",
            spec_path.display()
        ),
    };
    let path = model_dir.join(&relative);
    if !path.is_file() {
        bail!(
            "{} is missing: the ort backend serves {} (embbench_model.json's \"ort_graph\", else {DEFAULT_GRAPH}) written by `embbench convert`",
            path.display(),
            relative
        );
    }
    Ok((path, relative))
}

/// `ORT_INTRA_OP_SPINNING`: unset or empty means [`INTRA_OP_SPINNING`]; else 0 or 1.
pub fn spinning_from(value: Option<String>) -> Result<bool> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(INTRA_OP_SPINNING),
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(_) => bail!(
            "ORT_INTRA_OP_SPINNING=\"{}\" is not 0 or 1: expected 1 (intra-op threads spin) or 0 (they sleep)",
            value.unwrap_or_default()
        ),
    }
}

impl SessionPlan {
    /// The plan for `threads` intra-op threads over CPUs given in thread order.
    pub fn new(threads: usize, spinning: bool, cpu_order: Vec<usize>) -> Self {
        let mut plan = Self { intra_op_threads: threads, spinning, affinities: None, cpu_order };
        if threads > 1 && !plan.cpu_order.is_empty() {
            // ONNX Runtime numbers processors from 1; the calling thread is the first and is pinned by
            // the inference thread itself (see `Backend::prepare_inference_thread`).
            let pool = &plan.thread_cpus()[1..];
            plan.affinities = Some(pool.iter().map(|cpu| (cpu + 1).to_string()).collect::<Vec<_>>().join(";"));
        }
        plan
    }

    /// The CPU of each intra-op thread, the calling thread first: one per physical core first,
    /// wrapping around when there are more threads than CPUs.
    pub fn thread_cpus(&self) -> Vec<usize> {
        if self.cpu_order.is_empty() {
            return Vec::new();
        }
        (0..self.intra_op_threads).map(|i| self.cpu_order[i % self.cpu_order.len()]).collect()
    }
}

/// The CPUs this process may run on, from its affinity mask.
fn allowed_cpus() -> Result<Vec<usize>> {
    let list = embbench_server::info::allowed_cpus();
    parse_cpu_list(&list).with_context(|| format!("cannot read the process's CPUs from Cpus_allowed_list \"{list}\""))
}

/// Parses a cpuset list such as "0-3,8,10-11" into ascending CPU numbers.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (usize, usize) = (lo.trim().parse()?, hi.trim().parse()?);
        if lo > hi {
            bail!("\"{part}\" is a descending range");
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// The physical core a CPU belongs to, `(physical_package_id, core_id)` from sysfs; `None` when unknown.
fn core_of(cpu: usize) -> Option<(i64, i64)> {
    let read = |name: &str| -> Option<i64> {
        std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/topology/{name}")).ok()?.trim().parse().ok()
    };
    Some((read("physical_package_id")?, read("core_id")?))
}

/// Orders CPUs so that threads given them in order land on distinct physical cores first: the lowest
/// CPU of every core (in CPU order), then each core's next sibling (in CPU order), and so on. A CPU
/// whose core is unknown is a core of its own. (The same order as the Python and C++ servers.)
pub fn order_by_core<K: PartialEq>(cpus: &[usize], core: impl Fn(usize) -> Option<K>) -> Vec<usize> {
    let mut seen: Vec<K> = Vec::new();
    let mut ranked: Vec<(usize, usize)> = Vec::new(); // (CPUs of its core before it, cpu)
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for cpu in sorted {
        let rank = match core(cpu) {
            Some(key) => {
                let rank = seen.iter().filter(|k| **k == key).count();
                seen.push(key);
                rank
            }
            None => 0,
        };
        ranked.push((rank, cpu));
    }
    ranked.sort_by_key(|&(rank, _)| rank); // stable: CPU order within a rank
    ranked.into_iter().map(|(_, cpu)| cpu).collect()
}

/// Pins the calling thread to one CPU (`sched_setaffinity` on thread id 0: this thread alone).
fn pin_this_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: `set` is a valid, zeroed cpu_set_t; CPU_SET bounds-checks against CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
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
        Ok(Self { session, feeds, caller_cpu: None })
    }
}

impl Backend for OrtBackend {
    fn prepare_inference_thread(&self, index: usize) {
        if let (0, Some(cpu)) = (index, self.caller_cpu) {
            if let Err(e) = pin_this_thread(cpu) {
                eprintln!("embbench-ort: cannot pin the inference thread to CPU {cpu}: {e}");
            }
        }
    }

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

    /// A model folder with an embbench_model.json holding `extra` and empty graph files `graphs`.
    struct Folder(PathBuf);

    impl Folder {
        fn new(name: &str, extra: &str, graphs: &[&str]) -> Self {
            let dir = std::env::temp_dir().join(format!("embbench-ort-test-{}-{name}", std::process::id()));
            std::fs::create_dir_all(dir.join("onnx")).unwrap();
            std::fs::write(
                dir.join("embbench_model.json"),
                format!(r#"{{"name": "m", "architecture": "bert", "pooling": "mean", "normalize": true, "max_seq_length": 8, "embedding_dim": 4{extra}}}"#),
            )
            .unwrap();
            for g in graphs {
                std::fs::write(dir.join(g), b"").unwrap();
            }
            Self(dir)
        }
    }

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_named_ort_graph_is_loaded_else_model_onnx() {
        let both = ["onnx/model.onnx", "onnx/model_fused.onnx"];
        let f = Folder::new("fused", r#", "ort_graph": "onnx/model_fused.onnx""#, &both);
        assert_eq!(graph_path(&f.0).unwrap(), (f.0.join("onnx/model_fused.onnx"), "onnx/model_fused.onnx".into()));
        let f = Folder::new("plain", "", &both);
        assert_eq!(graph_path(&f.0).unwrap(), (f.0.join("onnx/model.onnx"), "onnx/model.onnx".into()));
        let f = Folder::new("null", r#", "ort_graph": null"#, &["onnx/model.onnx"]);
        assert_eq!(graph_path(&f.0).unwrap().1, "onnx/model.onnx");
    }

    #[test]
    fn a_bad_or_missing_ort_graph_is_an_error() {
        let f = Folder::new("missing", r#", "ort_graph": "onnx/model_fused.onnx""#, &["onnx/model.onnx"]);
        let e = format!("{:#}", graph_path(&f.0).unwrap_err());
        assert!(e.contains("model_fused.onnx is missing"), "a named graph does not fall back: {e}");
        for (extra, says) in [
            (r#", "ort_graph": "../elsewhere.onnx""#, "inside the model folder"),
            (r#", "ort_graph": "/etc/model.onnx""#, "inside the model folder"),
            (r#", "ort_graph": 3"#, "\"ort_graph\" is 3"),
        ] {
            let f = Folder::new("bad", extra, &["onnx/model.onnx"]);
            let e = format!("{:#}", graph_path(&f.0).unwrap_err());
            assert!(e.contains(says), "{extra}: {e}");
        }
        let f = Folder::new("none", "", &[]);
        assert!(format!("{:#}", graph_path(&f.0).unwrap_err()).contains("model.onnx is missing"));
    }

    #[test]
    fn spinning_is_the_default_or_0_or_1() {
        assert_eq!(spinning_from(None).unwrap(), INTRA_OP_SPINNING);
        assert_eq!(spinning_from(Some("".into())).unwrap(), INTRA_OP_SPINNING);
        assert!(spinning_from(Some("1".into())).unwrap());
        assert!(!spinning_from(Some(" 0 ".into())).unwrap());
        let e = spinning_from(Some("yes".into())).unwrap_err().to_string();
        assert!(e.contains("ORT_INTRA_OP_SPINNING=\"yes\""), "{e}");
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n").unwrap(), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("5").unwrap(), vec![5]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("unknown").is_err());
    }

    #[test]
    fn threads_go_to_distinct_cores_first() {
        // Siblings (0,4), (1,5), (2,6), (3,7); the cpuset holds cores 1 and 2 whole.
        let core = |cpu: usize| Some((0, cpu % 4));
        assert_eq!(order_by_core(&[6, 1, 5, 2], core), vec![1, 2, 5, 6]);
        // Siblings numbered next to each other: (0,1), (2,3); two packages with the same core ids.
        let adjacent = |cpu: usize| Some((cpu / 4, cpu % 4 / 2));
        assert_eq!(order_by_core(&[0, 1, 2, 3], adjacent), vec![0, 2, 1, 3]);
        assert_eq!(order_by_core(&[0, 1, 4, 5], adjacent), vec![0, 4, 1, 5]);
        // Unknown topology: every CPU its own core, in order.
        assert_eq!(order_by_core(&[7, 3], |_| None::<(i64, i64)>), vec![3, 7]);
    }

    #[test]
    fn this_machine_has_a_topology() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        let order = order_by_core(&cpus, core_of);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, cpus, "every allowed CPU, once");
    }

    #[test]
    fn affinities_pin_one_cpu_per_extra_thread_numbered_from_1() {
        let plan = SessionPlan::new(2, true, vec![0, 2, 1, 3]);
        assert_eq!(plan.affinities.as_deref(), Some("3"), "thread 2 on CPU 2 (ONNX Runtime's processor 3)");
        assert_eq!(plan.thread_cpus(), vec![0, 2]);
        let plan = SessionPlan::new(4, false, vec![4, 5, 6, 7]);
        assert_eq!(plan.affinities.as_deref(), Some("6;7;8"));
        assert!(!plan.spinning);
        let plan = SessionPlan::new(1, true, vec![1]);
        assert_eq!((plan.affinities.clone(), plan.thread_cpus()), (None, vec![1]), "one thread: the caller alone");
        let plan = SessionPlan::new(3, true, vec![0, 1]);
        assert_eq!(plan.affinities.as_deref(), Some("2;1"), "more threads than CPUs wrap around");
        assert_eq!(SessionPlan::new(2, true, vec![]).affinities, None, "no known CPUs: not pinned");
    }

    #[test]
    fn pinning_this_thread_narrows_its_affinity_only() {
        let cpu = allowed_cpus().unwrap()[0];
        let before = embbench_server::info::allowed_cpus();
        let in_thread = std::thread::spawn(move || {
            pin_this_thread(cpu).unwrap();
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            parse_cpu_list(status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap()).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(in_thread, vec![cpu]);
        assert_eq!(embbench_server::info::allowed_cpus(), before, "the process's other threads keep theirs");
    }

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
