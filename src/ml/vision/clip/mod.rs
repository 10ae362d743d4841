//! CLIP zero-shot scoring (`openai/clip-vit-base-patch32` by default): how well a photo
//! matches each label text. The network is `model`; this file reads transformers'
//! `config.json`, tokenizes, and keeps the label embeddings once computed.
pub mod model;

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use model::{l2_normalize, ClipConfig, ClipModel, TowerConfig};
use serde::Deserialize;

use crate::ml::nn::device::Precision;
use crate::ml::vision::preprocess::{clip_pixels, to_tensor};
use crate::ml::weights::hub::ModelFiles;

/// transformers' `CLIPTextConfig`; defaults are transformers' (= ViT-B/32's text tower).
#[derive(Debug, Deserialize)]
#[serde(default)]
struct TextCfg {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    hidden_act: String,
    layer_norm_eps: f64,
}

impl Default for TextCfg {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            max_position_embeddings: 77,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

/// transformers' `CLIPVisionConfig`; defaults are transformers' (= ViT-B/32).
#[derive(Debug, Deserialize)]
#[serde(default)]
struct VisionCfg {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    image_size: usize,
    patch_size: usize,
    hidden_act: String,
    layer_norm_eps: f64,
}

impl Default for VisionCfg {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            image_size: 224,
            patch_size: 32,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

/// The default CLIP.
pub const DEFAULT_MODEL: &str = "openai/clip-vit-base-patch32";

/// The parts of transformers' `CLIPConfig` the model needs; defaults are transformers'.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct ClipJson {
    text_config: TextCfg,
    vision_config: VisionCfg,
    projection_dim: usize,
    logit_scale_init_value: f32,
}

impl Default for ClipJson {
    fn default() -> Self {
        Self {
            text_config: TextCfg::default(),
            vision_config: VisionCfg::default(),
            projection_dim: 512,
            logit_scale_init_value: 2.6592,
        }
    }
}

impl ClipJson {
    pub fn to_config(&self) -> Result<ClipConfig> {
        for act in [&self.text_config.hidden_act, &self.vision_config.hidden_act] {
            if act != "quick_gelu" {
                bail!("CLIP models with hidden_act {act:?} are not supported (only quick_gelu)");
            }
        }
        let t = &self.text_config;
        let v = &self.vision_config;
        let tower = |hidden_size,
                     intermediate_size,
                     num_hidden_layers,
                     num_attention_heads,
                     layer_norm_eps| {
            TowerConfig {
                hidden_size,
                intermediate_size,
                num_hidden_layers,
                num_attention_heads,
                layer_norm_eps,
            }
        };
        Ok(ClipConfig {
            text: tower(
                t.hidden_size,
                t.intermediate_size,
                t.num_hidden_layers,
                t.num_attention_heads,
                t.layer_norm_eps,
            ),
            vocab_size: t.vocab_size,
            max_position_embeddings: t.max_position_embeddings,
            vision: tower(
                v.hidden_size,
                v.intermediate_size,
                v.num_hidden_layers,
                v.num_attention_heads,
                v.layer_norm_eps,
            ),
            image_size: v.image_size,
            patch_size: v.patch_size,
            projection_dim: self.projection_dim,
        })
    }
}

pub struct ClipScorer {
    model: ClipModel,
    tokenizer: tokenizers::Tokenizer,
    image_size: usize,
    max_tokens: usize,
    logit_scale: f32,
    /// Normalised text embeddings by label text: computed once per process.
    cache: Mutex<HashMap<String, Vec<f32>>>,
    device: Device,
}

impl ClipScorer {
    /// Activations are f32; the image tower's projections keep `precision` as
    /// `Precision::for_gemm` says (8-bit on a CPU when asked for), the text tower is f32.
    pub fn load(files: &ModelFiles, precision: Precision, device: &Device) -> Result<Self> {
        let json: ClipJson = files.read_config()?;
        let cfg = json.to_config()?;
        let tokenizer = files.tokenizer()?;
        let vb = files.var_builder(DType::F32, device)?;
        let vision = precision.for_gemm(device, DType::F32);
        let model = ClipModel::load(vb.clone(), &cfg, vision).with_context(|| files.mismatch())?;
        let logit_scale = if vb.contains_tensor("logit_scale") {
            vb.get((), "logit_scale")?.to_scalar::<f32>()?
        } else {
            json.logit_scale_init_value
        };
        Ok(Self {
            model,
            tokenizer,
            image_size: cfg.image_size,
            max_tokens: json.text_config.max_position_embeddings,
            logit_scale: logit_scale.exp(),
            cache: Mutex::new(HashMap::new()),
            device: device.clone(),
        })
    }

    /// Token ids of a label text, with the start and end tokens.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| anyhow::anyhow!("cannot tokenize {text:?}: {e}"))?;
        let ids = enc.get_ids().to_vec();
        if ids.len() > self.max_tokens {
            bail!(
                "label {text:?} is longer than CLIP's {} tokens",
                self.max_tokens
            );
        }
        Ok(ids)
    }

    /// Unit-length embeddings of `texts`, (n, projection_dim); cached per text.
    pub fn text_embeddings(&self, texts: &[&str]) -> Result<Tensor> {
        let mut rows = Vec::with_capacity(texts.len());
        for text in texts {
            let cached = self.cache.lock().ok().and_then(|c| c.get(*text).cloned());
            let row = match cached {
                Some(r) => r,
                None => {
                    let ids = self.token_ids(text)?;
                    let e = l2_normalize(&self.model.text_features(&ids)?)?;
                    let r: Vec<f32> = e.flatten_all()?.to_vec1()?;
                    if let Ok(mut c) = self.cache.lock() {
                        c.insert(text.to_string(), r.clone());
                    }
                    r
                }
            };
            rows.push(Tensor::new(row.as_slice(), &self.device)?);
        }
        Ok(Tensor::stack(&rows, 0)?)
    }

    /// Unit-length image embedding (1, projection_dim) of a pixel tensor.
    pub fn image_embedding(&self, pixels: &Tensor) -> Result<Tensor> {
        Ok(l2_normalize(&self.model.image_features(pixels)?)?)
    }

    /// The processor's pixel tensor for a photo.
    pub fn pixels(&self, photo: &RgbImage) -> Result<Tensor> {
        let s = self.image_size;
        Ok(to_tensor(
            clip_pixels(photo, s as u32, s as u32),
            s,
            s,
            &self.device,
        )?)
    }

    /// CLIP's logits (scale × cosine) of one image embedding against each text.
    pub fn logits(&self, image: &Tensor, texts: &[&str]) -> Result<Vec<f32>> {
        let text = self.text_embeddings(texts)?;
        let cos = image.matmul(&text.t()?)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(cos.into_iter().map(|c| c * self.logit_scale).collect())
    }
}

/// Softmax of logits: the zero-shot probability of each label within its group.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}
