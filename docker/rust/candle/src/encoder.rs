//! BERT and XLM-RoBERTa encoders on Candle tensors, written for inference on the CPU.
//!
//! Same weights, same arithmetic as candle-transformers' `BertModel` and `XLMRobertaModel` (the
//! tests hold this module to them), arranged for speed: Candle runs the matrix products (MKL's
//! `sgemm` with the `mkl` feature, the gemm crate without), and everything between two products is
//! one fused, rayon-parallel pass over the activations ([`crate::kernels`]) through Candle's custom
//! op interface. Per layer that is:
//!
//! - one QKV product against the three weight matrices stacked at load time, the attention scale
//!   folded into Q's weights and bias;
//! - bias add and the head split in one copy; per-head Q·Kᵀ and P·V products;
//! - a masked softmax in one pass (no mask tensor, no separate scale, exp, sum and division ops);
//! - bias, residual add and layer norm in one pass after each output product;
//! - bias and GELU in one pass after the intermediate product.

use crate::kernels::{self, Activation, AttentionShape};
use anyhow::{bail, Context, Result};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Device, Layout, Shape, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// The fields of a Hugging Face BERT or XLM-RoBERTa `config.json` that inference needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

/// How position ids are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// BERT: 0, 1, 2, … for every token.
    FromZero,
    /// RoBERTa: `padding_idx + 1 + i` for the i-th non-padding token, `padding_idx` for padding
    /// (Hugging Face's `create_position_ids_from_input_ids`).
    AfterPadding(u32),
}

impl Positions {
    /// Position ids of `input_ids` (`batch` rows of `seq`).
    pub fn ids(self, input_ids: &[u32], seq: usize) -> Vec<u32> {
        match self {
            Positions::FromZero => (0..input_ids.len()).map(|i| (i % seq.max(1)) as u32).collect(),
            Positions::AfterPadding(pad) => input_ids
                .chunks(seq.max(1))
                .flat_map(|row| {
                    let mut count = 0u32;
                    row.iter().map(move |&id| {
                        if id == pad {
                            pad
                        } else {
                            count += 1;
                            pad + count
                        }
                    })
                })
                .collect(),
        }
    }
}

/// A loaded encoder: token ids in, last hidden states out.
pub struct Encoder {
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    /// Row 0 of the token type embeddings: every token is of type 0.
    token_type: Tensor,
    embeddings_norm: AddNorm,
    positions: Positions,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    max_positions: usize,
    device: Device,
}

struct Layer {
    /// `[3·hidden, hidden]`: Q (scaled by 1/√head_dim), K, V.
    qkv_weight: Tensor,
    qkv_bias: Vec<f32>,
    attention_out: Tensor,
    attention_norm: AddNorm,
    intermediate: Tensor,
    activation: BiasActivation,
    output: Tensor,
    output_norm: AddNorm,
}

fn vector(t: Tensor) -> Result<Vec<f32>> {
    Ok(t.to_vec1::<f32>()?)
}

fn norm(vb: &VarBuilder, width: usize, eps: f64, bias: Option<Vec<f32>>) -> Result<AddNorm> {
    Ok(AddNorm {
        bias: bias.unwrap_or_default(),
        gamma: vector(vb.get(width, "weight")?)?,
        beta: vector(vb.get(width, "bias")?)?,
        eps: eps as f32,
    })
}

