//! The decoder against a plain re-statement of transformers' Qwen3 and Gemma3 forward passes
//! (Candle's ordinary ops, one unpadded sequence at a time): batching, padding and the fused passes
//! must not change a real token's state.

use super::*;
use candle_core::{DType, D};
use std::collections::HashMap;

const HIDDEN: usize = 16;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
/// Not HIDDEN / HEADS: Qwen3-0.6B's heads are wider than hidden / heads too.
const HEAD_DIM: usize = 6;
const INTER: usize = 24;
const VOCAB: usize = 30;
const LAYERS: usize = 2;

fn weights(family: Family) -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let mut w = HashMap::new();
    let mut put = |name: String, shape: &[usize], scale: f64| {
        w.insert(name, (Tensor::randn(0f32, 1.0, shape, &dev).unwrap() * scale).unwrap());
    };
    put("embed_tokens.weight".into(), &[VOCAB, HIDDEN], 1.0);
    put("norm.weight".into(), &[HIDDEN], 0.3);
    for i in 0..LAYERS {
        let p = format!("layers.{i}");
        put(format!("{p}.self_attn.q_proj.weight"), &[HEADS * HEAD_DIM, HIDDEN], 0.4);
        put(format!("{p}.self_attn.k_proj.weight"), &[KV_HEADS * HEAD_DIM, HIDDEN], 0.4);
        put(format!("{p}.self_attn.v_proj.weight"), &[KV_HEADS * HEAD_DIM, HIDDEN], 0.4);
        put(format!("{p}.self_attn.o_proj.weight"), &[HIDDEN, HEADS * HEAD_DIM], 0.4);
        put(format!("{p}.self_attn.q_norm.weight"), &[HEAD_DIM], 0.3);
        put(format!("{p}.self_attn.k_norm.weight"), &[HEAD_DIM], 0.3);
        put(format!("{p}.mlp.gate_proj.weight"), &[INTER, HIDDEN], 0.4);
        put(format!("{p}.mlp.up_proj.weight"), &[INTER, HIDDEN], 0.4);
        put(format!("{p}.mlp.down_proj.weight"), &[HIDDEN, INTER], 0.4);
        put(format!("{p}.input_layernorm.weight"), &[HIDDEN], 0.3);
        put(format!("{p}.post_attention_layernorm.weight"), &[HIDDEN], 0.3);
        if family == Family::Gemma3 {
            put(format!("{p}.pre_feedforward_layernorm.weight"), &[HIDDEN], 0.3);
            put(format!("{p}.post_feedforward_layernorm.weight"), &[HIDDEN], 0.3);
        }
    }
    w
}

fn config(family: Family) -> Config {
    let json = match family {
        Family::Qwen3 => format!(
            r#"{{"model_type": "qwen3", "vocab_size": {VOCAB}, "hidden_size": {HIDDEN}, "intermediate_size": {INTER},
            "num_hidden_layers": {LAYERS}, "num_attention_heads": {HEADS}, "num_key_value_heads": {KV_HEADS},
            "head_dim": {HEAD_DIM}, "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "rope_scaling": null, "attention_bias": false, "use_sliding_window": false, "sliding_window": null,
            "max_window_layers": 28, "layer_types": ["full_attention", "full_attention"], "tie_word_embeddings": true}}"#
        ),
        // sliding_window 4, bidirectional: transformers' loaded config holds 4 // 2 + 1 = 3.
        Family::Gemma3 => format!(
            r#"{{"model_type": "gemma3_text", "vocab_size": {VOCAB}, "hidden_size": {HIDDEN}, "intermediate_size": {INTER},
            "num_hidden_layers": {LAYERS}, "num_attention_heads": {HEADS}, "num_key_value_heads": {KV_HEADS},
            "head_dim": {HEAD_DIM}, "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "rope_scaling": null,
            "query_pre_attn_scalar": 12, "attention_bias": false, "sliding_window": 4,
            "layer_types": ["sliding_attention", "full_attention"], "use_bidirectional_attention": true,
            "attn_logit_softcapping": null, "final_logit_softcapping": null}}"#
        ),
    };
    serde_json::from_str(&json).unwrap()
}

/// `x · rsqrt(mean(x²) + eps) · gain` over the last axis, gain as each family stores it.
fn rms_ref(x: &Tensor, weight: &Tensor, family: Family) -> Tensor {
    let inv = (x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap() + 1e-6).unwrap().sqrt().unwrap().recip().unwrap();
    let normed = x.broadcast_mul(&inv).unwrap();
    let gain = match family {
        Family::Qwen3 => weight.clone(),
        Family::Gemma3 => (weight + 1.0).unwrap(),
    };
    normed.broadcast_mul(&gain).unwrap()
}

fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.dim(D::Minus1).unwrap() / 2;
    let (a, b) = (x.narrow(D::Minus1, 0, half).unwrap(), x.narrow(D::Minus1, half, half).unwrap());
    Tensor::cat(&[b.neg().unwrap(), a], D::Minus1).unwrap()
}

