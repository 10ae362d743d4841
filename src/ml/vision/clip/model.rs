//! CLIP (transformers' `CLIPModel`): a text transformer and a ViT, each ending in a
//! projection to the shared embedding space. Our own so that every projection runs through
//! `Linear` (host matmul on the CPU, no weight packing per call: a ViT-B/32 sees only 50
//! tokens, where packing dominates a GEMM). Tensors are named as in the checkpoint.

use candle_core::{Device, Module, Tensor, D};
use candle_nn::{Embedding, LayerNorm, VarBuilder};

use crate::ml::kernels::activations::quick_gelu;
use crate::ml::nn::attention::self_attention;
use crate::ml::nn::device::Precision;
use crate::ml::nn::linear::Linear;

/// The shapes one tower needs.
#[derive(Debug, Clone)]
pub struct TowerConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub layer_norm_eps: f64,
}

#[derive(Debug, Clone)]
pub struct ClipConfig {
    pub text: TowerConfig,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub vision: TowerConfig,
    pub image_size: usize,
    pub patch_size: usize,
    pub projection_dim: usize,
}

struct Layer {
    norm1: LayerNorm,
    /// q, k and v projections as one (3h, h) matrix: one product instead of three.
    qkv: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl Layer {
    fn load(vb: VarBuilder, c: &TowerConfig, p: Precision) -> candle_core::Result<Self> {
        let (h, a) = (c.hidden_size, vb.pp("self_attn"));
        let qkv = Linear::fused(&[a.pp("q_proj"), a.pp("k_proj"), a.pp("v_proj")], h, p)?;
        let (fc1, fc2) = (vb.pp("mlp").pp("fc1"), vb.pp("mlp").pp("fc2"));
        Ok(Self {
            norm1: candle_nn::layer_norm(h, c.layer_norm_eps, vb.pp("layer_norm1"))?,
            qkv,
            out: Linear::load_as(a.pp("out_proj"), h, h, true, p)?,
            norm2: candle_nn::layer_norm(h, c.layer_norm_eps, vb.pp("layer_norm2"))?,
            fc1: Linear::load_as(fc1, h, c.intermediate_size, true, p)?,
            fc2: Linear::load_as(fc2, c.intermediate_size, h, true, p)?,
            heads: c.num_attention_heads,
        })
    }

    /// x (1, n, h); `mask` (n, n) added to the attention scores (causal for text).
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let qkv = self.qkv.forward(&self.norm1.forward(x)?)?;
        let ctx = self_attention(&qkv, self.heads, mask)?;
        let x = (self.out.forward(&ctx)? + x)?;
        let m = self
            .fc2
            .forward(&quick_gelu(&self.fc1.forward(&self.norm2.forward(&x)?)?)?)?;
        m + x
    }
}

fn layers(vb: VarBuilder, c: &TowerConfig, p: Precision) -> candle_core::Result<Vec<Layer>> {
    (0..c.num_hidden_layers)
        .map(|i| Layer::load(vb.pp("encoder").pp("layers").pp(i), c, p))
        .collect()
}

pub struct ClipModel {
    token_embedding: Embedding,
    text_positions: Tensor,
    text_layers: Vec<Layer>,
    final_norm: LayerNorm,
    text_projection: Linear,
    /// The patch convolution as a matrix: (hidden, 3·p·p), applied to unfolded patches.
    patch: Linear,
    class: Tensor,
    vision_positions: Tensor,
    pre_norm: LayerNorm,
    vision_layers: Vec<Layer>,
    post_norm: LayerNorm,
    visual_projection: Linear,
    patch_size: usize,
    device: Device,
}