impl Encoder {
    /// Loads the weights under `vb` (tensors named `embeddings.…` and `encoder.layer.N.…`, as
    /// `BertModel` and `XLMRobertaModel` checkpoints name them).
    pub fn load(vb: VarBuilder, config: &Config, positions: Positions) -> Result<Self> {
        let (hidden, heads) = (config.hidden_size, config.num_attention_heads);
        if heads == 0 || hidden % heads != 0 {
            bail!("hidden_size {hidden} is not a multiple of num_attention_heads {heads}");
        }
        let head_dim = hidden / heads;
        let activation = match config.hidden_act.as_str() {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => bail!("hidden_act \"{other}\" is not supported"),
        };
        let eps = config.layer_norm_eps;
        let emb = vb.pp("embeddings");
        let token_type = emb.get((config.type_vocab_size, hidden), "token_type_embeddings.weight")?.get(0)?;
        let embeddings_norm = norm(&emb.pp("LayerNorm"), hidden, eps, None)?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let vb = vb.pp(format!("encoder.layer.{i}"));
            let attn = vb.pp("attention.self");
            let linear = |vb: VarBuilder, rows: usize, cols: usize| -> Result<(Tensor, Tensor)> {
                Ok((vb.get((rows, cols), "weight")?, vb.get(rows, "bias")?))
            };
            let (wq, bq) = linear(attn.pp("query"), hidden, hidden)?;
            let (wk, bk) = linear(attn.pp("key"), hidden, hidden)?;
            let (wv, bv) = linear(attn.pp("value"), hidden, hidden)?;
            let qkv_weight = Tensor::cat(&[(wq * scale)?, wk, wv], 0)?;
            let qkv_bias = vector(Tensor::cat(&[(bq * scale)?, bk, bv], 0)?)?;
            let (attention_out, bo) = linear(vb.pp("attention.output.dense"), hidden, hidden)?;
            let attention_norm = norm(&vb.pp("attention.output.LayerNorm"), hidden, eps, Some(vector(bo)?))?;
            let inter = config.intermediate_size;
            let (intermediate, bi) = linear(vb.pp("intermediate.dense"), inter, hidden)?;
            let (output, b2) = linear(vb.pp("output.dense"), hidden, inter)?;
            let output_norm = norm(&vb.pp("output.LayerNorm"), hidden, eps, Some(vector(b2)?))?;
            layers.push(Layer {
                qkv_weight,
                qkv_bias,
                attention_out,
                attention_norm,
                intermediate,
                activation: BiasActivation { bias: vector(bi)?, activation },
                output,
                output_norm,
            });
        }
        Ok(Self {
            word_embeddings: emb.get((config.vocab_size, hidden), "word_embeddings.weight")?,
            position_embeddings: emb.get((config.max_position_embeddings, hidden), "position_embeddings.weight")?,
            token_type,
            embeddings_norm,
            positions,
            layers,
            heads,
            head_dim,
            max_positions: config.max_position_embeddings,
            device: vb.device().clone(),
        })
    }

    /// Last hidden states `[batch, seq, hidden]` of `batch` right-padded rows of `seq` tokens;
    /// `attention_mask` is 1 for real tokens.
    pub fn forward(&self, input_ids: &[u32], attention_mask: &[u32], batch: usize, seq: usize) -> Result<Tensor> {
        let n = batch * seq;
        if input_ids.len() != n || attention_mask.len() != n {
            bail!("expected {batch}×{seq} token ids and mask values");
        }
        let shape = AttentionShape { batch, seq, heads: self.heads, head_dim: self.head_dim };
        let position_ids = self.positions.ids(input_ids, seq);
        if let Some(&p) = position_ids.iter().max().filter(|&&p| p as usize >= self.max_positions) {
            bail!("position {p} is past the model's {} position embeddings", self.max_positions);
        }
        let ids = Tensor::from_vec(input_ids.to_vec(), n, &self.device)?;
        let words = self.word_embeddings.index_select(&ids, 0)?;
        let position_ids = Tensor::from_vec(position_ids, n, &self.device)?;
        let positions = self.position_embeddings.index_select(&position_ids, 0)?.broadcast_add(&self.token_type)?;
        let mut x = words.apply_op2_no_bwd(&positions, &self.embeddings_norm)?;
        for layer in &self.layers {
            x = layer.forward(&x, attention_mask, shape).context("encoder layer")?;
        }
        Ok(x.reshape((batch, seq, shape.hidden()))?)
    }
}

impl Layer {
    fn forward(&self, x: &Tensor, mask: &[u32], shape: AttentionShape) -> Result<Tensor> {
        let qkv = x.matmul(&self.qkv_weight.t()?)?;
        let heads = qkv.apply_op1_no_bwd(&SplitHeads { bias: &self.qkv_bias, shape })?;
        let (q, k, v) = (heads.get(0)?, heads.get(1)?, heads.get(2)?);
        let scores = q.matmul(&k.t()?)?;
        let probs = scores.apply_op1_no_bwd(&MaskedSoftmax { mask, shape })?;
        let context = probs.matmul(&v)?.apply_op1_no_bwd(&MergeHeads { shape })?;
        let attention = context.matmul(&self.attention_out.t()?)?.apply_op2_no_bwd(x, &self.attention_norm)?;
        let intermediate = attention.matmul(&self.intermediate.t()?)?.apply_op1_no_bwd(&self.activation)?;
        Ok(intermediate.matmul(&self.output.t()?)?.apply_op2_no_bwd(&attention, &self.output_norm)?)
    }
}

