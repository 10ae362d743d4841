//! The MusicGen decoder LM (transformers' `MusicgenForCausalLM`): K codebook embeddings
//! summed, sinusoidal positions, pre-norm decoder layers with self- and cross-attention,
//! one LM head per codebook. Tensor names follow the checkpoint (`decoder.model.decoder.*`,
//! `decoder.lm_heads.*`).
//!
//! The weights are immutable and shared; everything that changes while generating (the
//! self-attention KV cache, the cross-attention K/V over the text) lives in a
//! [`DecoderState`], one per song. One pass may step several songs at once
//! (`forward_batch`): each weight is then read once for all of them, which is what a step
//! costs on a CPU. On a GPU the songs' attention caches share one pool (`pool`), so the
//! attention of a pass is a few kernels per layer whatever the number of songs.
mod attention;
mod cache;
mod layer;
mod pool;

use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Activation, Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;

use crate::ml::kernels::decode_attention::KvElement;
use crate::ml::nn::device::Precision;
use crate::ml::nn::linear::Linear;
use cache::{CacheFormat, LayerCache};
use layer::DecoderLayer;
use pool::{KvPool, Lease, PoolShape};

/// `MusicgenDecoderConfig`; defaults are transformers' (= musicgen-small).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DecoderConfig {
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub num_hidden_layers: usize,
    pub ffn_dim: usize,
    pub num_attention_heads: usize,
    pub activation_function: Activation,
    pub hidden_size: usize,
    pub num_codebooks: usize,
    pub audio_channels: usize,
    /// Also the start token and the delay-pattern filler; transformers defaults it to 2048.
    pub pad_token_id: Option<u32>,
    pub cross_attention_hidden_size: Option<usize>,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            vocab_size: 2048,
            max_position_embeddings: 2048,
            num_hidden_layers: 24,
            ffn_dim: 4096,
            num_attention_heads: 16,
            activation_function: Activation::Gelu,
            hidden_size: 1024,
            num_codebooks: 4,
            audio_channels: 1,
            pad_token_id: None,
            cross_attention_hidden_size: None,
        }
    }
}

impl DecoderConfig {
    /// The id used for "no token here" (start of sequence and delay-pattern padding).
    pub fn pad_id(&self) -> u32 {
        self.pad_token_id.unwrap_or(self.vocab_size as u32)
    }
}

/// Per-song state: KV caches, the cross-attention mask, the position reached.
pub struct DecoderState {
    caches: Caches,
    /// Rows this song has in a pass: 2 with guidance (conditional, unconditional), else 1.
    rows: usize,
    pos: usize,
}

/// Where a song's attention caches are.
enum Caches {
    /// Its own, per layer, with its cross-attention mask (the CPU).
    Own {
        layers: Vec<LayerCache>,
        cross_mask: Option<Tensor>,
    },
    /// Rows of the decoder's pool (a GPU).
    Pooled(Lease),
}

impl DecoderState {
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
}

pub struct MusicgenDecoder {
    embed_tokens: Vec<Embedding>,
    layers: Vec<DecoderLayer>,
    layer_norm: LayerNorm,
    lm_heads: Vec<Linear>,
    cfg: DecoderConfig,
    dtype: DType,
    /// How each song's self-attention cache is kept: on the CPU, 8 bits at q8_0 and f16 at
    /// f16/bf16 (late in a 30 s song an f32 cache is 590 MB read per step, more than 8-bit
    /// weights), f32 at f32 (transformers' exact tokens). Elsewhere the activations' dtype.
    cache_format: CacheFormat,
    /// The sinusoidal position of every position the decoder takes, made once.
    positions: Tensor,
    /// The shared attention caches (a GPU).
    pool: Option<Arc<KvPool>>,
    device: Device,
}

