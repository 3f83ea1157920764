//! The Candle backend: BERT and XLM-RoBERTa ([`encoder`]), Qwen3 and Gemma3 ([`decoder`]) from
//! `MODEL_DIR/pytorch` safetensors, run by this crate's own networks on Candle tensors, then pooled,
//! passed through embbench_model.json's Dense layers ([`dense`]) and L2-normalised here on the CPU.
//!
//! Threads: rayon's global pool (NUM_THREADS threads, built by the server crate) runs the encoder's
//! fused passes and, without MKL, the gemm crate's matrix products; its threads are pinned one per
//! physical core of the CPU set ([`threads`]), and each forward pass runs on one of them. With the
//! `mkl` feature, matrix products go to Intel MKL, whose OpenMP team is sized to NUM_THREADS too.

pub mod decoder;
pub mod decoder_kernels;
pub mod dense;
pub mod encoder;
pub mod kernels;
#[cfg(feature = "mkl")]
pub mod mkl;
pub mod threads;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use decoder::{Decoder, Family};
use dense::Dense;
use embbench_server::{Backend, FrameworkInfo, LoadProgress, Loaded, ModelSpec, Pooling, Settings, TokenBatch};
use encoder::{Encoder, Positions};
use serde_json::json;
use std::path::Path;

/// A loaded network, how to pool its token states and what follows the pooling.
pub struct CandleBackend {
    network: Network,
    pooling: Pooling,
    dense: Vec<Dense>,
    normalize: bool,
    device: Device,
}

/// The network that turns token ids into token states.
pub enum Network {
    Encoder(Encoder),
    Decoder(Decoder),
}

impl Network {
    fn forward(&self, batch: &TokenBatch) -> Result<Tensor> {
        match self {
            Network::Encoder(e) => e.forward(&batch.input_ids, &batch.attention_mask, batch.batch, batch.seq),
            Network::Decoder(d) => d.forward(&batch.input_ids, &batch.attention_mask, batch.batch, batch.seq),
        }
    }
}

/// Loads the model named by `spec` from `settings.model_dir`; the runtime is ready once the CPU
/// device is (rayon's pool, sized by NUM_THREADS, is built before loading starts).
pub fn load(settings: &Settings, spec: &ModelSpec, progress: &LoadProgress<'_>) -> Result<Loaded> {
    let pinning = threads::pin_global_pool();
    if let Err(e) = &pinning {
        eprintln!("embbench-candle: rayon's threads are not pinned: {e}");
    }
    #[cfg(feature = "mkl")]
    mkl::set_num_threads(settings.num_threads);
    let device = Device::Cpu;
    progress.runtime_ready();
    let backend = CandleBackend::load(&settings.model_dir, spec, device)?;
    let info = FrameworkInfo {
        framework: "candle".into(),
        framework_version: env!("EMBBENCH_CANDLE_VERSION").into(),
        build: build_facts(&pinning),
    };
    Ok(Loaded { backend: Box::new(backend), info })
}

fn build_facts(pinning: &Result<Vec<Vec<usize>>, String>) -> serde_json::Map<String, serde_json::Value> {
    #[cfg_attr(not(feature = "mkl"), allow(unused_mut))]
    let mut facts = json!({
        "device": "cpu",
        "matmul": if candle_core::utils::has_mkl() { "Intel MKL sgemm (static, Intel OpenMP)" } else { "gemm crate on rayon" },
        "mkl": candle_core::utils::has_mkl(),
        "avx": candle_core::utils::with_avx(),
        "f16c": candle_core::utils::with_f16c(),
        "rayon_threads": rayon::current_num_threads(),
        "candle_threads": candle_core::utils::get_num_threads(),
        "rayon_pinning": match pinning {
            Ok(cpus) => json!(cpus),
            Err(e) => json!(format!("not pinned: {e}")),
        },
    });
    #[cfg(feature = "mkl")]
    if let Some(map) = facts.as_object_mut() {
        map.insert("mkl_version".into(), json!(mkl::version()));
        map.insert("mkl_cpu".into(), json!(mkl::processor()));
        map.insert("mkl_threads".into(), json!(mkl::max_threads()));
        map.insert("kmp_blocktime".into(), json!(std::env::var("KMP_BLOCKTIME").ok()));
    }
    facts.as_object().cloned().unwrap_or_default()
}

