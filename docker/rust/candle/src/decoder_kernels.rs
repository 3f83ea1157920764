//! The decoder's element-wise work (Qwen3, Gemma3), fused over plain slices like [`crate::kernels`]:
//! RMS norms, the head split with q/k norms and rotary embeddings, the softmax under each layer's
//! attention rule, and the gated MLP activation. Rows are spread over rayon's pool.

use crate::kernels::{fast_exp, gelu_tanh};
use rayon::prelude::*;

/// Rows handed to one rayon task at least.
const MIN_ROWS_PER_TASK: usize = 4;

/// `(x · 1/√(mean(x²) + eps)) · gain` row by row (rows of `gain.len()`), plus `residual` when
/// given. Qwen3's `RMSNorm` with `gain` its weight; Gemma3's with `gain` = 1 + weight.
pub fn rms_norm(x: &[f32], residual: Option<&[f32]>, gain: &[f32], eps: f32) -> Vec<f32> {
    let width = gain.len();
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(width).zip(x.par_chunks(width)).enumerate().with_min_len(MIN_ROWS_PER_TASK).for_each(
        |(row, (o, x))| {
            let inv = inverse_rms(x, eps);
            match residual {
                Some(r) => {
                    let r = &r[row * width..][..width];
                    for (((o, &x), &g), &r) in o.iter_mut().zip(x).zip(gain).zip(r) {
                        *o = r + x * inv * g;
                    }
                }
                None => {
                    for ((o, &x), &g) in o.iter_mut().zip(x).zip(gain) {
                        *o = x * inv * g;
                    }
                }
            }
        },
    );
    out
}

/// `1 / √(mean(x²) + eps)`, the sum spread over lanes so that it vectorises.
#[inline(always)]
fn inverse_rms(x: &[f32], eps: f32) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    let mean = (acc.iter().sum::<f32>() + tail) / x.len() as f32;
    1.0 / (mean + eps).sqrt()
}

/// Rotary tables: `cos` and `sin` of `position · inv_freq[i]`, `[positions, half]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotary {
    pub half: usize,
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

impl Rotary {
    /// The tables of transformers' default rotary embedding (with linear scaling by `factor`), in
    /// single precision as transformers computes them: `inv_freq = 1 / base^(2i / head_dim)` and
    /// `position · inv_freq` in f32, their cosine and sine correctly rounded.
    pub fn new(head_dim: usize, base: f64, factor: f64, positions: usize) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let exponent = (2 * i) as f32 / head_dim as f32;
                let inv = 1.0f32 / (base.powf(f64::from(exponent)) as f32);
                if factor == 1.0 {
                    inv
                } else {
                    inv / factor as f32
                }
            })
            .collect();
        let (mut cos, mut sin) = (Vec::with_capacity(positions * half), Vec::with_capacity(positions * half));
        for p in 0..positions {
            for &f in &inv_freq {
                let angle = f64::from(p as f32 * f);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Self { half, cos, sin }
    }

    /// Positions the tables cover.
    pub fn positions(&self) -> usize {
        self.cos.len() / self.half.max(1)
    }

    /// Rotates `x` (one head's `2·half` values) to position `pos`, as `x·cos + rotate_half(x)·sin`.
    #[inline(always)]
    fn apply(&self, x: &mut [f32], pos: usize) {
        let h = self.half;
        let (cos, sin) = (&self.cos[pos * h..][..h], &self.sin[pos * h..][..h]);
        let (lo, hi) = x.split_at_mut(h);
        for i in 0..h {
            let (a, b) = (lo[i], hi[i]);
            lo[i] = a * cos[i] - b * sin[i];
            hi[i] = b * cos[i] + a * sin[i];
        }
    }
}

/// The shape of one decoder attention: `heads` query heads share `kv_heads` key/value heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl DecoderShape {
    /// Values in one row of the fused QKV product: q | k | v.
    pub fn qkv_width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }

    /// Values of the q part of [`split_heads`]'s output; k and v follow, `kv_len` each.
    pub fn q_len(&self) -> usize {
        self.batch * self.heads * self.seq * self.head_dim
    }

    pub fn kv_len(&self) -> usize {
        self.batch * self.kv_heads * self.seq * self.head_dim
    }
}

