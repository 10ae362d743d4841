//! The MusicGen decoder LM (transformers' `MusicgenForCausalLM`): K codebook embeddings
//! summed, sinusoidal positions, pre-norm decoder layers with self- and cross-attention,
//! one LM head per codebook. Tensor names follow the checkpoint (`decoder.model.decoder.*`,
//! `decoder.lm_heads.*`).
//!
//! The weights are immutable and shared; everything that changes while generating (the
//! self-attention KV cache, the cross-attention K/V over the text) lives in [`DecoderState`].

use crate::ml::kernels::decode_attention;
use crate::ml::nn::device::Precision;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::kv_cache::Cache;
use candle_nn::{Activation, Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;

use crate::ml::nn::linear::Linear;

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

/// What self- and cross-attention share: heads, the output projection, `attend`.
struct Attention {
    out: Linear,
    heads: usize,
    head_dim: usize,
}

/// Self-attention: q, k and v of the same input in one product.
struct SelfAttention {
    qkv: Linear,
    attn: Attention,
}

/// Cross-attention: q every step; k and v over the text, once per song (`start`).
struct CrossAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    attn: Attention,
}

impl SelfAttention {
    fn load(vb: VarBuilder, dim: usize, heads: usize, p: Precision) -> candle_core::Result<Self> {
        let parts = [vb.pp("q_proj"), vb.pp("k_proj"), vb.pp("v_proj")];
        Ok(Self {
            qkv: Linear::stacked(&parts, dim, dim, p)?,
            attn: Attention::load(vb, dim, heads, p)?,
        })
    }

    /// Queries (B, T, D) and keys and values (B, H, T, Dh) of `x`.
    fn qkv(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let d = self.attn.heads * self.attn.head_dim;
        let y = self.qkv.forward(x)?;
        let part = |i: usize| y.narrow(2, i * d, d);
        let (k, v) = (
            self.attn.split_heads(&part(1)?)?,
            self.attn.split_heads(&part(2)?)?,
        );
        Ok((part(0)?, k, v))
    }
}

impl CrossAttention {
    fn load(vb: VarBuilder, dim: usize, heads: usize, p: Precision) -> candle_core::Result<Self> {
        Ok(Self {
            q: Linear::load_as(vb.pp("q_proj"), dim, dim, false, p)?,
            k: Linear::load_as(vb.pp("k_proj"), dim, dim, false, p)?,
            v: Linear::load_as(vb.pp("v_proj"), dim, dim, false, p)?,
            attn: Attention::load(vb, dim, heads, p)?,
        })
    }

