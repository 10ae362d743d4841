//! BLIP's caption decoder (transformers' `BlipTextLMHeadModel`, the `text_decoder.*`
//! tensors): a BERT-style post-norm decoder with causal self-attention and
//! cross-attention over the image patches, then the MLM head.
//!
//! Unlike candle's example, the image's cross-attention keys and values are computed once
//! per caption ([`TextDecoder::start`]) and self-attention keeps a KV cache, so each new
//! token costs one row through the network.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Activation, Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;

use crate::ml::nn::device::Precision;
use crate::ml::nn::linear::Linear;

/// transformers' `BlipTextConfig`; defaults are transformers'.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BlipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub encoder_hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    /// The token a caption starts from (`[DEC]`).
    pub bos_token_id: u32,
    /// Generation stops at this token (`[SEP]`), as transformers' BLIP `generate` does.
    pub sep_token_id: u32,
}

impl Default for BlipTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 30524,
            hidden_size: 768,
            encoder_hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 512,
            hidden_act: Activation::Gelu,
            layer_norm_eps: 1e-12,
            bos_token_id: 30522,
            sep_token_id: 102,
        }
    }
}

struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    norm: LayerNorm,
    heads: usize,
}

impl Attention {
    fn load(
        vb: VarBuilder,
        cfg: &BlipTextConfig,
        kv_dim: usize,
        p: Precision,
    ) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let s = vb.pp("self");
        Ok(Self {
            query: Linear::load_as(s.pp("query"), h, h, true, p)?,
            key: Linear::load_as(s.pp("key"), kv_dim, h, true, p)?,
            value: Linear::load_as(s.pp("value"), kv_dim, h, true, p)?,
            out: Linear::load_as(vb.pp("output").pp("dense"), h, h, true, p)?,
            norm: candle_nn::layer_norm(h, cfg.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            heads: cfg.num_attention_heads,
        })
    }