/// cos and sin `[len, head_dim]` of transformers' default rotary embedding with base `theta`.
fn rope_ref(theta: f64, len: usize) -> (Tensor, Tensor) {
    let dev = Device::Cpu;
    let exponents = (Tensor::arange_step(0u32, HEAD_DIM as u32, 2, &dev).unwrap().to_dtype(DType::F32).unwrap()
        / HEAD_DIM as f64)
        .unwrap();
    let inv_freq = Tensor::full(theta as f32, HEAD_DIM / 2, &dev).unwrap().pow(&exponents).unwrap().recip().unwrap();
    let positions = Tensor::arange(0u32, len as u32, &dev).unwrap().to_dtype(DType::F32).unwrap();
    let freqs = positions.unsqueeze(1).unwrap().broadcast_mul(&inv_freq.unsqueeze(0).unwrap()).unwrap();
    let emb = Tensor::cat(&[&freqs, &freqs], 1).unwrap();
    (emb.cos().unwrap(), emb.sin().unwrap())
}

/// One unpadded sequence through the model as transformers writes it; `allowed(q, k)` is the
/// attention mask of each layer.
fn reference(
    w: &HashMap<String, Tensor>,
    family: Family,
    ids: &[u32],
    allowed: &dyn Fn(usize, usize, usize) -> bool,
) -> Tensor {
    let dev = Device::Cpu;
    let len = ids.len();
    let get = |name: &str| w[name].clone();
    let mut x = get("embed_tokens.weight").index_select(&Tensor::new(ids, &dev).unwrap(), 0).unwrap();
    if family == Family::Gemma3 {
        x = (x * (HIDDEN as f64).sqrt()).unwrap();
    }
    let scaling = match family {
        Family::Qwen3 => (HEAD_DIM as f64).powf(-0.5),
        Family::Gemma3 => 12f64.powf(-0.5),
    };
    for i in 0..LAYERS {
        let p = |name: &str| get(&format!("layers.{i}.{name}"));
        let linear = |x: &Tensor, name: &str| x.matmul(&p(name).t().unwrap()).unwrap();
        let theta = if family == Family::Gemma3 && i == 0 { 10_000.0 } else { 1_000_000.0 };
        let (cos, sin) = rope_ref(theta, len);
        let h = rms_ref(&x, &p("input_layernorm.weight"), family);
        let split =
            |t: Tensor, n: usize| t.reshape((len, n, HEAD_DIM)).unwrap().transpose(0, 1).unwrap().contiguous().unwrap();
        let q = split(linear(&h, "self_attn.q_proj.weight"), HEADS);
        let k = split(linear(&h, "self_attn.k_proj.weight"), KV_HEADS);
        let v = split(linear(&h, "self_attn.v_proj.weight"), KV_HEADS);
        let q = rms_ref(&q, &p("self_attn.q_norm.weight"), family);
        let k = rms_ref(&k, &p("self_attn.k_norm.weight"), family);
        let rope = |t: &Tensor| (t.broadcast_mul(&cos).unwrap() + rotate_half(t).broadcast_mul(&sin).unwrap()).unwrap();
        let (q, k) = (rope(&q), rope(&k));
        let mut mask = vec![0f32; len * len];
        for a in 0..len {
            for b in 0..len {
                if !allowed(i, a, b) {
                    mask[a * len + b] = f32::NEG_INFINITY;
                }
            }
        }
        let mask = Tensor::from_vec(mask, (len, len), &dev).unwrap();
        let mut heads = Vec::new();
        for head in 0..HEADS {
            let kv = head / (HEADS / KV_HEADS);
            let (q, k, v) = (q.get(head).unwrap(), k.get(kv).unwrap(), v.get(kv).unwrap());
            let scores = (q.matmul(&k.t().unwrap()).unwrap() * scaling).unwrap().broadcast_add(&mask).unwrap();
            let probs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
            heads.push(probs.matmul(&v).unwrap());
        }
        let context = Tensor::cat(&heads, 1).unwrap();
        let attention = linear(&context, "self_attn.o_proj.weight");
        let mlp = |h: &Tensor| {
            let gate = linear(h, "mlp.gate_proj.weight");
            let gate = match family {
                Family::Qwen3 => gate.silu().unwrap(),
                Family::Gemma3 => gate.gelu().unwrap(),
            };
            linear(&(gate * linear(h, "mlp.up_proj.weight")).unwrap(), "mlp.down_proj.weight")
        };
        x = match family {
            Family::Qwen3 => {
                let x = (x + attention).unwrap();
                let h = rms_ref(&x, &p("post_attention_layernorm.weight"), family);
                (&x + mlp(&h)).unwrap()
            }
            Family::Gemma3 => {
                let x = (x + rms_ref(&attention, &p("post_attention_layernorm.weight"), family)).unwrap();
                let h = rms_ref(&x, &p("pre_feedforward_layernorm.weight"), family);
                (&x + rms_ref(&mlp(&h), &p("post_feedforward_layernorm.weight"), family)).unwrap()
            }
        };
    }
    rms_ref(&x, &get("norm.weight"), family)
}