    /// Keys and values (B, H, T, Dh) of the text states `x`.
    fn project_kv(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((
            self.attn.split_heads(&self.k.forward(x)?)?,
            self.attn.split_heads(&self.v.forward(x)?)?,
        ))
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

    /// (B, T, D) → (B, H, T, Dh)
    fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        x.reshape((b, t, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Scaled dot-product attention of queries `q` (B, T, D) over keys `kt` (B, H, Dh, S,
    /// transposed) and values `v` (B, H, S, Dh), with an additive mask, through the output
    /// projection.
    fn attend(
        &self,
        q: &Tensor,
        kt: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (b, t, d) = q.dims3()?;
        let scale = (self.head_dim as f64).powf(-0.5);
        if t == 1 {
            if let Some(y) = decode_attention::attend_one(q, kt, v, mask, scale as f32)? {
                return self.out.forward(&y);
            }
        }
        // candle's path needs keys and values in the queries' dtype (the cache may be f16).
        let (kt, v) = (&kt.to_dtype(q.dtype())?, &v.to_dtype(q.dtype())?);
        let q = self.split_heads(&(q * scale)?)?;
        let scores = q.matmul(kt)?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = probs.matmul(v)?.transpose(1, 2)?.reshape((b, t, d))?;
        self.out.forward(&y)
    }
}

struct DecoderLayer {
    self_attn: SelfAttention,
    self_attn_layer_norm: LayerNorm,
    encoder_attn: CrossAttention,
    encoder_attn_layer_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    final_layer_norm: LayerNorm,
    act: Activation,
}

fn layer_norm(vb: VarBuilder, dim: usize) -> candle_core::Result<LayerNorm> {
    candle_nn::layer_norm(dim, candle_nn::LayerNormConfig::from(1e-5), vb)
}

impl DecoderLayer {
    fn load(vb: VarBuilder, cfg: &DecoderConfig, q: Precision) -> candle_core::Result<Self> {
        let d = cfg.hidden_size;
        Ok(Self {
            self_attn: SelfAttention::load(vb.pp("self_attn"), d, cfg.num_attention_heads, q)?,
            self_attn_layer_norm: layer_norm(vb.pp("self_attn_layer_norm"), d)?,
            encoder_attn: CrossAttention::load(
                vb.pp("encoder_attn"),
                d,
                cfg.num_attention_heads,
                q,
            )?,
            encoder_attn_layer_norm: layer_norm(vb.pp("encoder_attn_layer_norm"), d)?,
            fc1: Linear::load_as(vb.pp("fc1"), d, cfg.ffn_dim, false, q)?,
            fc2: Linear::load_as(vb.pp("fc2"), cfg.ffn_dim, d, false, q)?,
            final_layer_norm: layer_norm(vb.pp("final_layer_norm"), d)?,
            act: cfg.activation_function,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        cache: &mut LayerCache,
        self_mask: Option<&Tensor>,
        cross_mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let h = self.self_attn_layer_norm.forward(x)?;
        let (q, k, v) = self.self_attn.qkv(&h)?;
        let (kt, v) = cache.append(&k, &v)?;
        let x = (x + self.self_attn.attn.attend(&q, &kt, &v, self_mask)?)?;

        let h = self.encoder_attn_layer_norm.forward(&x)?;
        let (cross, kt, v) = (&self.encoder_attn, &cache.cross_kt, &cache.cross_v);
        let x = (&x
            + cross
                .attn
                .attend(&cross.q.forward(&h)?, kt, v, cross_mask)?)?;

        let h = self.final_layer_norm.forward(&x)?;
        let h = self
            .fc2
            .forward(&self.act.forward(&self.fc1.forward(&h)?)?)?;
        x + h
    }
}

/// One layer's attention state. Keys are kept transposed, (B, H, Dh, T), as the one-token
/// attention reads them; values (B, H, T, Dh).
struct LayerCache {
    /// Self-attention keys, appended along T (dim 3).
    keys: Cache,
    /// Self-attention values, appended along T (dim 2).
    values: Cache,
    /// What the self-attention cache holds its keys and values in.
    kv_dtype: DType,
    cross_kt: Tensor,
    cross_v: Tensor,
}

impl LayerCache {
    /// Add this step's keys and values (B, H, S, Dh); return all of them so far, keys
    /// transposed.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let kt = k.transpose(2, 3)?.contiguous()?.to_dtype(self.kv_dtype)?;
        self.keys.append(&kt)?;
        self.values.append(&v.to_dtype(self.kv_dtype)?)?;
        match (self.keys.current_data()?, self.values.current_data()?) {
            (Some(kt), Some(v)) => Ok((kt, v)),
            _ => candle_core::bail!("the attention cache is empty after an append"),
        }
    }
}

/// Per-generation state: KV caches, the cross-attention mask, the position reached.
pub struct DecoderState {
    layers: Vec<LayerCache>,
    cross_mask: Option<Tensor>,
    positions: Tensor,
    pos: usize,
}

impl DecoderState {
    pub fn position(&self) -> usize {
        self.pos
    }
}

pub struct MusicgenDecoder {
    embed_tokens: Vec<Embedding>,
    layers: Vec<DecoderLayer>,
    layer_norm: LayerNorm,
    lm_heads: Vec<Linear>,
    cfg: DecoderConfig,
    dtype: DType,
    /// The self-attention cache's dtype: on the CPU, f16 unless the precision is f32 (late
    /// in a 30 s song an f32 cache is 590 MB read per step, more than 8-bit weights; f32
    /// keeps transformers' exact tokens). Elsewhere the activations' dtype.
    kv_dtype: DType,
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
                    head_precision(precision),
                )
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            embed_tokens,
            layers,
            layer_norm: layer_norm(m.pp("layer_norm"), d)?,
            lm_heads,
            cfg: cfg.clone(),
            dtype: vb.dtype(),
            kv_dtype: match vb.device().is_cpu() && precision != Precision::F32 {
                true => DType::F16,
                false => vb.dtype(),
            },
            device: vb.device().clone(),
        })
    }

    /// Bytes of weights one decoding step reads: every projection but the cross-attention
    /// keys and values (made once per song in `start`), and the heads.
    pub fn step_weight_bytes(&self) -> usize {
        let layer = |l: &DecoderLayer| {
            let (s, e) = (&l.self_attn, &l.encoder_attn);
            [&s.qkv, &s.attn.out, &e.q, &e.attn.out, &l.fc1, &l.fc2]
                .iter()
                .map(|p| p.weight_bytes())
                .sum::<usize>()
        };
        self.layers.iter().map(layer).sum::<usize>()
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
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let (cross_k, cross_v) = l.encoder_attn.project_kv(&enc)?;
                Ok(LayerCache {
                    keys: Cache::new(3, max_len),
                    values: Cache::new(2, max_len),
                    kv_dtype: self.kv_dtype,
                    cross_kt: cross_k.transpose(2, 3)?.contiguous()?,
                    cross_v,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        // 1 → 0, 0 → a large negative number: fully masked rows (the unconditional half of
        // guidance) then attend uniformly to zero vectors, as in transformers.
        let cross_mask = match enc_mask {
            Some(m) => {
                let (b, t) = m.dims2()?;
                let neg = ((m.to_dtype(DType::F32)? - 1.0)? * 1e9)?;
                Some(neg.reshape((b, 1, 1, t))?.to_dtype(self.dtype)?)
            }
            None => None,
        };
        let positions = sinusoidal_positions(max_len, self.cfg.hidden_size, &self.device)?
            .to_dtype(self.dtype)?;
        Ok(DecoderState {
            layers,
            cross_mask,
            positions,
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
        let (b, k, s) = tokens.dims3()?;
        if k != self.cfg.num_codebooks {
            candle_core::bail!("expected {} codebooks, got {k}", self.cfg.num_codebooks);
        }
        let mut x = self.embed_tokens[0].forward(&tokens.narrow(1, 0, 1)?.squeeze(1)?)?;
        for (i, emb) in self.embed_tokens.iter().enumerate().skip(1) {
            x = (x + emb.forward(&tokens.narrow(1, i, 1)?.squeeze(1)?)?)?;
        }
        let pos = state.positions.narrow(0, state.pos, s)?;
        let mut x = x.broadcast_add(&pos.unsqueeze(0)?)?;
        let self_mask = if s > 1 {
            Some(causal_mask(s, state.pos, self.dtype, &self.device)?)
        } else {
            None
        };
        for (layer, cache) in self.layers.iter().zip(state.layers.iter_mut()) {
            x = layer.forward(&x, cache, self_mask.as_ref(), state.cross_mask.as_ref())?;
        }
        state.pos += s;
        let last = self.layer_norm.forward(&x.narrow(1, s - 1, 1)?)?;
        let logits = self
            .lm_heads
            .iter()
            .map(|h| h.forward(&last))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&logits, 1)?
            .reshape((b, k, self.cfg.vocab_size))?
            .to_dtype(DType::F32)
    }
}

/// The heads turn the last state into the logits tokens are picked from: 8-bit weights
/// there flip the argmax most, so they stay f32 when the rest is q8_0.
fn head_precision(p: Precision) -> Precision {
    match p {
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