    /// (1, n, H) → (1, heads, n, head_dim)
    fn split(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, h) = x.dims3()?;
        x.reshape((b, n, self.heads, h / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Post-norm attention block: LayerNorm(x + out(attend(q(x), k, v))).
    fn attend(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        causal_from: Option<usize>,
    ) -> candle_core::Result<Tensor> {
        let q = self.split(&self.query.forward(x)?)?;
        let hd = q.dim(D::Minus1)?;
        let mut scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        if let Some(past) = causal_from {
            let n = q.dim(2)?;
            if n > 1 {
                let total = k.dim(2)?;
                let mask: Vec<f32> = (0..n)
                    .flat_map(|i| {
                        (0..total).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })
                    })
                    .collect();
                let mask =
                    Tensor::from_vec(mask, (n, total), x.device())?.to_dtype(scores.dtype())?;
                scores = scores.broadcast_add(&mask)?;
            }
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(v)?.transpose(1, 2)?;
        let (b, n, _, _) = ctx.dims4()?;
        let ctx = ctx.reshape((b, n, ()))?;
        self.norm.forward(&(self.out.forward(&ctx)? + x)?)
    }
}

struct Layer {
    self_attn: Attention,
    cross_attn: Attention,
    intermediate: Linear,
    output: Linear,
    norm: LayerNorm,
    act: Activation,
}

/// Everything that changes while one caption is written.
pub struct CaptionState {
    /// Per layer: self-attention K and V so far, (1, heads, t, head_dim).
    cache: Vec<Option<(Tensor, Tensor)>>,
    /// Per layer: cross-attention K and V over the image, computed once.
    cross: Vec<(Tensor, Tensor)>,
    len: usize,
}

pub struct TextDecoder {
    word: Embedding,
    position: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    head_dense: Linear,
    head_norm: LayerNorm,
    head_act: Activation,
    decoder: Linear,
    cfg: BlipTextConfig,
    /// What activations run in: f32 on the CPU, the precision's dtype on a GPU.
    act_dtype: DType,
    device: Device,
}

impl TextDecoder {
    /// `vb` points at `text_decoder`.
    pub fn load(
        vb: VarBuilder,
        cfg: &BlipTextConfig,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let (h, p) = (cfg.hidden_size, precision);
        let act_dtype = if vb.device().is_cpu() {
            DType::F32
        } else {
            precision.dtype()
        };
        let bert = vb.pp("bert");
        let emb = bert.pp("embeddings").set_dtype(act_dtype);
        let word = candle_nn::embedding(cfg.vocab_size, h, emb.pp("word_embeddings"))?;
        let position = candle_nn::embedding(
            cfg.max_position_embeddings,
            h,
            emb.pp("position_embeddings"),
        )?;
        let embed_norm = candle_nn::layer_norm(h, cfg.layer_norm_eps, emb.pp("LayerNorm"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = bert.pp("encoder").pp("layer").pp(i);
                let ln = l.clone().set_dtype(act_dtype);
                Ok(Layer {
                    self_attn: Attention::load(l.pp("attention"), cfg, h, p)?,
                    cross_attn: Attention::load(
                        l.pp("crossattention"),
                        cfg,
                        cfg.encoder_hidden_size,
                        p,
                    )?,
                    intermediate: Linear::load_as(
                        l.pp("intermediate").pp("dense"),
                        h,
                        cfg.intermediate_size,
                        true,
                        p,
                    )?,
                    output: Linear::load_as(
                        l.pp("output").pp("dense"),
                        cfg.intermediate_size,
                        h,
                        true,
                        p,
                    )?,
                    norm: candle_nn::layer_norm(
                        h,
                        cfg.layer_norm_eps,
                        ln.pp("output").pp("LayerNorm"),
                    )?,
                    act: cfg.hidden_act,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        let pred = vb.pp("cls").pp("predictions");
        let head_dense = Linear::load_as(pred.pp("transform").pp("dense"), h, h, true, p)?;
        let head_norm = candle_nn::layer_norm(
            h,
            cfg.layer_norm_eps,
            pred.pp("transform").pp("LayerNorm").set_dtype(act_dtype),
        )?;
        // The output projection is tied to the word embeddings; checkpoints may omit it.
        let dec = pred.pp("decoder");
        let dec_vb = if dec.contains_tensor("weight") {
            dec
        } else {
            emb.pp("word_embeddings")
        };
        let mut decoder = Linear::load_as(dec_vb, h, cfg.vocab_size, false, p)?;
        let bias = if pred.contains_tensor("bias") {
            pred.set_dtype(act_dtype).get(cfg.vocab_size, "bias")?
        } else {
            pred.pp("decoder")
                .set_dtype(act_dtype)
                .get(cfg.vocab_size, "bias")?
        };
        decoder.set_bias(bias);
        Ok(Self {
            word,
            position,
            embed_norm,
            layers,
            head_dense,
            head_norm,
            head_act: cfg.hidden_act,
            decoder,
            cfg: cfg.clone(),
            act_dtype,
            device: vb.device().clone(),
        })
    }

    pub fn config(&self) -> &BlipTextConfig {
        &self.cfg
    }

    /// Begin a caption over `image` (1, patches, encoder_hidden): the cross-attention
    /// keys and values are computed here, once.
    pub fn start(&self, image: &Tensor) -> candle_core::Result<CaptionState> {
        // Image states from a vision model of another precision are welcome.
        let image = &image.to_dtype(self.act_dtype)?;
        let cross = self
            .layers
            .iter()
            .map(|l| {
                let a = &l.cross_attn;
                Ok((
                    a.split(&a.key.forward(image)?)?,
                    a.split(&a.value.forward(image)?)?,
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(CaptionState {
            cache: vec![None; self.layers.len()],
            cross,
            len: 0,
        })
    }

    /// Feed `tokens` (appended after what `state` holds); logits (vocab) of the last one.
    pub fn forward(&self, tokens: &[u32], state: &mut CaptionState) -> candle_core::Result<Tensor> {
        let n = tokens.len();
        if state.len + n > self.cfg.max_position_embeddings {
            candle_core::bail!(
                "caption longer than {} tokens",
                self.cfg.max_position_embeddings
            );
        }
        let ids = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let pos: Vec<u32> = (state.len..state.len + n).map(|p| p as u32).collect();
        let pos = Tensor::new(pos.as_slice(), &self.device)?.unsqueeze(0)?;
        let mut x = self
            .embed_norm
            .forward(&(self.word.forward(&ids)? + self.position.forward(&pos)?)?)?;
        let past = state.len;
        for (i, layer) in self.layers.iter().enumerate() {
            let a = &layer.self_attn;
            let k = a.split(&a.key.forward(&x)?)?;
            let v = a.split(&a.value.forward(&x)?)?;
            let (k, v) = match state.cache[i].take() {
                Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
                None => (k, v),
            };
            x = a.attend(&x, &k, &v, Some(past))?;
            state.cache[i] = Some((k, v));
            let (ck, cv) = &state.cross[i];
            x = layer.cross_attn.attend(&x, ck, cv, None)?;
            let h = layer.act.forward(&layer.intermediate.forward(&x)?)?;
            x = layer.norm.forward(&(layer.output.forward(&h)? + x)?)?;
        }
        state.len += n;
        let last = x.narrow(1, n - 1, 1)?;
        let h = self
            .head_norm
            .forward(&self.head_act.forward(&self.head_dense.forward(&last)?)?)?;
        self.decoder
            .forward(&h)?
            .flatten_all()?
            .to_dtype(DType::F32)
    }
}
