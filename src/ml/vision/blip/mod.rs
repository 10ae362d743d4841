//! BLIP image captioning (transformers' `BlipForConditionalGeneration`): the ViT in
//! `vision` reads the photo (`vision_model.*`), then the caption decoder in `text` writes
//! greedily from `[DEC]` until `[SEP]`, exactly as transformers' `generate(do_sample=False)`.
pub mod text;
pub mod vision;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, D};
use image::RgbImage;
use serde::Deserialize;

use crate::ml::nn::device::Precision;
use crate::ml::vision::preprocess::{blip_pixels, to_tensor};
use crate::ml::weights::hub::ModelFiles;
use text::{BlipTextConfig, TextDecoder};
use vision::{BlipVisionConfig, VisionModel};

/// The default captioner (`large`; `Salesforce/blip-image-captioning-base` also works).
pub const DEFAULT_MODEL: &str = "Salesforce/blip-image-captioning-large";

#[derive(Debug, Clone, Deserialize)]
pub struct BlipConfig {
    pub text_config: BlipTextConfig,
    pub vision_config: BlipVisionConfig,
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
        // On the CPU activations are f32 whatever the weights (see `Precision::for_gemm` for
        // the ViT's); on a GPU everything is in the chosen dtype.
        let dtype = if device.is_cpu() {
            DType::F32
        } else {
            precision.dtype()
        };
        let vb = files.var_builder(dtype, device)?;
        let mismatch = || files.mismatch();
        let vision = VisionModel::load(
            vb.pp("vision_model"),
            &cfg.vision_config,
            precision.for_gemm(device, dtype),
        )
        .with_context(mismatch)?;
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

    /// The logits (vocab) before each of `tokens`, fed one after another from [DEC]:
    /// teacher forcing, to compare precisions position by position.
    pub fn logits_along(&self, pixels: &Tensor, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        let image = self.image_states(pixels)?;
        let mut state = self.text.start(&image)?;
        let feed = std::iter::once(self.text.config().bos_token_id).chain(tokens.iter().copied());
        feed.take(tokens.len())
            .map(|t| Ok(self.text.forward(&[t], &mut state)?.to_vec1::<f32>()?))
            .collect()
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
