//! BLIP image captioning (transformers' `BlipForConditionalGeneration`): a ViT over the
//! photo (`vision_model.*`), then the caption decoder in `blip_text` writes greedily from
//! `[DEC]` until `[SEP]`, exactly as transformers' `generate(do_sample=False)` does.

use anyhow::{Context, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Activation, Conv2dConfig, LayerNorm, VarBuilder};
use image::RgbImage;
use serde::Deserialize;

use super::activations::gelu_erf;
use super::blip_text::{BlipTextConfig, TextDecoder};
use super::cpu_attention::attend;
use super::device::Precision;
use super::hub::ModelFiles;
use super::linear::Linear;
use super::vision_input::{blip_pixels, to_tensor};

fn d_hidden() -> usize {
    768
}
fn d_inter() -> usize {
    3072
}
fn d_12() -> usize {
    12
}
fn d_image() -> usize {
    384
}
fn d_patch() -> usize {
    16
}
fn d_act() -> Activation {
    Activation::Gelu
}
fn d_eps() -> f64 {
    1e-5
}

/// transformers' `BlipVisionConfig`; defaults are transformers'.
#[derive(Debug, Clone, Deserialize)]
pub struct BlipVisionConfig {
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_inter")]
    pub intermediate_size: usize,
    #[serde(default = "d_12")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_12")]
    pub num_attention_heads: usize,
    #[serde(default = "d_image")]
    pub image_size: usize,
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    #[serde(default = "d_act")]
    pub hidden_act: Activation,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BlipConfig {
    pub text_config: BlipTextConfig,
    pub vision_config: BlipVisionConfig,
}

/// Pre-norm ViT layer: x + attn(LN(x)), then x + mlp(LN(x)).
struct VisionLayer {
    norm1: LayerNorm,
    qkv: Linear,
    projection: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
    act: Activation,
}

impl VisionLayer {
    fn load(vb: VarBuilder, cfg: &BlipVisionConfig) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let attn = vb.pp("self_attn");
        Ok(Self {
            norm1: candle_nn::layer_norm(h, cfg.layer_norm_eps, vb.pp("layer_norm1"))?,
            qkv: Linear::load(attn.pp("qkv"), h, 3 * h, true)?,
            projection: Linear::load(attn.pp("projection"), h, h, true)?,
            norm2: candle_nn::layer_norm(h, cfg.layer_norm_eps, vb.pp("layer_norm2"))?,
            fc1: Linear::load(vb.pp("mlp").pp("fc1"), h, cfg.intermediate_size, true)?,
            fc2: Linear::load(vb.pp("mlp").pp("fc2"), cfg.intermediate_size, h, true)?,
            heads: cfg.num_attention_heads,
            act: cfg.hidden_act,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, h) = x.dims3()?;
        let hd = h / self.heads;
        let scale = (hd as f64).powf(-0.5);
        let qkv = self.qkv.forward(&self.norm1.forward(x)?)?;
        let ctx = if let Some(ctx) = attend(&qkv, self.heads, scale)? {
            ctx
        } else {
            let qkv = qkv
                .reshape((b, n, 3, self.heads, hd))?
                .permute((2, 0, 3, 1, 4))?;
            let (q, k, v) = (
                qkv.get(0)?.contiguous()?,
                qkv.get(1)?.contiguous()?,
                qkv.get(2)?.contiguous()?,
            );
            let scores = (q.matmul(&k.t()?)? * scale)?;
            candle_nn::ops::softmax_last_dim(&scores)?
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, n, h))?
        };
        let x = (self.projection.forward(&ctx)? + x)?;
        let hidden = self.fc1.forward(&self.norm2.forward(&x)?)?;
        // candle's `Activation::Gelu` is the exact (erf) GELU; ours runs on every core.
        let hidden = match self.act {
            Activation::Gelu => gelu_erf(&hidden)?,
            act => act.forward(&hidden)?,
        };
        self.fc2.forward(&hidden)? + x
    }
}

/// `BlipVisionModel`: patch embedding + class token + positions, layers, post-norm.
pub struct VisionModel {
    patch: candle_nn::Conv2d,
    class: Tensor,
    positions: Tensor,
    layers: Vec<VisionLayer>,
    post_norm: LayerNorm,
}