impl ClipModel {
    /// `vision`: what the image tower's projections keep (`Precision::for_gemm`). The text
    /// tower stays f32: it runs once per label, and its embeddings are cached.
    pub fn load(vb: VarBuilder, c: &ClipConfig, vision: Precision) -> candle_core::Result<Self> {
        let (t, v) = (vb.pp("text_model"), vb.pp("vision_model"));
        let text = Precision::F32.for_gemm(vb.device(), vb.dtype());
        let (th, vh) = (c.text.hidden_size, c.vision.hidden_size);
        let te = t.pp("embeddings");
        let ve = v.pp("embeddings");
        let p = c.patch_size;
        let patches = (c.image_size / p).pow(2);
        // The conv weight (hidden, 3, p, p) read row-major is the matrix (hidden, 3·p·p).
        let conv = ve.get((vh, 3, p, p), "patch_embedding.weight")?;
        let patch = Linear::from_weight(&conv.reshape((vh, 3 * p * p))?)?;
        Ok(Self {
            token_embedding: candle_nn::embedding(c.vocab_size, th, te.pp("token_embedding"))?,
            text_positions: te.get((c.max_position_embeddings, th), "position_embedding.weight")?,
            text_layers: layers(t.clone(), &c.text, text)?,
            final_norm: candle_nn::layer_norm(th, c.text.layer_norm_eps, t.pp("final_layer_norm"))?,
            text_projection: Linear::load(vb.pp("text_projection"), th, c.projection_dim, false)?,
            patch,
            class: ve.get(vh, "class_embedding")?,
            vision_positions: ve.get((patches + 1, vh), "position_embedding.weight")?,
            pre_norm: candle_nn::layer_norm(vh, c.vision.layer_norm_eps, v.pp("pre_layrnorm"))?,
            vision_layers: layers(v.clone(), &c.vision, vision)?,
            post_norm: candle_nn::layer_norm(vh, c.vision.layer_norm_eps, v.pp("post_layernorm"))?,
            visual_projection: Linear::load_as(
                vb.pp("visual_projection"),
                vh,
                c.projection_dim,
                false,
                vision,
            )?,
            patch_size: p,
            device: vb.device().clone(),
        })
    }

    /// Token ids (with start and end tokens) → projected text features (1, projection).
    /// Pools at the largest id (the end token), as the OpenAI checkpoints do.
    pub fn text_features(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        let n = ids.len();
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let mut x = self
            .token_embedding
            .forward(&input)?
            .broadcast_add(&self.text_positions.narrow(0, 0, n)?)?;
        let mask: Vec<f32> = (0..n)
            .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (n, n), &self.device)?;
        for layer in &self.text_layers {
            x = layer.forward(&x, Some(&mask))?;
        }
        let x = self.final_norm.forward(&x)?;
        let end = ids
            .iter()
            .enumerate()
            .max_by_key(|(i, id)| (**id, std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
            .unwrap_or(0);
        self.text_projection.forward(&x.get(0)?.narrow(0, end, 1)?)
    }

    /// Pixels (1, 3, size, size) → projected image features (1, projection).
    pub fn image_features(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let (_, c, hgt, wid) = pixels.dims4()?;
        let p = self.patch_size;
        let (gh, gw) = (hgt / p, wid / p);
        // Unfold into (patches, c·p·p) in the conv weight's (c, y, x) order.
        let patches = pixels
            .reshape((c, gh, p, gw, p))?
            .permute((1, 3, 0, 2, 4))?
            .reshape((gh * gw, c * p * p))?;
        let embedded = self.patch.forward(&patches.contiguous()?)?;
        let x = Tensor::cat(&[&self.class.unsqueeze(0)?, &embedded], 0)?
            .broadcast_add(&self.vision_positions)?
            .unsqueeze(0)?;
        let mut x = self.pre_norm.forward(&x)?;
        for layer in &self.vision_layers {
            x = layer.forward(&x, None)?;
        }
        let pooled = self.post_norm.forward(&x.get(0)?.narrow(0, 0, 1)?)?;
        self.visual_projection.forward(&pooled)
    }
}

/// Unit length along the last dimension.
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}
