//! The encoder's element-wise work, fused and written over plain slices so that each pass over the
//! activations reads and writes them once, rows spread over rayon's pool. Candle runs the matrix
//! products; these run what Candle would otherwise do as a chain of single-threaded ops (bias add,
//! residual add, layer norm, GELU with a scalar `erf`, mask add, a composed softmax, head copies).
//!
//! `exp` and `erf` are polynomial approximations that the compiler vectorises (AVX2 in the images);
//! the tests hold them to the standard library's `exp` and Candle's `erf`.

use rayon::prelude::*;

/// Rows handed to one rayon task at least: small rows (hidden size 384) are not worth a task each.
const MIN_ROWS_PER_TASK: usize = 4;

/// `exp(x)` in single precision: Cephes' `expf` (range reduction by ln 2, degree-6 polynomial),
/// relative error about 2e-7; under-/overflows like `exp` beyond ±87.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.336_55, 88.376_26);
    let n = x.mul_add(LOG2E, 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 5.000_000_1e-1);
    let y = p.mul_add(r * r, r) + 1.0;
    // 2^n by building the exponent bits; n is within [-126, 127] after the clamp.
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `erf(x)` in single precision: the rational approximation Eigen and XLA use for float
/// (odd degree-13 numerator over even degree-8 denominator on [-4, 4], ±1 beyond).
#[inline(always)]
pub fn fast_erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10f32;
    p = p.mul_add(x2, 2.770_681_4e-8);
    p = p.mul_add(x2, -2.101_024e-6);
    p = p.mul_add(x2, -5.692_506_4e-5);
    p = p.mul_add(x2, -7.349_906_3e-4);
    p = p.mul_add(x2, -2.954_6e-3);
    p = p.mul_add(x2, -1.609_603_3e-2);
    let mut q = -1.456_607_2e-5f32;
    q = q.mul_add(x2, -2.133_740_6e-4);
    q = q.mul_add(x2, -1.682_827e-3);
    q = q.mul_add(x2, -7.373_329e-3);
    q = q.mul_add(x2, -1.426_474e-2);
    x * p / q
}

/// The activation after the intermediate dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x·Φ(x)` with the exact `erf` form (Hugging Face's "gelu").
    Gelu,
    /// The tanh form ("gelu_new", "gelu_pytorch_tanh", "gelu_fast").
    GeluTanh,
    Relu,
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + fast_erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU, tanh form: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    // tanh(u) = 1 - 2 / (exp(2u) + 1)
    let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
    0.5 * x * (2.0 - 2.0 / (fast_exp(2.0 * u) + 1.0))
}

/// `out[r] = act(x[r] + bias)` for each row `r` of width `bias.len()`.
pub fn bias_activation(x: &[f32], bias: &[f32], act: Activation) -> Vec<f32> {
    match act {
        Activation::Gelu => map_rows(x, bias, gelu),
        Activation::GeluTanh => map_rows(x, bias, gelu_tanh),
        Activation::Relu => map_rows(x, bias, |v| v.max(0.0)),
    }
}

/// `f(x + bias)` row by row; `f` is inlined into the loop, which the compiler vectorises.
fn map_rows(x: &[f32], bias: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let width = bias.len();
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(width).zip(x.par_chunks(width)).with_min_len(MIN_ROWS_PER_TASK).for_each(|(o, x)| {
        for ((o, &x), &b) in o.iter_mut().zip(x).zip(bias) {
            *o = f(x + b);
        }
    });
    out
}

