//! A BERT encoder (transformers' `BertModel` without its pooler), as sentence-embedding
//! models such as all-MiniLM-L6-v2 use it: embeddings → post-norm encoder layers → the
//! last hidden states. Tensors are named as in the checkpoint (`embeddings.*`,
//! `encoder.layer.N.*`); a `bert.` prefix (a checkpoint saved with a head) is accepted.

use candle_core::{Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;

use crate::ml::kernels::activations::gelu_erf;
use crate::ml::nn::attention::self_attention;
use crate::ml::nn::device::Precision;
use crate::ml::nn::linear::Linear;

/// The activation between the feed-forward layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// Exact (erf) GELU: transformers' "gelu".
    Gelu,
    Relu,
}

/// How positions are encoded. Only learned absolute positions exist in the models we
/// load; a config asking for relative ones is refused when it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionEmbedding {
    Absolute,
}

/// transformers' `BertConfig`; defaults are transformers' (= bert-base-uncased).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: HiddenAct,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub position_embedding_type: PositionEmbedding,
}

impl Default for BertConfig {
    fn default() -> Self {
        Self {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: HiddenAct::Gelu,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            position_embedding_type: PositionEmbedding::Absolute,
        }
    }
}

struct Embeddings {
    words: Embedding,
    positions: Tensor,
    /// Token type 0's row: single sentences only ever use it.
    token_type: Tensor,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, c: &BertConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let types = vb.get((c.type_vocab_size, h), "token_type_embeddings.weight")?;
        Ok(Self {
            words: candle_nn::embedding(c.vocab_size, h, vb.pp("word_embeddings"))?,
            positions: vb.get((c.max_position_embeddings, h), "position_embeddings.weight")?,
            token_type: types.narrow(0, 0, 1)?,
            norm: candle_nn::layer_norm(h, c.layer_norm_eps, vb.pp("LayerNorm"))?,
        })
    }

    /// ids (1, n) → (1, n, h).
    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let n = ids.dim(1)?;
        let x = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.narrow(0, 0, n)?)?
            .broadcast_add(&self.token_type)?;
        self.norm.forward(&x)
    }
}

struct Layer {
    /// query, key and value as one projection.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    out: Linear,
    out_norm: LayerNorm,
    heads: usize,
    act: HiddenAct,
}

impl Layer {
    fn load(vb: VarBuilder, c: &BertConfig) -> candle_core::Result<Self> {
        let (h, a) = (c.hidden_size, vb.pp("attention"));
        let s = a.pp("self");
        let eps = c.layer_norm_eps;
        Ok(Self {
            qkv: Linear::fused(
                &[s.pp("query"), s.pp("key"), s.pp("value")],
                h,
                Precision::F32.for_gemm(vb.device(), vb.dtype()),
            )?,
            attn_out: Linear::load(a.pp("output").pp("dense"), h, h, true)?,
            attn_norm: candle_nn::layer_norm(h, eps, a.pp("output").pp("LayerNorm"))?,
            intermediate: Linear::load(
                vb.pp("intermediate").pp("dense"),
                h,
                c.intermediate_size,
                true,
            )?,
            out: Linear::load(vb.pp("output").pp("dense"), c.intermediate_size, h, true)?,
            out_norm: candle_nn::layer_norm(h, eps, vb.pp("output").pp("LayerNorm"))?,
            heads: c.num_attention_heads,
            act: c.hidden_act,
        })
    }

    /// Post-norm: x ← LN(x + attn(x)); x ← LN(x + ff(x)).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let ctx = self_attention(&self.qkv.forward(x)?, self.heads, None)?;
        let x = self
            .attn_norm
            .forward(&(self.attn_out.forward(&ctx)? + x)?)?;
        let hidden = self.intermediate.forward(&x)?;
        let hidden = match self.act {
            HiddenAct::Gelu => gelu_erf(&hidden)?,
            HiddenAct::Relu => hidden.relu()?,
        };
        self.out_norm.forward(&(self.out.forward(&hidden)? + x)?)
    }
}

pub struct BertModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    max_positions: usize,
}

impl BertModel {
    pub fn load(vb: VarBuilder, c: &BertConfig) -> candle_core::Result<Self> {
        // Sentence-transformers checkpoints name tensors from the encoder's root;
        // checkpoints saved with a task head put them under `bert.`.
        let vb = match vb.contains_tensor("embeddings.word_embeddings.weight") {
            true => vb,
            false => vb.pp("bert"),
        };
        Ok(Self {
            embeddings: Embeddings::load(vb.pp("embeddings"), c)?,
            layers: (0..c.num_hidden_layers)
                .map(|i| Layer::load(vb.pp("encoder").pp("layer").pp(i), c))
                .collect::<candle_core::Result<_>>()?,
            max_positions: c.max_position_embeddings,
        })
    }

    /// The most tokens one forward pass takes.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// One text's token ids (with [CLS] and [SEP]) → last hidden states (1, n, h). No
    /// padding, so nothing is masked.
    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = self.embeddings.forward(ids)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        Ok(x)
    }
}
