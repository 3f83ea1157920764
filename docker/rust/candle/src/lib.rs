//! The Candle backend: BERT and XLM-RoBERTa from `MODEL_DIR/pytorch` safetensors through
//! candle-transformers, pooled and L2-normalised here on the CPU.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{bert, xlm_roberta};
use embbench_server::{Backend, FrameworkInfo, LoadProgress, Loaded, ModelSpec, Pooling, Settings, TokenBatch};
use serde_json::json;
use std::path::Path;

enum Encoder {
    Bert(bert::BertModel),
    XlmRoberta(xlm_roberta::XLMRobertaModel),
}

/// A loaded encoder and how to pool its token states.
pub struct CandleBackend {
    encoder: Encoder,
    pooling: Pooling,
    normalize: bool,
    device: Device,
}

/// Loads the model named by `spec` from `settings.model_dir`; the runtime is ready once the CPU
/// device is (rayon's pool, sized by NUM_THREADS, is built before loading starts).
pub fn load(settings: &Settings, spec: &ModelSpec, progress: &LoadProgress<'_>) -> Result<Loaded> {
    let device = Device::Cpu;
    progress.runtime_ready();
    let backend = CandleBackend::load(&settings.model_dir.join("pytorch"), spec, device)?;
    let info = FrameworkInfo {
        framework: "candle".into(),
        framework_version: env!("EMBBENCH_CANDLE_VERSION").into(),
        build: build_facts(),
    };
    Ok(Loaded { backend: Box::new(backend), info })
}

fn build_facts() -> serde_json::Map<String, serde_json::Value> {
    let facts = json!({
        "device": "cpu",
        "matmul": "gemm crate on rayon",
        "mkl": candle_core::utils::has_mkl(),
        "avx": candle_core::utils::with_avx(),
        "f16c": candle_core::utils::with_f16c(),
        "rayon_threads": rayon::current_num_threads(),
        "candle_threads": candle_core::utils::get_num_threads(),
    });
    facts.as_object().cloned().unwrap_or_default()
}

impl CandleBackend {
    /// Loads `config.json` and `model.safetensors` from a `pytorch/` folder onto `device`.
    pub fn load(dir: &Path, spec: &ModelSpec, device: Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config_text =
            std::fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            bail!("{} is missing: the Candle backend loads safetensors weights", weights.display());
        }
        // SAFETY: the model folder is mounted read-only and not modified while the server runs.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device)? };
        let parse_error = || format!("{} does not describe a {} model", config_path.display(), spec.architecture);
        let encoder = match spec.architecture.as_str() {
            "bert" => {
                let config: bert::Config = serde_json::from_str(&config_text).with_context(parse_error)?;
                Encoder::Bert(bert::BertModel::load(vb, &config).context("cannot load the BERT weights")?)
            }
            "xlm-roberta" => {
                let config: xlm_roberta::Config = serde_json::from_str(&config_text).with_context(parse_error)?;
                // XLMRobertaModel checkpoints name tensors "embeddings.…"; masked-LM ones "roberta.embeddings.…".
                let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") { vb } else { vb.pp("roberta") };
                Encoder::XlmRoberta(
                    xlm_roberta::XLMRobertaModel::new(&config, vb).context("cannot load the XLM-RoBERTa weights")?,
                )
            }
            other => bail!("the Candle backend serves architectures \"bert\" and \"xlm-roberta\", not \"{other}\""),
        };
        Ok(Self { encoder, pooling: spec.pooling, normalize: spec.normalize, device })
    }

    fn forward(&self, batch: &TokenBatch) -> Result<Tensor> {
        let shape = (batch.batch, batch.seq);
        let input_ids = Tensor::from_vec(batch.input_ids.clone(), shape, &self.device)?;
        let attention_mask = Tensor::from_vec(batch.attention_mask.clone(), shape, &self.device)?;
        let token_type_ids = input_ids.zeros_like()?;
        let hidden = match &self.encoder {
            Encoder::Bert(m) => m.forward(&input_ids, &token_type_ids, Some(&attention_mask))?,
            Encoder::XlmRoberta(m) => m.forward(&input_ids, &attention_mask, &token_type_ids, None, None, None)?,
        };
        let pooled = pool(&hidden, &attention_mask, self.pooling)?;
        Ok(if self.normalize { l2_normalize(&pooled)? } else { pooled })
    }
}

impl Backend for CandleBackend {
    fn embed(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>> {
        Ok(self.forward(batch)?.to_vec2::<f32>()?)
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
