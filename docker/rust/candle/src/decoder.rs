//! Qwen3 and Gemma3 text models on Candle tensors, in fp32, as transformers 4.57 defines them,
//! written for embedding inference on the CPU (candle-transformers 0.9.1 has no Qwen3 and a
//! causal-only Gemma3).
//!
//! Both are pre-norm decoders with RMS norms, per-head q/k norms, rotary embeddings, grouped-query
//! attention and a gated MLP; they differ in:
//!
//! | | Qwen3 | Gemma3 |
//! |-|-|-|
//! | embeddings | as stored | × √hidden (rounded to f32) |
//! | RMS norm gain | `weight` | `1 + weight` |
//! | norms around attention and MLP | before | before and after (`post_attention_layernorm`, `pre_`/`post_feedforward_layernorm`) |
//! | attention scale | `1/√head_dim` | `1/√query_pre_attn_scalar` |
//! | rotary base | `rope_theta` | `rope_theta` on full layers, `rope_local_base_freq` on sliding ones |
//! | MLP gate | SiLU | GELU (tanh form) |
//!
//! Attention follows embbench_model.json's `attention` and each layer's type (`layer_types`):
//! full layers see every real token (bidirectional) or the real tokens up to their own (causal);
//! sliding layers only those less than the window away, on both sides when bidirectional. The window
//! is the one transformers' config holds once loaded: `Gemma3TextConfig` rewrites `sliding_window`
//! to `sliding_window // 2 + 1` whenever `use_bidirectional_attention` is set, each time a config is
//! read. These are the masks of docker/convert's export wrapper (`DecoderEmbedder`) and of
//! transformers' `Gemma3TextModel` with `use_bidirectional_attention`.
//!
//! Rotary tables are computed in f32 as transformers computes them (no half-precision angles).
//! Candle runs the matrix products; the element-wise work between them is fused
//! ([`crate::decoder_kernels`]).

use crate::decoder_kernels::{self as dk, DecoderShape, Gate, HeadPrep, KeyRule, Rotary};
use crate::encoder::values;
use crate::kernels::{merge_heads, AttentionShape};
use anyhow::{bail, Context, Result};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Device, Layout, Shape, Tensor};
use candle_nn::VarBuilder;
use embbench_server::Attention;
use serde::Deserialize;
use serde_json::Value;

/// Which of the two families a model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Qwen3,
    Gemma3,
}

/// The fields of a Qwen3 or Gemma3 text `config.json` that inference needs; defaults are
/// transformers' (`Qwen3Config`, `Gemma3TextConfig`) where the file may omit a field.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Qwen3's MLP activation.
    #[serde(default)]
    pub hidden_act: Option<String>,
    /// Gemma3's MLP activation.
    #[serde(default)]
    pub hidden_activation: Option<String>,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    #[serde(default)]
    pub rope_local_base_freq: Option<f64>,
    #[serde(default)]
    pub query_pre_attn_scalar: Option<f64>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub sliding_window: Option<usize>,
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    #[serde(default)]
    pub sliding_window_pattern: Option<usize>,
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    #[serde(default)]
    pub max_window_layers: Option<usize>,
    #[serde(default)]
    pub use_bidirectional_attention: Option<bool>,
    #[serde(default)]
    pub attn_logit_softcapping: Option<f64>,
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}

/// A layer's attention kind, as `layer_types` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerType {
    Full,
    Sliding,
}

impl Config {
    fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Each layer's type: `layer_types` when the file has it, else transformers' default
    /// (Gemma3: every `sliding_window_pattern`-th layer full, the others sliding; Qwen3: sliding
    /// from `max_window_layers` on when `use_sliding_window`, else all full).
    fn layer_types(&self, family: Family) -> Result<Vec<LayerType>> {
        let n = self.num_hidden_layers;
        let types = match &self.layer_types {
            Some(names) => names
                .iter()
                .map(|name| match name.as_str() {
                    "full_attention" => Ok(LayerType::Full),
                    "sliding_attention" => Ok(LayerType::Sliding),
                    other => bail!("layer_types holds \"{other}\", expected full_attention or sliding_attention"),
                })
                .collect::<Result<Vec<_>>>()?,
            None => match family {
                Family::Gemma3 => {
                    let pattern = self.sliding_window_pattern.unwrap_or(6).max(1);
                    (0..n).map(|i| if (i + 1) % pattern != 0 { LayerType::Sliding } else { LayerType::Full }).collect()
                }
                Family::Qwen3 => {
                    let sliding = self.use_sliding_window == Some(true) && self.sliding_window.is_some();
                    let from = self.max_window_layers.unwrap_or(n);
                    (0..n).map(|i| if sliding && i >= from { LayerType::Sliding } else { LayerType::Full }).collect()
                }
            },
        };
        if types.len() != n {
            bail!("layer_types names {} layers, num_hidden_layers is {n}", types.len());
        }
        Ok(types)
    }

