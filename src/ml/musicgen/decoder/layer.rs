//! One pre-norm decoder layer and its attention cache. A pass may carry several songs,
//! one after another along the batch: the products (q|k|v, the output projections, the
//! feed-forward) take every row at once, reading each weight once for all of them, while
//! each song attends over its own cache and text (`per_song`). A song's numbers are the
//! same whatever else is in the pass: every row is computed on its own.

use candle_core::{Module, Tensor};
use candle_nn::{Activation, LayerNorm, VarBuilder};

use super::attention::{CrossAttention, SelfAttention};
use super::cache::LayerCache;
use super::pool::{Pass, Store};
use super::{layer_norm, Caches, DecoderConfig, DecoderState};
use crate::ml::kernels::activations;
use crate::ml::nn::device::Precision;
use crate::ml::nn::linear::Linear;

pub(super) struct DecoderLayer {
    self_attn: SelfAttention,
    self_attn_layer_norm: LayerNorm,
    pub(super) encoder_attn: CrossAttention,
    encoder_attn_layer_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    final_layer_norm: LayerNorm,
    act: Activation,
}

impl DecoderLayer {
    pub(super) fn load(
        vb: VarBuilder,
        cfg: &DecoderConfig,
        q: Precision,
    ) -> candle_core::Result<Self> {
        let (d, heads) = (cfg.hidden_size, cfg.num_attention_heads);
        Ok(Self {
            self_attn: SelfAttention::load(vb.pp("self_attn"), d, heads, q)?,
            self_attn_layer_norm: layer_norm(vb.pp("self_attn_layer_norm"), d)?,
            encoder_attn: CrossAttention::load(vb.pp("encoder_attn"), d, heads, q)?,
            encoder_attn_layer_norm: layer_norm(vb.pp("encoder_attn_layer_norm"), d)?,
            fc1: Linear::load_as(vb.pp("fc1"), d, cfg.ffn_dim, false, q)?,
            fc2: Linear::load_as(vb.pp("fc2"), cfg.ffn_dim, d, false, q)?,
            final_layer_norm: layer_norm(vb.pp("final_layer_norm"), d)?,
            act: cfg.activation_function,
        })
    }

    /// Bytes of weights one step reads in this layer.
    pub(super) fn weight_bytes(&self) -> usize {
        self.self_attn.weight_bytes()
            + self.encoder_attn.weight_bytes()
            + self.fc1.weight_bytes()
            + self.fc2.weight_bytes()
    }

    /// Layer `index` over `x` (R, S, D): the rows of `songs` in order, each song's
    /// `rows` of them. `self_mask` is the causal mask of a pass of S > 1 positions (one
    /// song's first pass).
    pub(super) fn forward(
        &self,
        x: &Tensor,
        songs: &mut [&mut DecoderState],
        index: usize,
        self_mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let h = self.self_attn_layer_norm.forward(x)?;
        let (q, k, v) = self.self_attn.qkv(&h)?;
        let (k, v) = (
            self.self_attn.attn.split_heads(&k)?,
            self.self_attn.attn.split_heads(&v)?,
        );
        let y = per_song(songs, |song, at| {
            let rows = song.rows;
            let (cache, _) = own(song, index)?;
            let kv = (&k.narrow(0, at, rows)?, &v.narrow(0, at, rows)?);
            cache.attend_self(&self.self_attn.attn, &q.narrow(0, at, rows)?, kv, self_mask)
        })?;
        let x = (x + self.self_attn.attn.out.forward(&y)?)?;

        let h = self.encoder_attn_layer_norm.forward(&x)?;
        let cross = &self.encoder_attn;
        let q = cross.q.forward(&h)?;
        let y = per_song(songs, |song, at| {
            let q = q.narrow(0, at, song.rows)?;
            let (cache, mask) = own(song, index)?;
            cross
                .attn
                .attend(&q, &cache.cross_kt, &cache.cross_v, mask.as_ref())
        })?;
        let x = (&x + cross.attn.out.forward(&y)?)?;
        self.feed_forward(&x)
    }

    /// `forward` for songs whose caches are in the pool: the pass's new keys and values
    /// written and its songs' caches read with one kernel each, attention over them all.
    pub(super) fn forward_pooled(
        &self,
        x: &Tensor,
        store: &Store,
        pass: &Pass,
        index: usize,
    ) -> candle_core::Result<Tensor> {
        let h = self.self_attn_layer_norm.forward(x)?;
        let (q, k, v) = self.self_attn.qkv(&h)?;
        let (kt, v) = store.self_attention(index, pass, &k, &v)?;
        let attn = &self.self_attn.attn;
        let y = attn.attend(&q, &kt, &v, Some(&pass.self_mask))?;
        let x = (x + attn.out.forward(&y)?)?;

        let h = self.encoder_attn_layer_norm.forward(&x)?;
        let cross = &self.encoder_attn;
        let (kt, v) = store.text(index, pass)?;
        let y = cross
            .attn
            .attend(&cross.q.forward(&h)?, &kt, &v, Some(&pass.text_mask))?;
        let x = (&x + cross.attn.out.forward(&y)?)?;
        self.feed_forward(&x)
    }

    /// The feed-forward block and its residual.
    fn feed_forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.fc1.forward(&self.final_layer_norm.forward(x)?)?;
        let h = match self.act {
            // MusicGen's "gelu": the vector kernel, not candle's scalar f64 erf.
            Activation::Gelu => activations::gelu_erf(&h)?,
            act => act.forward(&h)?,
        };
        x + self.fc2.forward(&h)?
    }
}

/// A song's own cache of layer `index` and its text mask.
fn own(
    song: &mut DecoderState,
    index: usize,
) -> candle_core::Result<(&mut LayerCache, &Option<Tensor>)> {
    match &mut song.caches {
        Caches::Own {
            layers, cross_mask, ..
        } => Ok((&mut layers[index], &*cross_mask)),
        Caches::Pooled(_) => candle_core::bail!("a pooled song in a pass without the pool"),
    }
}

/// `f(song, first row)` for each song, the results stacked along the batch again.
fn per_song(
    songs: &mut [&mut DecoderState],
    mut f: impl FnMut(&mut DecoderState, usize) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let mut at = 0;
    let mut ys = Vec::with_capacity(songs.len());
    for song in songs.iter_mut() {
        ys.push(f(song, at)?);
        at += song.rows;
    }
    match ys.len() {
        1 => Ok(ys.remove(0)),
        _ => Tensor::cat(&ys, 0),
    }
}