impl VisionModel {
    pub fn load(vb: VarBuilder, cfg: &BlipVisionConfig) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let e = vb.pp("embeddings");
        let conv = Conv2dConfig {
            stride: cfg.patch_size,
            ..Default::default()
        };
        let patch = candle_nn::conv2d(3, h, cfg.patch_size, conv, e.pp("patch_embedding"))?;
        let n = (cfg.image_size / cfg.patch_size).pow(2) + 1;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| VisionLayer::load(vb.pp("encoder").pp("layers").pp(i), cfg))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            patch,
            class: e.get((1, 1, h), "class_embedding")?,
            positions: e.get((1, n, h), "position_embedding")?,
            layers,
            post_norm: candle_nn::layer_norm(h, cfg.layer_norm_eps, vb.pp("post_layernorm"))?,
        })
    }

    /// pixels (1, 3, size, size) → patch states (1, 1 + patches, hidden).
    pub fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let patches = self
            .patch
            .forward(pixels)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let mut x = Tensor::cat(&[&self.class.to_dtype(patches.dtype())?, &patches], 1)?
            .broadcast_add(&self.positions)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        self.post_norm.forward(&x)
    }
}

/// A caption and the token ids it came from (after `[DEC]`, up to and with `[SEP]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    pub text: String,
    pub tokens: Vec<u32>,
}

pub struct Captioner {
    vision: VisionModel,
    text: TextDecoder,
    tokenizer: tokenizers::Tokenizer,
    image_size: usize,
    dtype: DType,
    device: Device,
}

impl Captioner {
    pub fn load(files: &ModelFiles, precision: Precision, device: &Device) -> Result<Self> {
        let cfg: BlipConfig = files.read_config()?;
        let tokenizer = files.tokenizer()?;
        // The ViT is compute-bound: f32 on the CPU (candle's GEMM), the chosen dtype on a GPU.
        let dtype = if device.is_cpu() {
            DType::F32
        } else {
            precision.dtype()
        };
        let vb = files.var_builder(dtype, device)?;
        let mismatch = || files.mismatch();
        let vision =
            VisionModel::load(vb.pp("vision_model"), &cfg.vision_config).with_context(mismatch)?;
        let text = TextDecoder::load(vb.pp("text_decoder"), &cfg.text_config, precision)
            .with_context(mismatch)?;
        Ok(Self {
            vision,
            text,
            tokenizer,
            image_size: cfg.vision_config.image_size,
            dtype,
            device: device.clone(),
        })
    }

    /// The processor's pixel tensor for a photo.
    pub fn pixels(&self, photo: &RgbImage) -> Result<Tensor> {
        let s = self.image_size;
        let chw = blip_pixels(photo, s as u32, s as u32);
        Ok(to_tensor(chw, s, s, &self.device)?.to_dtype(self.dtype)?)
    }

    /// Greedy caption of a photo.
    pub fn caption(&self, photo: &RgbImage, max_new_tokens: usize) -> Result<Caption> {
        self.caption_pixels(&self.pixels(photo)?, max_new_tokens)
    }

    /// The vision model's patch states for a pixel tensor (1, 3, size, size).
    pub fn image_states(&self, pixels: &Tensor) -> Result<Tensor> {
        Ok(self.vision.forward(pixels)?)
    }

    /// Logits of the first caption token (a parity check).
    pub fn first_logits(&self, image: &Tensor) -> Result<Tensor> {
        let mut state = self.text.start(image)?;
        Ok(self
            .text
            .forward(&[self.text.config().bos_token_id], &mut state)?)
    }

    /// Greedy caption from an already-made pixel tensor (1, 3, size, size).
    pub fn caption_pixels(&self, pixels: &Tensor, max_new_tokens: usize) -> Result<Caption> {
        let image = self.image_states(pixels)?;
        let cfg = self.text.config();
        let mut state = self.text.start(&image)?;
        let mut tokens = Vec::new();
        let mut next = cfg.bos_token_id;
        for _ in 0..max_new_tokens {
            let logits = self.text.forward(&[next], &mut state)?;
            next = logits.argmax(D::Minus1)?.to_scalar::<u32>()?;
            tokens.push(next);
            if next == cfg.sep_token_id {
                break;
            }
        }
        let text = self
            .tokenizer
            .decode(&tokens, true)
            .map_err(|e| anyhow::anyhow!("cannot decode the caption tokens: {e}"))?;
        Ok(Caption {
            text: text.trim().to_string(),
            tokens,
        })
    }
}