    /// The sliding window as transformers' loaded config holds it (see the module documentation).
    fn window(&self, family: Family) -> Result<usize> {
        let window = match family {
            Family::Gemma3 => self.sliding_window.unwrap_or(4096),
            Family::Qwen3 => self.sliding_window.context("a layer is sliding_attention but sliding_window is null")?,
        };
        let bidirectional = family == Family::Gemma3 && self.use_bidirectional_attention == Some(true);
        let window = if bidirectional { window / 2 + 1 } else { window };
        if window == 0 {
            bail!("sliding_window is 0");
        }
        Ok(window)
    }

    /// The linear scaling factor of `rope_scaling` (1 for none or the default rotary embedding).
    fn rope_factor(&self) -> Result<f64> {
        let Some(scaling) = self.rope_scaling.as_ref().filter(|v| !v.is_null()) else { return Ok(1.0) };
        let kind = scaling.get("rope_type").or_else(|| scaling.get("type")).and_then(Value::as_str);
        match kind {
            Some("default") | None => Ok(1.0),
            Some("linear") => scaling
                .get("factor")
                .and_then(Value::as_f64)
                .filter(|f| *f > 0.0)
                .context("rope_scaling is linear without a positive \"factor\""),
            Some(other) => bail!("rope_scaling \"{other}\" is not supported: expected default or linear"),
        }
    }

    fn gate(&self, family: Family) -> Result<Gate> {
        let (field, name) = match family {
            Family::Qwen3 => ("hidden_act", self.hidden_act.as_deref().unwrap_or("silu")),
            Family::Gemma3 => ("hidden_activation", self.hidden_activation.as_deref().unwrap_or("gelu_pytorch_tanh")),
        };
        match name {
            "silu" | "swish" => Ok(Gate::Silu),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Ok(Gate::GeluTanh),
            other => bail!("{field} \"{other}\" is not supported: expected silu or gelu_pytorch_tanh"),
        }
    }
}

/// A loaded Qwen3 or Gemma3 text model: token ids in, last hidden states (after the final norm) out.
pub struct Decoder {
    embeddings: Tensor,
    /// Gemma3 multiplies the embeddings by √hidden.
    embed_scale: Option<f64>,
    layers: Vec<Layer>,
    final_norm: Vec<f32>,
    /// One table per rotary base in use: `[0]` global, `[1]` local (Gemma3's sliding layers).
    rotary: Vec<Rotary>,
    shape: Heads,
    eps: f32,
    q_scale: f32,
    device: Device,
}

/// The model's head counts.
#[derive(Debug, Clone, Copy)]
struct Heads {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    hidden: usize,
    intermediate: usize,
}

struct Layer {
    input_norm: Vec<f32>,
    /// `[(heads + 2·kv_heads)·head_dim, hidden]`: q, k, v stacked.
    qkv: Tensor,
    qkv_bias: Vec<f32>,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    o_proj: Tensor,
    /// Gemma3 normalises the attention's output before the residual add.
    post_attention_norm: Option<Vec<f32>>,
    /// Before the MLP: Qwen3's `post_attention_layernorm`, Gemma3's `pre_feedforward_layernorm`.
    pre_mlp_norm: Vec<f32>,
    /// `[2·intermediate, hidden]`: gate, up stacked.
    gate_up: Tensor,
    gate: Gate,
    down: Tensor,
    /// Gemma3 normalises the MLP's output before the residual add.
    post_mlp_norm: Option<Vec<f32>>,
    rule: KeyRule,
    rotary: usize,
}