impl MusicgenDecoder {
    /// `vb` points at the `decoder` prefix of a `MusicgenForConditionalGeneration`
    /// checkpoint (or the root of a `MusicgenForCausalLM` one). Projection weights are
    /// stored in `precision`; everything else in `vb`'s dtype.
    pub fn load(
        vb: VarBuilder,
        cfg: &DecoderConfig,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let d = cfg.hidden_size;
        let m = vb.pp("model").pp("decoder");
        let embed_tokens = (0..cfg.num_codebooks)
            .map(|i| candle_nn::embedding(cfg.vocab_size + 1, d, m.pp("embed_tokens").pp(i)))
            .collect::<candle_core::Result<_>>()?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::load(m.pp("layers").pp(i), cfg, precision))
            .collect::<candle_core::Result<_>>()?;
        let lm_heads = (0..cfg.num_codebooks)
            .map(|i| {
                Linear::load_as(
                    vb.pp("lm_heads").pp(i),
                    d,
                    cfg.vocab_size,
                    false,
                    head_precision(precision, vb.device()),
                )
            })
            .collect::<candle_core::Result<_>>()?;
        let mut decoder = Self {
            embed_tokens,
            layers,
            layer_norm: layer_norm(m.pp("layer_norm"), d)?,
            lm_heads,
            cfg: cfg.clone(),
            dtype: vb.dtype(),
            cache_format: match (vb.device().is_cpu(), precision) {
                (true, Precision::Q8_0) => CacheFormat::Cpu(KvElement::I8),
                (true, Precision::F16 | Precision::BF16) => CacheFormat::Cpu(KvElement::F16),
                _ => CacheFormat::Tensors(vb.dtype()),
            },
            positions: sinusoidal_positions(cfg.max_position_embeddings, d, vb.device())?
                .to_dtype(vb.dtype())?,
            pool: None,
            device: vb.device().clone(),
        };
        // On a GPU, songs share one attention pool.
        if !decoder.device.is_cpu() {
            decoder.pool_caches()?;
        }
        Ok(decoder)
    }

    /// Songs started from now on keep their attention caches in a shared pool: what a GPU
    /// does; on the CPU for tests that hold the two ways to the same tokens.
    pub fn pool_caches(&mut self) -> candle_core::Result<()> {
        let cfg = &self.cfg;
        let shape = PoolShape {
            layers: cfg.num_hidden_layers,
            heads: cfg.num_attention_heads,
            head_dim: cfg.hidden_size / cfg.num_attention_heads,
            dtype: self.cache_format.pool_dtype(),
        };
        self.pool = Some(KvPool::new(shape, &self.device));
        Ok(())
    }

    /// Bytes of weights one decoding step reads: every projection but the cross-attention
    /// keys and values (made once per song in `start`), and the heads.
    pub fn step_weight_bytes(&self) -> usize {
        let layers: usize = self.layers.iter().map(DecoderLayer::weight_bytes).sum();
        layers
            + self
                .lm_heads
                .iter()
                .map(Linear::weight_bytes)
                .sum::<usize>()
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Start a generation: cross-attention K/V are computed here once, over the
    /// (already projected) encoder states `enc` (B, T, D), with `enc_mask` (B, T) of 1/0.
    pub fn start(
        &self,
        enc: &Tensor,
        enc_mask: Option<&Tensor>,
        max_len: usize,
    ) -> candle_core::Result<DecoderState> {
        let enc = enc.to_dtype(self.dtype)?;
        let (rows, text_len, _) = enc.dims3()?;
        if max_len > self.cfg.max_position_embeddings {
            candle_core::bail!(
                "a window of {max_len} positions is longer than the decoder's {}",
                self.cfg.max_position_embeddings
            );
        }
        let text = self
            .layers
            .iter()
            .map(|l| l.encoder_attn.project_kv(&enc))
            .collect::<candle_core::Result<Vec<_>>>()?;
        // 1 → 0, 0 → a large negative number: fully masked rows (the unconditional half of
        // guidance) then attend uniformly to zero vectors, as in transformers.
        let cross_mask = match enc_mask {
            Some(m) => Some(((m.to_dtype(DType::F32)? - 1.0)? * 1e9)?),
            None => None,
        };
        let caches = match &self.pool {
            Some(pool) => {
                let mask = match &cross_mask {
                    Some(m) => m.flatten_all()?.to_vec1()?,
                    None => vec![0.0; rows * text_len],
                };
                Caches::Pooled(pool.lease(max_len, &text, mask)?)
            }
            None => Caches::Own {
                layers: text
                    .into_iter()
                    .map(|(k, v)| LayerCache::new(max_len, self.cache_format, &k, v))
                    .collect::<candle_core::Result<_>>()?,
                cross_mask: match cross_mask {
                    Some(m) => Some(m.reshape((rows, 1, 1, text_len))?.to_dtype(self.dtype)?),
                    None => None,
                },
            },
        };
        Ok(DecoderState {
            caches,
            rows,
            pos: 0,
        })
    }

    /// One forward pass over `tokens` (B, K, S) u32, continuing from `state`:
    /// returns logits (B, K, vocab) for the last position, in f32.
    pub fn forward(
        &self,
        tokens: &Tensor,
        state: &mut DecoderState,
    ) -> candle_core::Result<Tensor> {
        self.forward_batch(tokens, &mut [state])
    }

    /// One pass over several songs at once: `tokens` (R, K, S) holds each song's rows in
    /// the order of `states`, each continuing its state. Every song gets the logits it
    /// would get alone: (R, K, vocab) in f32, in the same row order. All take the same
    /// number S of positions; a pass of S > 1 (a song's first, over its start token and
    /// context) takes one song.
    pub fn forward_batch(
        &self,
        tokens: &Tensor,
        states: &mut [&mut DecoderState],
    ) -> candle_core::Result<Tensor> {
        let (rows, k, s) = tokens.dims3()?;
        let want: usize = states.iter().map(|st| st.rows).sum();
        if states.is_empty() || rows != want || k != self.cfg.num_codebooks {
            candle_core::bail!(
                "a pass needs ({want}, {}, S) tokens for its {} songs, got ({rows}, {k}, {s})",
                self.cfg.num_codebooks,
                states.len()
            );
        }
        if s > 1 && states.len() > 1 {
            candle_core::bail!("a pass over several positions takes one song");
        }
        let mut x = self.embed_codes(tokens)?;
        match &self.pool {
            Some(pool) => {
                let mut songs = Vec::with_capacity(states.len());
                let mut ids = Vec::with_capacity(rows * s);
                for st in states.iter() {
                    let Caches::Pooled(lease) = &st.caches else {
                        candle_core::bail!("a song started before the pool joined a pooled pass");
                    };
                    songs.push((lease, st.pos));
                    for _ in 0..st.rows {
                        ids.extend((st.pos..st.pos + s).map(|p| p as u32));
                    }
                }
                let ids = Tensor::from_vec(ids, rows * s, &self.device)?;
                let pos = self
                    .positions
                    .index_select(&ids, 0)?
                    .reshape((rows, s, ()))?;
                x = (x + pos)?;
                let (store, pass) = pool.pass(&songs, s)?;
                for (i, layer) in self.layers.iter().enumerate() {
                    x = layer.forward_pooled(&x, &store, &pass, i)?;
                }
            }
            None => {
                let mut at = 0;
                let mut parts = Vec::with_capacity(states.len());
                for st in states.iter() {
                    if !matches!(st.caches, Caches::Own { .. }) {
                        candle_core::bail!("a pooled song in a pass without the pool");
                    }
                    let pos = self.positions.narrow(0, st.pos, s)?.unsqueeze(0)?;
                    parts.push(x.narrow(0, at, st.rows)?.broadcast_add(&pos)?);
                    at += st.rows;
                }
                x = match parts.len() {
                    1 => parts.remove(0),
                    _ => Tensor::cat(&parts, 0)?,
                };
                let self_mask = match s > 1 {
                    true => Some(causal_mask(s, states[0].pos, self.dtype, &self.device)?),
                    false => None,
                };
                for (i, layer) in self.layers.iter().enumerate() {
                    x = layer.forward(&x, states, i, self_mask.as_ref())?;
                }
            }
        }
        let last = self.layer_norm.forward(&x.narrow(1, s - 1, 1)?)?;
        let heads = self
            .lm_heads
            .iter()
            .map(|h| h.forward(&last))
            .collect::<candle_core::Result<Vec<_>>>()?;
        for state in states.iter_mut() {
            state.pos += s;
        }
        Tensor::cat(&heads, 1)?.to_dtype(DType::F32)
    }

    /// Tokens (R, K, S) as summed codebook embeddings (R, S, D), positions not yet added.
    fn embed_codes(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = self.embed_tokens[0].forward(&tokens.narrow(1, 0, 1)?.squeeze(1)?)?;
        for (i, emb) in self.embed_tokens.iter().enumerate().skip(1) {
            x = (x + emb.forward(&tokens.narrow(1, i, 1)?.squeeze(1)?)?)?;
        }
        Ok(x)
    }
}