/// A contiguous f32 tensor's values.
pub(crate) fn values<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("the fused encoder ops take contiguous tensors"),
    }
}

/// `act(x + bias)` row by row.
struct BiasActivation {
    bias: Vec<f32>,
    activation: Activation,
}

impl CustomOp1 for BiasActivation {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = kernels::bias_activation(values(s, l)?, &self.bias, self.activation);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// `LayerNorm(x + bias + residual)` row by row (empty `bias`: none).
struct AddNorm {
    bias: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl CustomOp2 for AddNorm {
    fn name(&self) -> &'static str {
        "add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!("add-layer-norm: shapes {:?} and {:?} differ", l1.shape(), l2.shape());
        }
        let out =
            kernels::add_layer_norm(values(s1, l1)?, values(s2, l2)?, &self.bias, &self.gamma, &self.beta, self.eps);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `[batch·seq, 3·hidden]` + bias → `[3, batch, heads, seq, head_dim]`.
struct SplitHeads<'a> {
    bias: &'a [f32],
    shape: AttentionShape,
}

impl CustomOp1 for SplitHeads<'_> {
    fn name(&self) -> &'static str {
        "split-heads"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let AttentionShape { batch, seq, heads, head_dim } = self.shape;
        let out = kernels::split_heads(values(s, l)?, self.bias, self.shape);
        Ok((CpuStorage::F32(out), Shape::from((3, batch, heads, seq, head_dim))))
    }
}

/// `[batch, heads, seq, head_dim]` → `[batch·seq, hidden]`.
struct MergeHeads {
    shape: AttentionShape,
}

impl CustomOp1 for MergeHeads {
    fn name(&self) -> &'static str {
        "merge-heads"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = kernels::merge_heads(values(s, l)?, self.shape);
        Ok((CpuStorage::F32(out), Shape::from((self.shape.batch * self.shape.seq, self.shape.hidden()))))
    }
}

/// Softmax of `[batch, heads, seq, seq]` scores over keys the mask keeps.
struct MaskedSoftmax<'a> {
    mask: &'a [u32],
    shape: AttentionShape,
}