fn vector(t: Tensor) -> Result<Vec<f32>> {
    Ok(t.to_vec1::<f32>()?)
}

impl Decoder {
    /// Loads the weights under `vb` (tensors `embed_tokens.weight`, `layers.N.…`, `norm.weight`, as
    /// `Qwen3Model` and `Gemma3TextModel` save them, or the same under `model.`). `attention` is
    /// embbench_model.json's; rotary tables cover `max_positions` positions.
    pub fn load(
        vb: VarBuilder,
        config: &Config,
        family: Family,
        attention: Attention,
        max_positions: usize,
    ) -> Result<Self> {
        let vb = if vb.contains_tensor("embed_tokens.weight") {
            vb
        } else if vb.contains_tensor("model.embed_tokens.weight") {
            vb.pp("model")
        } else {
            bail!("the weights have no embed_tokens.weight (nor model.embed_tokens.weight)");
        };
        let (heads, kv_heads, head_dim) = (config.num_attention_heads, config.kv_heads(), config.head_dim());
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            bail!("num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}");
        }
        if head_dim % 2 != 0 {
            bail!("head_dim {head_dim} is odd: rotary embeddings rotate pairs");
        }
        if config.attn_logit_softcapping.is_some() {
            bail!("attn_logit_softcapping is not supported (EmbeddingGemma has none)");
        }
        let shape =
            Heads { heads, kv_heads, head_dim, hidden: config.hidden_size, intermediate: config.intermediate_size };
        let types = config.layer_types(family)?;
        let window = if types.contains(&LayerType::Sliding) { Some(config.window(family)?) } else { None };
        let rule = |t: LayerType| match (t, attention, window) {
            (LayerType::Sliding, Attention::Bidirectional, Some(w)) => KeyRule::Window(w),
            (LayerType::Sliding, Attention::Causal, Some(w)) => KeyRule::CausalWindow(w),
            (_, Attention::Bidirectional, _) => KeyRule::All,
            (_, Attention::Causal, _) => KeyRule::Causal,
        };
        let factor = config.rope_factor()?;
        let (rotary, q_scale, embed_scale) = match family {
            Family::Qwen3 => {
                let theta = config.rope_theta.unwrap_or(10_000.0);
                (vec![Rotary::new(head_dim, theta, factor, max_positions)], (head_dim as f64).powf(-0.5), None)
            }
            Family::Gemma3 => {
                let global = Rotary::new(head_dim, config.rope_theta.unwrap_or(1_000_000.0), factor, max_positions);
                let local = Rotary::new(head_dim, config.rope_local_base_freq.unwrap_or(10_000.0), 1.0, max_positions);
                let scalar = config.query_pre_attn_scalar.unwrap_or(256.0);
                // torch.tensor(hidden_size ** 0.5): the f64 root rounded to f32.
                let scale = f64::from((config.hidden_size as f64).sqrt() as f32);
                (vec![global, local], scalar.powf(-0.5), Some(scale))
            }
        };
        let gate = config.gate(family)?;
        let norm = |vb: &VarBuilder, width: usize| -> Result<Vec<f32>> {
            let w = vector(vb.get(width, "weight")?)?;
            Ok(match family {
                Family::Qwen3 => w,
                Family::Gemma3 => w.iter().map(|w| 1.0 + w).collect(),
            })
        };
        let (hidden, inter) = (shape.hidden, shape.intermediate);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for (i, &layer_type) in types.iter().enumerate() {
            let vb = vb.pp(format!("layers.{i}"));
            let attn = vb.pp("self_attn");
            let q = attn.get((heads * head_dim, hidden), "q_proj.weight")?;
            let k = attn.get((kv_heads * head_dim, hidden), "k_proj.weight")?;
            let v = attn.get((kv_heads * head_dim, hidden), "v_proj.weight")?;
            let qkv_bias = if config.attention_bias {
                let b = [
                    attn.get(heads * head_dim, "q_proj.bias")?,
                    attn.get(kv_heads * head_dim, "k_proj.bias")?,
                    attn.get(kv_heads * head_dim, "v_proj.bias")?,
                ];
                vector(Tensor::cat(&b, 0)?)?
            } else {
                Vec::new()
            };
            let mlp = vb.pp("mlp");
            let gate_up = Tensor::cat(
                &[mlp.get((inter, hidden), "gate_proj.weight")?, mlp.get((inter, hidden), "up_proj.weight")?],
                0,
            )?;
            let (post_attention_norm, pre_mlp_norm, post_mlp_norm) = match family {
                Family::Qwen3 => (None, norm(&vb.pp("post_attention_layernorm"), hidden)?, None),
                Family::Gemma3 => (
                    Some(norm(&vb.pp("post_attention_layernorm"), hidden)?),
                    norm(&vb.pp("pre_feedforward_layernorm"), hidden)?,
                    Some(norm(&vb.pp("post_feedforward_layernorm"), hidden)?),
                ),
            };
            layers.push(Layer {
                input_norm: norm(&vb.pp("input_layernorm"), hidden)?,
                qkv: Tensor::cat(&[q, k, v], 0)?,
                qkv_bias,
                q_norm: norm(&attn.pp("q_norm"), head_dim)?,
                k_norm: norm(&attn.pp("k_norm"), head_dim)?,
                o_proj: attn.get((hidden, heads * head_dim), "o_proj.weight")?,
                post_attention_norm,
                pre_mlp_norm,
                gate_up,
                gate,
                down: mlp.get((hidden, inter), "down_proj.weight")?,
                post_mlp_norm,
                rule: rule(layer_type),
                rotary: if family == Family::Gemma3 && layer_type == LayerType::Sliding { 1 } else { 0 },
            });
        }
        Ok(Self {
            embeddings: vb.get((config.vocab_size, hidden), "embed_tokens.weight")?,
            embed_scale,
            final_norm: norm(&vb.pp("norm"), hidden)?,
            layers,
            rotary,
            shape,
            eps: config.rms_norm_eps as f32,
            q_scale: q_scale as f32,
            device: vb.device().clone(),
        })
    }

    /// The attention rule of each layer, in order.
    pub fn rules(&self) -> Vec<KeyRule> {
        self.layers.iter().map(|l| l.rule).collect()
    }

    /// Last hidden states `[batch, seq, hidden]` of `batch` right-padded rows of `seq` tokens;
    /// `attention_mask` is 1 for real tokens. Positions are 0, 1, … in every row.
    pub fn forward(&self, input_ids: &[u32], attention_mask: &[u32], batch: usize, seq: usize) -> Result<Tensor> {
        let n = batch * seq;
        if input_ids.len() != n || attention_mask.len() != n {
            bail!("expected {batch}×{seq} token ids and mask values");
        }
        if seq > self.rotary[0].positions() {
            bail!("{seq} tokens are more than the {} positions the rotary tables cover", self.rotary[0].positions());
        }
        let ids = Tensor::from_vec(input_ids.to_vec(), n, &self.device)?;
        let mut x = self.embeddings.index_select(&ids, 0)?;
        if let Some(scale) = self.embed_scale {
            x = x.affine(scale, 0.0)?;
        }
        let shape = DecoderShape {
            batch,
            seq,
            heads: self.shape.heads,
            kv_heads: self.shape.kv_heads,
            head_dim: self.shape.head_dim,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            x = self.layer(layer, &x, attention_mask, shape).with_context(|| format!("decoder layer {i}"))?;
        }
        let x = rms(&x, &self.final_norm, self.eps)?;
        Ok(x.reshape((batch, seq, self.shape.hidden))?)
    }

    fn layer(&self, layer: &Layer, x: &Tensor, mask: &[u32], s: DecoderShape) -> Result<Tensor> {
        let h = rms(x, &layer.input_norm, self.eps)?;
        let qkv = h.matmul(&layer.qkv.t()?)?;
        let prep = HeadPrep {
            bias: &layer.qkv_bias,
            q_norm: Some(&layer.q_norm),
            k_norm: Some(&layer.k_norm),
            eps: self.eps,
            rotary: &self.rotary[layer.rotary],
            q_scale: self.q_scale,
        };
        let heads = fused(&qkv, "decoder-split-heads", Shape::from(s.q_len() + 2 * s.kv_len()), |v| {
            dk::split_heads(v, s, &prep)
        })?;
        let (groups, d) = (s.heads / s.kv_heads, s.head_dim);
        // Query heads that share a key/value head are adjacent: [batch, kv_heads, groups·seq, head_dim].
        let q = heads.narrow(0, 0, s.q_len())?.reshape((s.batch, s.kv_heads, groups * s.seq, d))?;
        let key = heads.narrow(0, s.q_len(), s.kv_len())?.reshape((s.batch, s.kv_heads, s.seq, d))?;
        let value = heads.narrow(0, s.q_len() + s.kv_len(), s.kv_len())?.reshape((s.batch, s.kv_heads, s.seq, d))?;
        let scores = q.matmul(&key.t()?)?;
        let rule = layer.rule;
        let probs = fused(&scores, "decoder-masked-softmax", scores.shape().clone(), |v| {
            dk::masked_softmax(v, mask, s.batch, s.seq, rule)
        })?;
        let context = probs.matmul(&value)?;
        let merge = AttentionShape { batch: s.batch, seq: s.seq, heads: s.heads, head_dim: d };
        let context = fused(&context, "decoder-merge-heads", Shape::from((s.batch * s.seq, merge.hidden())), |v| {
            merge_heads(v, merge)
        })?;
        let attention = context.matmul(&layer.o_proj.t()?)?;
        let x = match &layer.post_attention_norm {
            Some(gain) => rms_add(&attention, x, gain, self.eps)?,
            None => (x + attention)?,
        };
        let h = rms(&x, &layer.pre_mlp_norm, self.eps)?;
        let gate_up = h.matmul(&layer.gate_up.t()?)?;
        let inter = self.shape.intermediate;
        let (gate, rows) = (layer.gate, s.batch * s.seq);
        let act = fused(&gate_up, "decoder-gated-mlp", Shape::from((rows, inter)), |v| dk::gated(v, inter, gate))?;
        let down = act.matmul(&layer.down.t()?)?;
        Ok(match &layer.post_mlp_norm {
            Some(gain) => rms_add(&down, &x, gain, self.eps)?,
            None => (x + down)?,
        })
    }
}