/// Two rows of 7 tokens, the second with 3 padding tokens (id 0).
const IDS: [u32; 14] = [5, 9, 2, 17, 3, 11, 29, 4, 8, 21, 6, 0, 0, 0];
const MASK: [u32; 14] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0];

fn check(family: Family, attention: Attention, allowed: &dyn Fn(usize, usize, usize) -> bool) {
    let w = weights(family);
    let vb = VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu);
    let decoder = Decoder::load(vb, &config(family), family, attention, 16).unwrap();
    let out = decoder.forward(&IDS, &MASK, 2, 7).unwrap();
    assert_eq!(out.dims(), &[2, 7, HIDDEN]);
    for (row, len) in [(0, 7), (1, 4)] {
        let want = reference(&w, family, &IDS[row * 7..row * 7 + len], allowed).to_vec2::<f32>().unwrap();
        let got = out.get(row).unwrap().narrow(0, 0, len).unwrap().to_vec2::<f32>().unwrap();
        for (t, (g, r)) in got.iter().zip(&want).enumerate() {
            for (i, (a, b)) in g.iter().zip(r).enumerate() {
                assert!(
                    (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                    "{family:?} {attention:?} row {row} token {t} dim {i}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn qwen3_matches_transformers_causal_forward() {
    check(Family::Qwen3, Attention::Causal, &|_, q, k| k <= q);
}

#[test]
fn gemma3_matches_transformers_bidirectional_forward_with_its_window() {
    // Layer 0 is sliding: |q - k| < 3; layer 1 sees every token.
    check(Family::Gemma3, Attention::Bidirectional, &|layer, q, k| layer == 1 || q.abs_diff(k) < 3);
}

#[test]
fn gemma3_served_causal_keeps_the_window_behind_each_token() {
    check(Family::Gemma3, Attention::Causal, &|layer, q, k| k <= q && (layer == 1 || q - k < 3));
}

#[test]
fn the_rules_follow_layer_types_attention_and_the_rewritten_window() {
    let load = |family, attention, config: Config| {
        let vb = VarBuilder::from_tensors(weights(family), DType::F32, &Device::Cpu);
        Decoder::load(vb, &config, family, attention, 8).unwrap().rules()
    };
    let gemma = config(Family::Gemma3);
    assert_eq!(load(Family::Gemma3, Attention::Bidirectional, gemma.clone()), vec![KeyRule::Window(3), KeyRule::All]);
    let causal_config = Config { use_bidirectional_attention: Some(false), ..gemma.clone() };
    assert_eq!(load(Family::Gemma3, Attention::Causal, causal_config), vec![KeyRule::CausalWindow(4), KeyRule::Causal]);
    // Without layer_types, Gemma3's pattern: every 6th layer is full.
    let pattern = Config { layer_types: None, ..gemma };
    assert_eq!(pattern.layer_types(Family::Gemma3).unwrap(), vec![LayerType::Sliding, LayerType::Sliding]);
    assert_eq!(load(Family::Qwen3, Attention::Causal, config(Family::Qwen3)), vec![KeyRule::Causal; 2]);
}

#[test]
fn checkpoints_under_model_load_too() {
    let w: HashMap<String, Tensor> =
        weights(Family::Qwen3).into_iter().map(|(name, t)| (format!("model.{name}"), t)).collect();
    let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    assert!(Decoder::load(vb, &config(Family::Qwen3), Family::Qwen3, Attention::Causal, 8).is_ok());
}

#[test]
fn unsupported_configs_are_named() {
    let mut c = config(Family::Gemma3);
    c.attn_logit_softcapping = Some(50.0);
    let vb = VarBuilder::from_tensors(weights(Family::Gemma3), DType::F32, &Device::Cpu);
    let e = Decoder::load(vb.clone(), &c, Family::Gemma3, Attention::Bidirectional, 8).err().unwrap().to_string();
    assert!(e.contains("attn_logit_softcapping"), "{e}");
    let c = Config {
        rope_scaling: Some(serde_json::json!({"rope_type": "yarn", "factor": 4.0})),
        ..config(Family::Gemma3)
    };
    let e = Decoder::load(vb.clone(), &c, Family::Gemma3, Attention::Bidirectional, 8).err().unwrap().to_string();
    assert!(e.contains("rope_scaling \"yarn\""), "{e}");
    let c = Config { layer_types: Some(vec!["full_attention".into()]), ..config(Family::Gemma3) };
    let e = Decoder::load(vb, &c, Family::Gemma3, Attention::Bidirectional, 8).err().unwrap().to_string();
    assert!(e.contains("layer_types names 1 layers"), "{e}");
}

#[test]
fn sequences_past_the_rotary_tables_are_an_error() {
    let vb = VarBuilder::from_tensors(weights(Family::Qwen3), DType::F32, &Device::Cpu);
    let decoder = Decoder::load(vb, &config(Family::Qwen3), Family::Qwen3, Attention::Causal, 4).unwrap();
    let e = decoder.forward(&[1; 5], &[1; 5], 1, 5).unwrap_err().to_string();
    assert!(e.contains("5 tokens"), "{e}");
}