impl CustomOp1 for MaskedSoftmax<'_> {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = kernels::masked_softmax(values(s, l)?, self.mask, self.shape);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_transformers::models::{bert, xlm_roberta};
    use std::collections::HashMap;

    const HIDDEN: usize = 8;
    const LAYERS: usize = 2;
    const INTER: usize = 16;
    const VOCAB: usize = 20;
    const MAX_POS: usize = 16;

    /// Random weights named as a BERT checkpoint names them (XLM-RoBERTa uses the same names).
    fn weights(type_vocab: usize) -> HashMap<String, Tensor> {
        let dev = Device::Cpu;
        let mut w = HashMap::new();
        let mut put = |name: String, shape: &[usize], ones: bool| {
            let t = Tensor::randn(0f32, 0.5, shape, &dev).unwrap();
            let t = if ones { (t * 0.1).unwrap().affine(1.0, 1.0).unwrap() } else { t };
            w.insert(name, t);
        };
        put("embeddings.word_embeddings.weight".into(), &[VOCAB, HIDDEN], false);
        put("embeddings.position_embeddings.weight".into(), &[MAX_POS, HIDDEN], false);
        put("embeddings.token_type_embeddings.weight".into(), &[type_vocab, HIDDEN], false);
        put("embeddings.LayerNorm.weight".into(), &[HIDDEN], true);
        put("embeddings.LayerNorm.bias".into(), &[HIDDEN], false);
        for i in 0..LAYERS {
            let p = format!("encoder.layer.{i}");
            for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"]
            {
                put(format!("{p}.{name}.weight"), &[HIDDEN, HIDDEN], false);
                put(format!("{p}.{name}.bias"), &[HIDDEN], false);
            }
            put(format!("{p}.intermediate.dense.weight"), &[INTER, HIDDEN], false);
            put(format!("{p}.intermediate.dense.bias"), &[INTER], false);
            put(format!("{p}.output.dense.weight"), &[HIDDEN, INTER], false);
            put(format!("{p}.output.dense.bias"), &[HIDDEN], false);
            for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
                put(format!("{p}.{ln}.weight"), &[HIDDEN], true);
                put(format!("{p}.{ln}.bias"), &[HIDDEN], false);
            }
        }
        w
    }

    fn config_json(arch: &str, act: &str, type_vocab: usize) -> String {
        format!(
            r#"{{"model_type": "{arch}", "vocab_size": {VOCAB}, "hidden_size": {HIDDEN}, "num_hidden_layers": {LAYERS},
            "num_attention_heads": 2, "intermediate_size": {INTER}, "hidden_act": "{act}",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": {MAX_POS},
            "type_vocab_size": {type_vocab}, "initializer_range": 0.02, "layer_norm_eps": 1e-5, "pad_token_id": 1,
            "position_embedding_type": "absolute"}}"#
        )
    }

    /// Two rows of 5 tokens, the second with 2 padding tokens (id 1, the pad id).
    const IDS: [u32; 10] = [0, 5, 7, 9, 2, 0, 11, 2, 1, 1];
    const MASK: [u32; 10] = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0];

    fn assert_close(ours: &Tensor, reference: &Tensor) {
        let (a, b) = (ours.to_vec3::<f32>().unwrap(), reference.to_vec3::<f32>().unwrap());
        assert_eq!(ours.dims(), reference.dims());
        for (row, (x, y)) in a.iter().flatten().zip(b.iter().flatten()).enumerate() {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                assert!((p - q).abs() < 1e-4, "token {row}, dim {i}: {p} vs {q}");
            }
        }
    }

    #[test]
    fn matches_candle_transformers_bert() {
        for act in ["gelu", "relu"] {
            let w = weights(2);
            let json = config_json("bert", act, 2);
            let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
            let ours = Encoder::load(vb.clone(), &serde_json::from_str(&json).unwrap(), Positions::FromZero).unwrap();
            let reference = bert::BertModel::load(vb, &serde_json::from_str(&json).unwrap()).unwrap();
            let ids = Tensor::new(&IDS, &Device::Cpu).unwrap().reshape((2, 5)).unwrap();
            let mask = Tensor::new(&MASK, &Device::Cpu).unwrap().reshape((2, 5)).unwrap();
            let want = reference.forward(&ids, &ids.zeros_like().unwrap(), Some(&mask)).unwrap();
            assert_close(&ours.forward(&IDS, &MASK, 2, 5).unwrap(), &want);
        }
    }

    #[test]
    fn matches_candle_transformers_xlm_roberta() {
        let w = weights(1);
        let json = config_json("xlm-roberta", "gelu", 1);
        let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
        let ours =
            Encoder::load(vb.clone(), &serde_json::from_str(&json).unwrap(), Positions::AfterPadding(1)).unwrap();
        let reference = xlm_roberta::XLMRobertaModel::new(&serde_json::from_str(&json).unwrap(), vb).unwrap();
        let ids = Tensor::new(&IDS, &Device::Cpu).unwrap().reshape((2, 5)).unwrap();
        let mask = Tensor::new(&MASK, &Device::Cpu).unwrap().reshape((2, 5)).unwrap();
        let want = reference.forward(&ids, &mask, &ids.zeros_like().unwrap(), None, None, None).unwrap();
        assert_close(&ours.forward(&IDS, &MASK, 2, 5).unwrap(), &want);
    }

    #[test]
    fn roberta_positions_skip_padding() {
        assert_eq!(Positions::AfterPadding(1).ids(&[0, 5, 2, 1, 1, 0, 2, 1], 4), vec![2, 3, 4, 1, 1, 2, 3, 1]);
        assert_eq!(Positions::FromZero.ids(&[0, 5, 2, 1, 0, 2], 3), vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn positions_past_the_table_are_an_error() {
        let json = config_json("bert", "gelu", 2);
        let vb = VarBuilder::from_tensors(weights(2), DType::F32, &Device::Cpu);
        let ours = Encoder::load(vb, &serde_json::from_str(&json).unwrap(), Positions::FromZero).unwrap();
        let ids = vec![0u32; MAX_POS + 1];
        assert!(ours.forward(&ids, &ids, 1, MAX_POS + 1).is_err());
    }
}
