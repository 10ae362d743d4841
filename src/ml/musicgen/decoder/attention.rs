//! The decoder's attention: self-attention over the song so far (q, k and v in one
//! product) and cross-attention over the text. `attend` stops before the output
//! projection, so a batched pass can attend song by song (each over its own cache) and
//! then project every row at once.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::ml::kernels::decode_attention;
use crate::ml::nn::device::Precision;
use crate::ml::nn::linear::Linear;

/// What self- and cross-attention share: heads, the output projection, `attend`.
pub(super) struct Attention {
    pub(super) out: Linear,
    heads: usize,
    head_dim: usize,
}

/// Self-attention: q, k and v of the same input in one product.
pub(super) struct SelfAttention {
    qkv: Linear,
    pub(super) attn: Attention,
}

/// Cross-attention: q every step; k and v over the text, once per song (`start`).
pub(super) struct CrossAttention {
    pub(super) q: Linear,
    k: Linear,
    v: Linear,
    pub(super) attn: Attention,
}

impl SelfAttention {
    pub(super) fn load(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        p: Precision,
    ) -> candle_core::Result<Self> {
        let parts = [vb.pp("q_proj"), vb.pp("k_proj"), vb.pp("v_proj")];
        Ok(Self {
            qkv: Linear::stacked(&parts, dim, dim, p)?,
            attn: Attention::load(vb, dim, heads, p)?,
        })
    }

    /// Queries, keys and values (B, T, D) of `x`, from one product.
    pub(super) fn qkv(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let d = self.attn.heads * self.attn.head_dim;
        let y = self.qkv.forward(x)?;
        let part = |i: usize| y.narrow(2, i * d, d);
        Ok((part(0)?, part(1)?, part(2)?))
    }

    /// Bytes of weights a step reads here.
    pub(super) fn weight_bytes(&self) -> usize {
        self.qkv.weight_bytes() + self.attn.out.weight_bytes()
    }
}

impl CrossAttention {
    pub(super) fn load(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        p: Precision,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            q: Linear::load_as(vb.pp("q_proj"), dim, dim, false, p)?,
            k: Linear::load_as(vb.pp("k_proj"), dim, dim, false, p)?,
            v: Linear::load_as(vb.pp("v_proj"), dim, dim, false, p)?,
            attn: Attention::load(vb, dim, heads, p)?,
        })
    }

    /// Keys and values (B, H, T, Dh) of the text states `x`.
    pub(super) fn project_kv(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((
            self.attn.split_heads(&self.k.forward(x)?)?,
            self.attn.split_heads(&self.v.forward(x)?)?,
        ))
    }

    /// Bytes of weights a step reads here (k and v are made once per song).
    pub(super) fn weight_bytes(&self) -> usize {
        self.q.weight_bytes() + self.attn.out.weight_bytes()
    }
}

impl Attention {
    fn load(vb: VarBuilder, dim: usize, heads: usize, p: Precision) -> candle_core::Result<Self> {
        Ok(Self {
            out: Linear::load_as(vb.pp("out_proj"), dim, dim, false, p)?,
            heads,
            head_dim: dim / heads,
        })
    }

    /// What the scores are scaled by: 1/√Dh.
    pub(super) fn scale(&self) -> f32 {
        (self.head_dim as f32).powf(-0.5)
    }

    /// (B, T, D) → (B, H, T, Dh)
    pub(super) fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        x.reshape((b, t, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Scaled dot-product attention of queries `q` (B, T, D) over keys `kt` (B, H, Dh, S,
    /// transposed) and values `v` (B, H, S, Dh), with an additive mask: (B, T, D), before
    /// the output projection.
    pub(super) fn attend(
        &self,
        q: &Tensor,
        kt: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (b, t, d) = q.dims3()?;
        let scale = self.scale();
        if t == 1 {
            if let Some(y) = decode_attention::attend_one(q, kt, v, mask, scale)? {
                return Ok(y);
            }
        }
        // candle's path needs keys and values in the queries' dtype (the cache may be f16).
        let (kt, v) = (&kt.to_dtype(q.dtype())?, &v.to_dtype(q.dtype())?);
        let q = self.split_heads(&(q * scale as f64)?)?;
        let scores = q.matmul(kt)?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        probs.matmul(v)?.transpose(1, 2)?.reshape((b, t, d))
    }
}