/// `RMSNorm(x)` row by row.
fn rms(x: &Tensor, gain: &[f32], eps: f32) -> Result<Tensor> {
    fused(x, "rms-norm", x.shape().clone(), |v| dk::rms_norm(v, None, gain, eps))
}

/// `residual + RMSNorm(x)` row by row.
fn rms_add(x: &Tensor, residual: &Tensor, gain: &[f32], eps: f32) -> Result<Tensor> {
    let op = RmsAdd { gain, eps };
    Ok(x.contiguous()?.apply_op2_no_bwd(&residual.contiguous()?, &op)?)
}

/// Runs `f` over a contiguous f32 tensor's values; the result has `shape`.
fn fused<F>(x: &Tensor, name: &'static str, shape: Shape, f: F) -> Result<Tensor>
where
    F: Fn(&[f32]) -> Vec<f32> + Send + Sync,
{
    Ok(x.contiguous()?.apply_op1_no_bwd(&Fused { name, shape, f })?)
}

struct Fused<F> {
    name: &'static str,
    shape: Shape,
    f: F,
}

impl<F: Fn(&[f32]) -> Vec<f32> + Send + Sync> CustomOp1 for Fused<F> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = (self.f)(values(s, l)?);
        if out.len() != self.shape.elem_count() {
            candle_core::bail!("{}: {} values for shape {:?}", self.name, out.len(), self.shape);
        }
        Ok((CpuStorage::F32(out), self.shape.clone()))
    }
}

struct RmsAdd<'a> {
    gain: &'a [f32],
    eps: f32,
}

impl CustomOp2 for RmsAdd<'_> {
    fn name(&self) -> &'static str {
        "rms-norm-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!("rms-norm-add: shapes {:?} and {:?} differ", l1.shape(), l2.shape());
        }
        let out = dk::rms_norm(values(s1, l1)?, Some(values(s2, l2)?), self.gain, self.eps);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
