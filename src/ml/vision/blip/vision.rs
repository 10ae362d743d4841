//! BLIP's vision tower (`vision_model.*`): a pre-norm ViT over 16×16 patches with a class
//! token, on our `Linear` and fused CPU attention.

use candle_core::{Module, Tensor};
use candle_nn::{Activation, Conv2dConfig, LayerNorm, VarBuilder};
use serde::Deserialize;

use crate::ml::kernels::activations::gelu_erf;
use crate::ml::nn::attention::self_attention;
use crate::ml::nn::device::Precision;
use crate::ml::nn::linear::Linear;

/// transformers' `BlipVisionConfig`; defaults are transformers'.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BlipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

impl Default for BlipVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            image_size: 384,
            patch_size: 16,
            hidden_act: Activation::Gelu,
            layer_norm_eps: 1e-5,
        }
    }
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
    fn load(vb: VarBuilder, cfg: &BlipVisionConfig, p: Precision) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let attn = vb.pp("self_attn");
        let (fc1, fc2) = (vb.pp("mlp").pp("fc1"), vb.pp("mlp").pp("fc2"));
        Ok(Self {
            norm1: candle_nn::layer_norm(h, cfg.layer_norm_eps, vb.pp("layer_norm1"))?,
            qkv: Linear::load_as(attn.pp("qkv"), h, 3 * h, true, p)?,
            projection: Linear::load_as(attn.pp("projection"), h, h, true, p)?,
            norm2: candle_nn::layer_norm(h, cfg.layer_norm_eps, vb.pp("layer_norm2"))?,
            fc1: Linear::load_as(fc1, h, cfg.intermediate_size, true, p)?,
            fc2: Linear::load_as(fc2, cfg.intermediate_size, h, true, p)?,
            heads: cfg.num_attention_heads,
            act: cfg.hidden_act,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let qkv = self.qkv.forward(&self.norm1.forward(x)?)?;
        let ctx = self_attention(&qkv, self.heads, None)?;
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
    /// `p`: what the layers' projections keep (`Precision::for_gemm`).
    pub fn load(vb: VarBuilder, cfg: &BlipVisionConfig, p: Precision) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let e = vb.pp("embeddings");
        let conv = Conv2dConfig {
            stride: cfg.patch_size,
            ..Default::default()
        };
        let patch = candle_nn::conv2d(3, h, cfg.patch_size, conv, e.pp("patch_embedding"))?;
        let n = (cfg.image_size / cfg.patch_size).pow(2) + 1;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| VisionLayer::load(vb.pp("encoder").pp("layers").pp(i), cfg, p))
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