/// What happens to q and k between the projection and the attention product.
pub struct HeadPrep<'a> {
    /// Added to the QKV product's rows (empty: no bias).
    pub bias: &'a [f32],
    /// Per-head RMS norm gains of q and k (`head_dim` each) and their epsilon.
    pub q_norm: Option<&'a [f32]>,
    pub k_norm: Option<&'a [f32]>,
    pub eps: f32,
    pub rotary: &'a Rotary,
    /// The attention scale, applied to q after the rotation.
    pub q_scale: f32,
}

/// Splits the fused QKV product (`[batch·seq, qkv_width]`) into q `[batch, heads, seq, head_dim]`,
/// then k and v `[batch, kv_heads, seq, head_dim]`, one after the other in the returned buffer;
/// q and k get their head norms, their rotation to the token's position (0, 1, … in each row), and
/// q the attention scale.
pub fn split_heads(qkv: &[f32], s: DecoderShape, prep: &HeadPrep<'_>) -> Vec<f32> {
    let d = s.head_dim;
    let width = s.qkv_width();
    let mut out = vec![0f32; s.q_len() + 2 * s.kv_len()];
    // One task per (part, batch, head) block of `seq × head_dim`.
    out.par_chunks_mut(s.seq * d).enumerate().for_each(|(block, o)| {
        let (part, b, head) = block_of(block, s);
        let col = match part {
            0 => head * d,
            1 => (s.heads + head) * d,
            _ => (s.heads + s.kv_heads + head) * d,
        };
        let (norm, scale) = match part {
            0 => (prep.q_norm, prep.q_scale),
            1 => (prep.k_norm, 1.0),
            _ => (None, 1.0),
        };
        for (t, o) in o.chunks_mut(d).enumerate() {
            o.copy_from_slice(&qkv[(b * s.seq + t) * width + col..][..d]);
            if !prep.bias.is_empty() {
                o.iter_mut().zip(&prep.bias[col..col + d]).for_each(|(o, &bb)| *o += bb);
            }
            if part == 2 {
                continue;
            }
            if let Some(gain) = norm {
                let inv = inverse_rms(o, prep.eps);
                o.iter_mut().zip(gain).for_each(|(o, &g)| *o = *o * inv * g);
            }
            prep.rotary.apply(o, t);
            if scale != 1.0 {
                o.iter_mut().for_each(|o| *o *= scale);
            }
        }
    });
    out
}

/// Which (part: 0 q, 1 k, 2 v; batch row; head) a block of [`split_heads`]' output holds.
fn block_of(block: usize, s: DecoderShape) -> (usize, usize, usize) {
    let q_blocks = s.batch * s.heads;
    let kv_blocks = s.batch * s.kv_heads;
    if block < q_blocks {
        (0, block / s.heads, block % s.heads)
    } else if block < q_blocks + kv_blocks {
        let j = block - q_blocks;
        (1, j / s.kv_heads, j % s.kv_heads)
    } else {
        let j = block - q_blocks - kv_blocks;
        (2, j / s.kv_heads, j % s.kv_heads)
    }
}

/// Which keys a query sees in one layer, besides the padding mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    /// Every key (bidirectional full attention).
    All,
    /// Keys at or before the query (causal).
    Causal,
    /// Keys less than `w` positions away on either side (bidirectional sliding window).
    Window(usize),
    /// Keys at or before the query and less than `w` positions before it (causal sliding window).
    CausalWindow(usize),
}

impl KeyRule {
    /// The key positions `[lo, hi)` query `t` may see, of `seq`.
    #[inline(always)]
    pub fn range(self, t: usize, seq: usize) -> (usize, usize) {
        match self {
            KeyRule::All => (0, seq),
            KeyRule::Causal => (0, t + 1),
            KeyRule::Window(w) => ((t + 1).saturating_sub(w), (t + w).min(seq)),
            KeyRule::CausalWindow(w) => ((t + 1).saturating_sub(w), t + 1),
        }
    }
}