/// Layer norm of `x + bias + residual`, row by row, with `gamma`, `beta` and `eps` as torch's
/// `LayerNorm` (biased variance). `bias` may be empty (no bias).
pub fn add_layer_norm(x: &[f32], residual: &[f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let width = gamma.len();
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(width)
        .zip(x.par_chunks(width).zip(residual.par_chunks(width)))
        .with_min_len(MIN_ROWS_PER_TASK)
        .for_each(|(o, (x, r))| {
            if bias.is_empty() {
                for ((o, &x), &r) in o.iter_mut().zip(x).zip(r) {
                    *o = x + r;
                }
            } else {
                for (((o, &x), &r), &b) in o.iter_mut().zip(x).zip(r).zip(bias) {
                    *o = x + b + r;
                }
            }
            let mean = lane_sum(o, |v| v) / width as f32;
            let var = lane_sum(o, |v| (v - mean) * (v - mean)) / width as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((o, &g), &b) in o.iter_mut().zip(gamma).zip(beta) {
                *o = (*o - mean) * inv * g + b;
            }
        });
    out
}

/// The shape of one attention: `batch` sequences of `seq` tokens, `heads` heads of `head_dim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    pub fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// Adds the fused QKV bias to `qkv` (`[batch·seq, 3·hidden]`, q | k | v along a row) and lays the
/// result out as `[3, batch, heads, seq, head_dim]`, ready for per-head matrix products.
pub fn split_heads(qkv: &[f32], bias: &[f32], s: AttentionShape) -> Vec<f32> {
    let (hidden, d) = (s.hidden(), s.head_dim);
    let mut out = vec![0f32; qkv.len()];
    // One task per (part, batch, head) block of `seq × head_dim`.
    out.par_chunks_mut(s.seq * d).enumerate().for_each(|(block, o)| {
        let head = block % s.heads;
        let b = (block / s.heads) % s.batch;
        let part = block / (s.heads * s.batch);
        let col = part * hidden + head * d;
        let bias = &bias[col..col + d];
        for (t, o) in o.chunks_mut(d).enumerate() {
            let row = &qkv[(b * s.seq + t) * 3 * hidden + col..][..d];
            for ((o, &x), &bb) in o.iter_mut().zip(row).zip(bias) {
                *o = x + bb;
            }
        }
    });
    out
}

/// The inverse layout: `[batch, heads, seq, head_dim]` back to rows `[batch·seq, hidden]`.
pub fn merge_heads(ctx: &[f32], s: AttentionShape) -> Vec<f32> {
    let (hidden, d) = (s.hidden(), s.head_dim);
    let mut out = vec![0f32; ctx.len()];
    out.par_chunks_mut(hidden).enumerate().with_min_len(MIN_ROWS_PER_TASK).for_each(|(row, o)| {
        let (b, t) = (row / s.seq, row % s.seq);
        for (head, o) in o.chunks_mut(d).enumerate() {
            o.copy_from_slice(&ctx[((b * s.heads + head) * s.seq + t) * d..][..d]);
        }
    });
    out
}

/// Accumulators a reduction is spread over, so that it vectorises (one AVX-512 register, two AVX2).
const LANES: usize = 16;

/// `Σ f(x)`, summed lane-wise then across lanes.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `max x`, lane-wise then across lanes.
#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

/// `o = exp(x - max) / Σ exp(x - max)`.
#[inline(always)]
fn softmax_into(o: &mut [f32], x: &[f32]) {
    let max = lane_max(x);
    for (o, &x) in o.iter_mut().zip(x) {
        *o = fast_exp(x - max);
    }
    let inv = 1.0 / lane_sum(o, |v| v);
    for o in o.iter_mut() {
        *o *= inv;
    }
}

/// Softmax over the last axis of attention scores `[batch, heads, seq, seq]`, keys where
/// `mask[b·seq + j] == 0` excluded (probability 0, as adding the dtype's minimum does in torch).
/// A row whose keys are all masked (never: every sequence has its special tokens) is a plain softmax.
pub fn masked_softmax(scores: &[f32], mask: &[u32], s: AttentionShape) -> Vec<f32> {
    let n = s.seq;
    // Per sequence: the length of its real prefix when the mask is one (right padding, as the
    // server pads), else None and the general path.
    let prefix: Vec<Option<usize>> = mask
        .chunks(n.max(1))
        .map(|keep| {
            let len = keep.iter().take_while(|&&m| m != 0).count();
            keep[len..].iter().all(|&m| m == 0).then_some(if len == 0 { n } else { len })
        })
        .collect();
    let mut out = vec![0f32; scores.len()];
    out.par_chunks_mut(n).zip(scores.par_chunks(n)).enumerate().with_min_len(MIN_ROWS_PER_TASK).for_each(
        |(row, (o, x))| {
            let b = row / (s.heads * n);
            match prefix[b] {
                Some(len) => softmax_into(&mut o[..len], &x[..len]),
                None => {
                    let keep = &mask[b * n..][..n];
                    let live: Vec<f32> = keep.iter().zip(x).filter(|(&m, _)| m != 0).map(|(_, &v)| v).collect();
                    let max = lane_max(&live);
                    let mut sum = 0f32;
                    for j in 0..n {
                        o[j] = if keep[j] != 0 { fast_exp(x[j] - max) } else { 0.0 };
                        sum += o[j];
                    }
                    let inv = 1.0 / sum;
                    o.iter_mut().for_each(|o| *o *= inv);
                }
            }
        },
    );
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Element-wise closeness, relative to the expected value; the kernel tests of both models use it.
    pub(crate) fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
        }
    }

    #[test]
    fn fast_exp_matches_std() {
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let (got, want) = (fast_exp(x), x.exp());
            assert!((got - want).abs() <= 4e-7 * want, "exp({x}) = {got}, want {want}");
        }
        assert_eq!(fast_exp(-1000.0), fast_exp(-87.336_55));
        assert!(fast_exp(-1000.0) < 1e-37);
    }

    #[test]
    fn fast_erf_matches_candle() {
        for i in -600..=600 {
            let x = i as f32 * 0.01;
            let want = candle_core::cpu::erf::erf(x as f64) as f32;
            assert!((fast_erf(x) - want).abs() <= 3e-7, "erf({x}) = {}, want {want}", fast_erf(x));
        }
        assert_eq!(fast_erf(10.0), fast_erf(4.0));
        assert!((fast_erf(10.0) - 1.0).abs() <= 3e-7);
    }

    #[test]
    fn activations_match_their_definitions() {
        let xs: Vec<f32> = (-50..=50).map(|i| i as f32 * 0.13).collect();
        let bias = vec![0.25f32; xs.len()];
        let erf = |x: f64| candle_core::cpu::erf::erf(x);
        let gelu: Vec<f32> =
            xs.iter().map(|&x| x as f64 + 0.25).map(|v| (0.5 * v * (1.0 + erf(v / 2f64.sqrt()))) as f32).collect();
        close(&bias_activation(&xs, &bias, Activation::Gelu), &gelu, 1e-6);
        let tanh: Vec<f32> = xs
            .iter()
            .map(|&x| x as f64 + 0.25)
            .map(|v| {
                (0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh())) as f32
            })
            .collect();
        close(&bias_activation(&xs, &bias, Activation::GeluTanh), &tanh, 1e-6);
        let relu: Vec<f32> = xs.iter().map(|&x| (x + 0.25).max(0.0)).collect();
        close(&bias_activation(&xs, &bias, Activation::Relu), &relu, 0.0);
    }

    #[test]
    fn add_layer_norm_is_torchs_layer_norm_of_the_sum() {
        let x = [1f32, 2., 3., 4., -1., 0., 1., 2.];
        let r = [0.5f32, 0.5, 0.5, 0.5, 1., 1., 1., 1.];
        let bias = [0f32, 1., 0., 1.];
        let gamma = [1f32, 2., 1., 1.];
        let beta = [0f32, 0., 0.5, 0.];
        let out = add_layer_norm(&x, &r, &bias, &gamma, &beta, 1e-5);
        // Row 0 sums to [1.5, 3.5, 3.5, 5.5]: mean 3.5, variance 2.
        let inv = 1.0 / (2f32 + 1e-5).sqrt();
        close(&out[..4], &[-2. * inv, 0., 0.5, 2. * inv], 1e-6);
        // Row 1, no bias: [0, 1, 2, 3]: mean 1.5, variance 1.25.
        let out = add_layer_norm(&x, &r, &[], &gamma, &beta, 1e-5);
        let inv = 1.0 / (1.25f32 + 1e-5).sqrt();
        close(&out[4..], &[-1.5 * inv, -1.0 * inv, 0.5 * inv + 0.5, 1.5 * inv], 1e-6);
    }

    #[test]
    fn heads_split_and_merge_back() {
        let s = AttentionShape { batch: 2, seq: 3, heads: 2, head_dim: 2 };
        let h = s.hidden();
        let qkv: Vec<f32> = (0..s.batch * s.seq * 3 * h).map(|i| i as f32).collect();
        let bias: Vec<f32> = (0..3 * h).map(|i| 1000.0 * i as f32).collect();
        let split = split_heads(&qkv, &bias, s);
        // [part, b, head, t, i] = qkv[(b·seq + t), part·h + head·d + i] + bias[part·h + head·d + i]
        for part in 0..3 {
            for b in 0..s.batch {
                for head in 0..s.heads {
                    for t in 0..s.seq {
                        for i in 0..s.head_dim {
                            let col = part * h + head * s.head_dim + i;
                            let want = qkv[(b * s.seq + t) * 3 * h + col] + bias[col];
                            let at = (((part * s.batch + b) * s.heads + head) * s.seq + t) * s.head_dim + i;
                            assert_eq!(split[at], want);
                        }
                    }
                }
            }
        }
        // Merging the v part gives back v's columns of each row, bias included.
        let v = &split[2 * s.batch * s.heads * s.seq * s.head_dim..];
        let merged = merge_heads(v, s);
        for row in 0..s.batch * s.seq {
            for c in 0..h {
                assert_eq!(merged[row * h + c], qkv[row * 3 * h + 2 * h + c] + bias[2 * h + c]);
            }
        }
    }

    #[test]
    fn masked_softmax_ignores_padding_keys() {
        let s = AttentionShape { batch: 2, seq: 3, heads: 1, head_dim: 1 };
        let scores = [1f32, 2., 3., 0., 0., 0., 5., 5., 5., 1., 2., 100., 0., 0., 100., 3., 3., 100.];
        let mask = [1u32, 1, 1, 1, 1, 0];
        let out = masked_softmax(&scores, &mask, s);
        let e = [1f32.exp(), 2f32.exp(), 3f32.exp()];
        let z: f32 = e.iter().sum();
        close(&out[..3], &[e[0] / z, e[1] / z, e[2] / z], 1e-6);
        close(&out[3..9], &[1. / 3., 1. / 3., 1. / 3., 1. / 3., 1. / 3., 1. / 3.], 1e-6);
        let z = 1f32.exp() + 2f32.exp();
        close(&out[9..12], &[1f32.exp() / z, 2f32.exp() / z, 0.], 1e-6);
        close(&out[12..], &[0.5, 0.5, 0., 0.5, 0.5, 0.], 1e-6);
        // A mask with a hole (not right padding) takes the general path.
        let out =
            masked_softmax(&[1f32, 50., 2.], &[1, 0, 1], AttentionShape { batch: 1, seq: 3, heads: 1, head_dim: 1 });
        let z = 1f32.exp() + 2f32.exp();
        close(&out, &[1f32.exp() / z, 0., 2f32.exp() / z], 1e-6);
        // Rows longer than the lanes, with a tail.
        let x: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
        let mut mask = vec![1u32; 37];
        mask[30..].fill(0);
        let out = masked_softmax(&x, &mask, AttentionShape { batch: 1, seq: 37, heads: 1, head_dim: 1 });
        let z: f32 = x[..30].iter().map(|v| v.exp()).sum();
        let want: Vec<f32> = (0..37).map(|j| if j < 30 { x[j].exp() / z } else { 0. }).collect();
        close(&out, &want, 1e-6);
        // All keys masked: a plain softmax over them all.
        let out =
            masked_softmax(&[1f32, 2., 3.], &[0, 0, 0], AttentionShape { batch: 1, seq: 3, heads: 1, head_dim: 1 });
        let e = [1f32.exp(), 2f32.exp(), 3f32.exp()];
        let z: f32 = e.iter().sum();
        close(&out, &[e[0] / z, e[1] / z, e[2] / z], 1e-6);
    }
}
