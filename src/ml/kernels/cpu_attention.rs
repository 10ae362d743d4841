//! Unmasked multi-head self-attention for the vision transformers on the CPU, straight
//! from the fused projection's output: qkv (n, 3·h) = [q | k | v] per token, each split
//! into heads of hd = h / heads → context (n, h), heads side by side.
//!
//! Why not candle's ops: they permute q, k and v into contiguous per-head copies and run
//! both products through a GEMM that packs its operands on every call with an AVX2
//! kernel. Here each head (one task per head) packs its keys (times the scale) and values
//! once and runs both products through `packed_gemm`, reading q in place; softmax's
//! exponentials go a vector at a time (the scalar `exp` was 5 % of a BLIP-large caption).

use candle_core::Tensor;
use rayon::prelude::*;

use crate::ml::kernels::decode_attention::exp_weights;
use crate::ml::kernels::isa;
use crate::ml::kernels::packed_gemm::PackedF32;
use crate::ml::nn::linear::with_f32;

/// The context (1, n, h) for a CPU qkv tensor (1, n, 3·h); None for anything else (a
/// batch, another device), which the caller runs through candle's ops instead.
pub fn attend(qkv: &Tensor, heads: usize, scale: f64) -> candle_core::Result<Option<Tensor>> {
    let (b, n, h3) = qkv.dims3()?;
    if b != 1 || !qkv.device().is_cpu() {
        return Ok(None);
    }
    let hd = h3 / 3 / heads;
    let ctx = with_f32(qkv, |flat| self_attention(flat, n, heads, hd, scale as f32))?;
    Tensor::from_vec(ctx, (b, n, h3 / 3), qkv.device())?
        .to_dtype(qkv.dtype())
        .map(Some)
}

/// softmax(q·kᵀ · scale) · v for every head.
pub fn self_attention(qkv: &[f32], n: usize, heads: usize, hd: usize, scale: f32) -> Vec<f32> {
    let h = heads * hd;
    assert_eq!(qkv.len(), n * 3 * h, "qkv is not (n, 3·heads·hd)");
    let isa = isa::active();
    let per_head: Vec<Vec<f32>> = (0..heads)
        .into_par_iter()
        .map(|head| {
            let at = |part: usize| &qkv[part * h + head * hd..];
            let k = at(1);
            let keys = PackedF32::gather(n, hd, |j, d| k[j * 3 * h + d] * scale);
            let mut scores = vec![0f32; n * n];
            keys.matmul_t_into(at(0), 3 * h, n, &mut scores, n);
            for row in scores.chunks_exact_mut(n) {
                let inv = 1.0 / exp_weights(isa, row);
                row.iter_mut().for_each(|v| *v *= inv);
            }
            let values = PackedF32::pack_cols(at(2), 3 * h, n, hd);
            let mut ctx = vec![0f32; n * hd];
            values.matmul_t_into(&scores, n, n, &mut ctx, hd);
            ctx
        })
        .collect();
    let mut out = vec![0f32; n * h];
    for (head, ctx) in per_head.iter().enumerate() {
        for (row, src) in out.chunks_exact_mut(h).zip(ctx.chunks_exact(hd)) {
            row[head * hd..(head + 1) * hd].copy_from_slice(src);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_attention_written_out() {
        let (n, heads, hd) = (7, 3, 5);
        let h = heads * hd;
        let qkv: Vec<f32> = (0..n * 3 * h)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        let scale = 0.4;
        let got = self_attention(&qkv, n, heads, hd, scale);
        for head in 0..heads {
            let get = |t: usize, part: usize, d: usize| qkv[t * 3 * h + part * h + head * hd + d];
            for t in 0..n {
                let s: Vec<f64> = (0..n)
                    .map(|u| {
                        (0..hd)
                            .map(|d| (get(t, 0, d) * get(u, 1, d)) as f64)
                            .sum::<f64>()
                    })
                    .map(|x| x * scale as f64)
                    .collect();
                let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..hd {
                    let want: f64 = (0..n).map(|u| e[u] / z * get(u, 2, d) as f64).sum();
                    let have = got[t * h + head * hd + d] as f64;
                    assert!((have - want).abs() < 1e-5, "head {head} token {t} dim {d}");
                }
            }
        }
    }
}
