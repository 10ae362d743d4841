//! The T5 text encoder that conditions MusicGen (transformers' `T5EncoderModel`, the
//! `text_encoder.*` tensors). The network itself is candle-transformers' T5 encoder, which
//! matches transformers (checked by the parity tests); this file reads transformers'
//! config, where saved configs may leave defaults out, and owns the tokenizer.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::t5 as ct5;
use serde::Deserialize;
use tokenizers::Tokenizer;

/// Longest prompt we pass to T5, in tokens (MusicGen was trained on short descriptions).
pub const MAX_PROMPT_TOKENS: usize = 256;

/// transformers' `T5Config` (the fields the encoder uses), defaults included.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub relative_attention_num_buckets: usize,
    pub relative_attention_max_distance: usize,
    pub layer_norm_epsilon: f64,
    pub feed_forward_proj: String,
    pub pad_token_id: usize,
    pub eos_token_id: usize,
}

impl Default for T5Config {
    fn default() -> Self {
        Self {
            vocab_size: 32128,
            d_model: 512,
            d_kv: 64,
            d_ff: 2048,
            num_layers: 6,
            num_heads: 8,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
            layer_norm_epsilon: 1e-6,
            feed_forward_proj: "relu".into(),
            pad_token_id: 0,
            eos_token_id: 1,
        }
    }
}

impl T5Config {
    fn to_candle(&self) -> Result<ct5::Config> {
        // candle parses `feed_forward_proj` ("relu", "gated-gelu", …) itself.
        let json = serde_json::json!({
            "vocab_size": self.vocab_size,
            "d_model": self.d_model,
            "d_kv": self.d_kv,
            "d_ff": self.d_ff,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "relative_attention_num_buckets": self.relative_attention_num_buckets,
            "relative_attention_max_distance": self.relative_attention_max_distance,
            "dropout_rate": 0.0,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "initializer_factor": 1.0,
            "feed_forward_proj": self.feed_forward_proj,
            "is_encoder_decoder": false,
            "pad_token_id": self.pad_token_id,
            "eos_token_id": self.eos_token_id,
        });
        serde_json::from_value(json).with_context(|| {
            format!(
                "unsupported T5 feed_forward_proj {:?}",
                self.feed_forward_proj
            )
        })
    }
}

pub struct T5Encoder {
    model: ct5::T5EncoderModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl T5Encoder {
    /// `vb` points at the encoder's tensors (`text_encoder` in a MusicGen checkpoint).
    pub fn load(vb: VarBuilder, cfg: &T5Config, tokenizer: Tokenizer) -> Result<Self> {
        let device = vb.device().clone();
        let model = ct5::T5EncoderModel::load(vb, &cfg.to_candle()?)
            .context("cannot load the T5 text encoder weights")?;
        Ok(Self {
            model,
            tokenizer,
            device,
        })
    }

    /// Prompt → token ids (with T5's closing `</s>`), refusing empty and overlong prompts.
    pub fn tokenize(&self, prompt: &str) -> Result<Vec<u32>> {
        if prompt.trim().is_empty() {
            bail!("the prompt is empty: describe the music you want");
        }
        let enc = self
            .tokenizer
            .encode(prompt, true)
            .map_err(|e| anyhow::anyhow!("cannot tokenize the prompt: {e}"))?;
        let ids = enc.get_ids().to_vec();
        if ids.len() > MAX_PROMPT_TOKENS {
            bail!(
                "the prompt is too long: {} tokens, at most {MAX_PROMPT_TOKENS}",
                ids.len()
            );
        }
        Ok(ids)
    }

    /// Token ids → last hidden state (1, T, d_model), f32.
    pub fn encode_ids(&mut self, ids: &[u32]) -> Result<Tensor> {
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        Ok(self.model.forward(&input)?)
    }
}