impl CandleBackend {
    /// Loads `pytorch/config.json` and `pytorch/model.safetensors` from a model folder onto
    /// `device`, and the Dense layers embbench_model.json names.
    pub fn load(model_dir: &Path, spec: &ModelSpec, device: Device) -> Result<Self> {
        let dir = model_dir.join("pytorch");
        let config_path = dir.join("config.json");
        let config_text =
            std::fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            bail!("{} is missing: the Candle backend loads safetensors weights", weights.display());
        }
        // SAFETY: the model folder is mounted read-only and not modified while the server runs.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device)? };
        let described = || format!("{} does not describe a {} model", config_path.display(), spec.architecture);
        let weights_of = || format!("cannot load the {} weights from {}", spec.architecture, weights.display());
        let network = match spec.architecture.as_str() {
            "bert" | "xlm-roberta" => {
                let config: encoder::Config = serde_json::from_str(&config_text).with_context(described)?;
                // Checkpoints of the bare model name tensors "embeddings.…"; task checkpoints nest them.
                let (positions, prefix) = match spec.architecture.as_str() {
                    "bert" => (Positions::FromZero, "bert"),
                    _ => (Positions::AfterPadding(config.pad_token_id.unwrap_or(1)), "roberta"),
                };
                let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") { vb } else { vb.pp(prefix) };
                Network::Encoder(Encoder::load(vb, &config, positions).with_context(weights_of)?)
            }
            "qwen3" | "gemma3" => {
                let family = if spec.architecture == "qwen3" { Family::Qwen3 } else { Family::Gemma3 };
                let config: decoder::Config = serde_json::from_str(&config_text).with_context(described)?;
                let attention = spec.attention.with_context(|| {
                    format!(
                        "{}: \"attention\" is missing: a {} model is served as embbench_model.json says (bidirectional or causal); convert the model again",
                        model_dir.join("embbench_model.json").display(),
                        spec.architecture
                    )
                })?;
                let decoder = Decoder::load(vb, &config, family, attention, spec.max_seq_length).with_context(weights_of)?;
                Network::Decoder(decoder)
            }
            other => bail!(
                "the Candle backend serves architectures \"bert\", \"xlm-roberta\", \"qwen3\" and \"gemma3\", not \"{other}\""
            ),
        };
        let dense = spec
            .dense
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                Dense::load(model_dir, layer, &device)
                    .with_context(|| format!("cannot load embbench_model.json's \"dense\"[{i}] ({})", layer.path))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { network, pooling: spec.pooling, dense, normalize: spec.normalize, device })
    }

    fn forward(&self, batch: &TokenBatch) -> Result<Tensor> {
        let hidden = self.network.forward(batch)?;
        let attention_mask = Tensor::from_vec(batch.attention_mask.clone(), (batch.batch, batch.seq), &self.device)?;
        let mut pooled = pool(&hidden, &attention_mask, self.pooling)?;
        for layer in &self.dense {
            pooled = layer.forward(&pooled)?;
        }
        Ok(if self.normalize { l2_normalize(&pooled)? } else { pooled })
    }
}

impl Backend for CandleBackend {
    /// Runs on one of rayon's pinned threads (the caller, a blocking thread of tokio's, waits):
    /// Candle's sequential ops then run there, and MKL's OpenMP team is led from there.
    fn embed(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>> {
        rayon::scope(|_| Ok(self.forward(batch)?.to_vec2::<f32>()?))
    }
}

/// Pools token states `[batch, seq, dim]` into `[batch, dim]`; `mask` is `[batch, seq]`, 1 for real
/// tokens, with padding on the right.
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> Result<Tensor> {
    let (batch, seq, _dim) = hidden.dims3()?;
    Ok(match pooling {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        Pooling::Mean => {
            let mask = mask.to_dtype(hidden.dtype())?;
            let summed = hidden.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
            // As sentence-transformers: the count is clamped so an all-padding row cannot divide by 0.
            let counts = mask.sum_keepdim(1)?.maximum(1e-9)?;
            summed.broadcast_div(&counts)?
        }
        Pooling::LastToken => {
            let lengths = mask.to_dtype(DType::U32)?.sum(1)?.to_vec1::<u32>()?;
            let rows: Vec<u32> =
                lengths.iter().enumerate().map(|(i, &len)| (i * seq) as u32 + len.saturating_sub(1)).collect();
            let index = Tensor::from_vec(rows, batch, hidden.device())?;
            hidden.flatten_to(1)?.index_select(&index, 0)?
        }
    })
}

/// Divides each row by its L2 norm, as `torch.nn.functional.normalize` (norm floored at 1e-12).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norms = x.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
    Ok(x.broadcast_div(&norms)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rows of three positions, dim 2; row 1 has one padding position whose state must not count.
    fn fixture() -> (Tensor, Tensor) {
        let hidden =
            Tensor::new(&[[[1f32, 2.], [3., 4.], [5., 6.]], [[10., 20.], [30., 40.], [1000., 1000.]]], &Device::Cpu)
                .unwrap();
        let mask = Tensor::new(&[[1u32, 1, 1], [1, 1, 0]], &Device::Cpu).unwrap();
        (hidden, mask)
    }

    fn rows(t: Tensor) -> Vec<Vec<f32>> {
        t.to_vec2::<f32>().unwrap()
    }

    #[test]
    fn cls_takes_the_first_token() {
        let (h, m) = fixture();
        assert_eq!(rows(pool(&h, &m, Pooling::Cls).unwrap()), vec![vec![1., 2.], vec![10., 20.]]);
    }

    #[test]
    fn mean_averages_real_tokens_only() {
        let (h, m) = fixture();
        assert_eq!(rows(pool(&h, &m, Pooling::Mean).unwrap()), vec![vec![3., 4.], vec![20., 30.]]);
    }

    #[test]
    fn last_token_takes_the_last_real_token() {
        let (h, m) = fixture();
        assert_eq!(rows(pool(&h, &m, Pooling::LastToken).unwrap()), vec![vec![5., 6.], vec![30., 40.]]);
    }

    #[test]
    fn pooling_a_single_token_row() {
        let h = Tensor::new(&[[[7f32, -1.], [9., 9.]]], &Device::Cpu).unwrap();
        let m = Tensor::new(&[[1u32, 0]], &Device::Cpu).unwrap();
        for p in [Pooling::Cls, Pooling::Mean, Pooling::LastToken] {
            assert_eq!(rows(pool(&h, &m, p).unwrap()), vec![vec![7., -1.]], "{p:?}");
        }
    }

    #[test]
    fn l2_normalize_gives_unit_rows_and_keeps_zero_rows() {
        let x = Tensor::new(&[[3f32, 4.], [0., 0.]], &Device::Cpu).unwrap();
        assert_eq!(rows(l2_normalize(&x).unwrap()), vec![vec![0.6, 0.8], vec![0., 0.]]);
    }
}