/// Softmax over the last axis of scores `[batch, …, seq]` whose rows are queries `t = row mod seq`:
/// keys outside `rule`'s range for `t` or masked out (`mask[b·seq + j] == 0`) get probability 0, as
/// adding the dtype's minimum does in torch. A row with no key left (a padding query far from every
/// real token) is all zeros: its state is never read by a real token.
pub fn masked_softmax(scores: &[f32], mask: &[u32], batch: usize, seq: usize, rule: KeyRule) -> Vec<f32> {
    let n = seq;
    // Rows of queries per sequence: heads (or head groups) × seq.
    let rows_per_batch = scores.len() / n.max(1) / batch.max(1);
    // The length of each sequence's real prefix when its mask is one (right padding), else None.
    let prefix: Vec<Option<usize>> = mask
        .chunks(n.max(1))
        .map(|keep| {
            let len = keep.iter().take_while(|&&m| m != 0).count();
            keep[len..].iter().all(|&m| m == 0).then_some(len)
        })
        .collect();
    let mut out = vec![0f32; scores.len()];
    out.par_chunks_mut(n).zip(scores.par_chunks(n)).enumerate().with_min_len(MIN_ROWS_PER_TASK).for_each(
        |(row, (o, x))| {
            let b = row / rows_per_batch.max(1);
            let (lo, hi) = rule.range(row % n, n);
            match prefix[b] {
                Some(len) => {
                    let hi = hi.min(len);
                    if lo < hi {
                        softmax_into(&mut o[lo..hi], &x[lo..hi]);
                    }
                }
                None => {
                    let keep = &mask[b * n..][..n];
                    let live = |j: usize| keep[j] != 0;
                    let max = (lo..hi).filter(|&j| live(j)).map(|j| x[j]).fold(f32::NEG_INFINITY, f32::max);
                    if max == f32::NEG_INFINITY {
                        return;
                    }
                    let mut sum = 0f32;
                    for j in (lo..hi).filter(|&j| live(j)) {
                        o[j] = fast_exp(x[j] - max);
                        sum += o[j];
                    }
                    let inv = 1.0 / sum;
                    o[lo..hi].iter_mut().for_each(|o| *o *= inv);
                }
            }
        },
    );
    out
}

/// `o = exp(x - max) / Σ exp(x - max)`.
#[inline(always)]
fn softmax_into(o: &mut [f32], x: &[f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for (o, &x) in o.iter_mut().zip(x) {
        *o = fast_exp(x - max);
        sum += *o;
    }
    let inv = 1.0 / sum;
    o.iter_mut().for_each(|o| *o *= inv);
}

/// The gated MLP's activation: `act(gate) · up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// SiLU, `x · σ(x)` (Qwen3's "silu").
    Silu,
    /// GELU, tanh form (Gemma3's "gelu_pytorch_tanh").
    GeluTanh,
}

#[inline(always)]
fn silu(x: f32) -> f32 {
    x / (1.0 + fast_exp(-x))
}

