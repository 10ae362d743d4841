//! Multi-head self-attention from a fused q|k|v projection, for the encoders (CLIP, BLIP's
//! vision tower, BERT): the CPU kernel when nothing is masked, candle's ops otherwise (a
//! causal mask, a batch, another device).

use candle_core::Tensor;

use crate::ml::kernels::cpu_attention::attend;

/// qkv (b, n, 3·h) = [q | k | v] per token → context (b, n, h), heads side by side.
/// `mask` (n, n) is added to the scores (−∞ hides a key).
pub fn self_attention(
    qkv: &Tensor,
    heads: usize,
    mask: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let (b, n, h3) = qkv.dims3()?;
    let h = h3 / 3;
    let hd = h / heads;
    let scale = (hd as f64).powf(-0.5);
    if mask.is_none() {
        if let Some(ctx) = attend(qkv, heads, scale)? {
            return Ok(ctx);
        }
    }
    let split = |i: usize| {
        qkv.narrow(2, i * h, h)?
            .reshape((b, n, heads, hd))?
            .transpose(1, 2)?
            .contiguous()
    };
    let (q, k, v) = ((split(0)? * scale)?, split(1)?, split(2)?);
    let mut scores = q.matmul(&k.t()?)?;
    if let Some(m) = mask {
        scores = scores.broadcast_add(m)?;
    }
    candle_nn::ops::softmax_last_dim(&scores)?
        .matmul(&v)?
        .transpose(1, 2)?
        .reshape((b, n, h))
}