fn layer_norm(vb: VarBuilder, dim: usize) -> candle_core::Result<LayerNorm> {
    candle_nn::layer_norm(dim, candle_nn::LayerNormConfig::from(1e-5), vb)
}

/// The heads turn the last state into the logits tokens are picked from: 8-bit weights
/// there flip the argmax most, so when the rest is q8_0 they stay f16 on the CPU (half
/// the bytes of f32 for a step bound by reading weights; f16's 11-bit mantissa keeps the
/// logits within about 1e-4) and f32 elsewhere (a device multiplies in the activations'
/// dtype).
fn head_precision(p: Precision, device: &Device) -> Precision {
    match p {
        Precision::Q8_0 if device.is_cpu() => Precision::F16,
        Precision::Q8_0 => Precision::F32,
        other => other,
    }
}

/// transformers' `MusicgenSinusoidalPositionalEmbedding`: [cos | sin], not interleaved.
pub fn sinusoidal_positions(n: usize, dim: usize, device: &Device) -> candle_core::Result<Tensor> {
    let half = dim / 2;
    let step = (10000f64).ln() / (half as f64 - 1.0);
    let freqs: Vec<f32> = (0..half)
        .map(|i| (i as f32 * -(step as f32)).exp())
        .collect();
    let mut table = vec![0f32; n * dim];
    for p in 0..n {
        for (i, f) in freqs.iter().enumerate() {
            let a = p as f32 * f;
            table[p * dim + i] = a.cos();
            table[p * dim + half + i] = a.sin();
        }
    }
    Tensor::from_vec(table, (n, dim), device)
}

fn causal_mask(
    s: usize,
    offset: usize,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let t = offset + s;
    let mask: Vec<f32> = (0..s)
        .flat_map(|i| (0..t).map(move |j| if j > offset + i { -1e9 } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (1, 1, s, t), device)?.to_dtype(dtype)
}