/// Rows of `[gate (inter) | up (inter)]` (the fused gate and up products) → `act(gate) · up`, `[rows, inter]`.
pub fn gated(x: &[f32], inter: usize, gate: Gate) -> Vec<f32> {
    let mut out = vec![0f32; x.len() / 2];
    out.par_chunks_mut(inter).zip(x.par_chunks(2 * inter)).with_min_len(MIN_ROWS_PER_TASK).for_each(|(o, x)| {
        let (g, u) = x.split_at(inter);
        match gate {
            Gate::Silu => o.iter_mut().zip(g).zip(u).for_each(|((o, &g), &u)| *o = silu(g) * u),
            Gate::GeluTanh => o.iter_mut().zip(g).zip(u).for_each(|((o, &g), &u)| *o = gelu_tanh(g) * u),
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::close;

    #[test]
    fn rms_norm_scales_each_row_to_unit_rms_times_the_gain() {
        let x = [3f32, 4., 0., 0., 1., 1., 1., 1.];
        let gain = [1f32, 2., 1., 1.];
        // Row 0: mean of squares 25/4, rms 2.5.
        let out = rms_norm(&x, None, &gain, 0.0);
        close(&out, &[1.2, 3.2, 0., 0., 1., 2., 1., 1.], 1e-6);
        let residual = [1f32; 8];
        let out = rms_norm(&x, Some(&residual), &gain, 0.0);
        close(&out, &[2.2, 4.2, 1., 1., 2., 3., 2., 2.], 1e-6);
        let eps = rms_norm(&[1f32, 1.], None, &[1., 1.], 3.0);
        close(&eps, &[0.5, 0.5], 1e-6);
    }

    #[test]
    fn rotary_tables_follow_transformers_default_rope() {
        let r = Rotary::new(4, 10_000.0, 1.0, 3);
        assert_eq!((r.half, r.positions()), (2, 3));
        // inv_freq = [1, 1/100]; position 2: angles 2 and 0.02.
        close(&r.cos[4..6], &[2f32.cos(), 0.02f32.cos()], 1e-7);
        close(&r.sin[4..6], &[2f32.sin(), 0.02f32.sin()], 1e-7);
        let scaled = Rotary::new(4, 10_000.0, 8.0, 3);
        close(&scaled.sin[2..4], &[(1f32 / 8.0).sin(), (0.01f32 / 8.0).sin()], 1e-7);
        // rotate_half: [a, b | c, d] → [a·cos - c·sin, b·cos - d·sin | c·cos + a·sin, d·cos + b·sin]
        let mut x = [1f32, 2., 3., 4.];
        r.apply(&mut x, 1);
        let (c0, s0, c1, s1) = (1f32.cos(), 1f32.sin(), 0.01f32.cos(), 0.01f32.sin());
        close(&x, &[c0 - 3. * s0, 2. * c1 - 4. * s1, 3. * c0 + s0, 4. * c1 + 2. * s1], 1e-6);
    }

    #[test]
    fn heads_split_by_part_with_norm_rotation_and_scale() {
        let s = DecoderShape { batch: 2, seq: 3, heads: 2, kv_heads: 1, head_dim: 2 };
        let width = s.qkv_width();
        assert_eq!(width, 8);
        let qkv: Vec<f32> = (0..s.batch * s.seq * width).map(|i| (i % 7) as f32 + 1.0).collect();
        // Position 0 does not rotate; a zero-frequency-free table still moves later positions.
        let rotary = Rotary::new(2, 10_000.0, 1.0, 3);
        let prep = HeadPrep { bias: &[], q_norm: None, k_norm: None, eps: 0.0, rotary: &rotary, q_scale: 0.5 };
        let out = split_heads(&qkv, s, &prep);
        assert_eq!(out.len(), s.q_len() + 2 * s.kv_len());
        for b in 0..s.batch {
            for t in 0..s.seq {
                let row = &qkv[(b * s.seq + t) * width..][..width];
                let rotate = |x: &[f32]| {
                    let mut x = x.to_vec();
                    rotary.apply(&mut x, t);
                    x
                };
                for head in 0..s.heads {
                    let want: Vec<f32> = rotate(&row[head * 2..][..2]).iter().map(|v| v * 0.5).collect();
                    close(&out[((b * s.heads + head) * s.seq + t) * 2..][..2], &want, 1e-6);
                }
                let k = &out[s.q_len() + (b * s.seq + t) * 2..][..2];
                close(k, &rotate(&row[4..6]), 1e-6);
                let v = &out[s.q_len() + s.kv_len() + (b * s.seq + t) * 2..][..2];
                close(v, &row[6..8], 0.0);
            }
        }
        // Head norms come before the rotation; position 0 leaves the normed values as they are.
        let (gq, gk) = ([1f32, 2.], [3f32, 1.]);
        let prep =
            HeadPrep { bias: &[], q_norm: Some(&gq), k_norm: Some(&gk), eps: 0.0, rotary: &rotary, q_scale: 1.0 };
        let out = split_heads(&qkv, s, &prep);
        let row = &qkv[..width];
        let rms = |a: f32, b: f32| ((a * a + b * b) / 2.0).sqrt();
        let r = rms(row[0], row[1]);
        close(&out[..2], &[row[0] / r, 2. * row[1] / r], 1e-6);
        let r = rms(row[4], row[5]);
        close(&out[s.q_len()..][..2], &[3. * row[4] / r, row[5] / r], 1e-6);
    }

    #[test]
    fn key_rules_give_the_window_around_each_query() {
        assert_eq!(KeyRule::All.range(2, 6), (0, 6));
        assert_eq!(KeyRule::Causal.range(2, 6), (0, 3));
        // |t - j| < 2: j in {1, 2, 3} for t = 2.
        assert_eq!(KeyRule::Window(2).range(2, 6), (1, 4));
        assert_eq!(KeyRule::Window(2).range(0, 6), (0, 2));
        assert_eq!(KeyRule::Window(2).range(5, 6), (4, 6));
        assert_eq!(KeyRule::CausalWindow(2).range(2, 6), (1, 3));
        assert_eq!(KeyRule::CausalWindow(9).range(2, 6), (0, 3));
    }

    /// Softmax over `keep`'s keys, computed plainly.
    fn reference(x: &[f32], keep: &[bool]) -> Vec<f32> {
        let max = x.iter().zip(keep).filter(|(_, &k)| k).map(|(&v, _)| v).fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            return vec![0.0; x.len()];
        }
        let e: Vec<f32> = x.iter().zip(keep).map(|(&v, &k)| if k { (v - max).exp() } else { 0.0 }).collect();
        let z: f32 = e.iter().sum();
        e.iter().map(|v| v / z).collect()
    }

    #[test]
    fn masked_softmax_keeps_each_rules_keys_and_the_padding_mask() {
        let (batch, seq, groups) = (2, 5, 2);
        let scores: Vec<f32> = (0..batch * groups * seq * seq).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        // Row 1 has two padding tokens; a mask with a hole takes the general path.
        for mask in [[1u32, 1, 1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 0, 1, 0, 0]] {
            for rule in [KeyRule::All, KeyRule::Causal, KeyRule::Window(2), KeyRule::CausalWindow(2)] {
                let out = masked_softmax(&scores, &mask, batch, seq, rule);
                for (row, (o, x)) in out.chunks(seq).zip(scores.chunks(seq)).enumerate() {
                    let (b, t) = (row / (groups * seq), row % seq);
                    let (lo, hi) = rule.range(t, seq);
                    let keep: Vec<bool> = (0..seq).map(|j| mask[b * seq + j] != 0 && lo <= j && j < hi).collect();
                    close(o, &reference(x, &keep), 1e-6);
                }
            }
        }
        // A padding query whose window holds no real key is all zeros.
        let out = masked_softmax(&[1f32; 16], &[1, 0, 0, 0], 1, 4, KeyRule::Window(2));
        assert_eq!(&out[12..], &[0.0; 4]);
    }

    #[test]
    fn gated_activations_match_their_definitions() {
        let x: Vec<f32> = (-6..6).map(|i| i as f32 * 0.7).collect();
        let (g, u) = x.split_at(6);
        let out = gated(&x, 6, Gate::Silu);
        let want: Vec<f32> = g.iter().zip(u).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u).collect();
        close(&out, &want, 1e-6);
        let out = gated(&x, 6, Gate::GeluTanh);
        let want: Vec<f32> = g
            .iter()
            .zip(u)
            .map(|(&g, &u)| {
                let g = g as f64;
                (0.5 * g * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (g + 0.044715 * g * g * g)).tanh())) as f32 * u
            })
            .collect();
        close(&out, &want, 1e-6);
    }
}
