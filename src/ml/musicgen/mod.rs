//! MusicGen, text → song (transformers' `MusicgenForConditionalGeneration`): the T5 text
//! encoder (`t5`), an optional projection, the decoder LM over 4 codebooks (`decoder`),
//! decoded step by step with the delay pattern, guidance and sampling (`generate`,
//! `sampling`), then EnCodec turns the codes into a waveform (`encodec`), written as WAV
//! (`wav`). This file holds the config, the loader and the model's small API.
pub mod decoder;
pub mod decoding;
pub mod encodec;
pub mod generate;
pub mod mp3;
pub mod sampling;
pub mod t5;
pub mod wav;
pub mod windows;

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::ml::nn::device::Precision;
use crate::ml::nn::linear::Linear;
use crate::ml::weights::hub::ModelFiles;
use decoder::{DecoderConfig, MusicgenDecoder};
use encodec::{EncodecConfig, EncodecDecoder};
use t5::{T5Config, T5Encoder};

/// The default model (`facebook/musicgen-medium` and `-large` load the same way).
pub const DEFAULT_MODEL: &str = "facebook/musicgen-small";

/// Longest song we make, in seconds: the length the upload page and API offer.
pub const MAX_SECONDS: f64 = crate::api::types::MAX_DURATION_S as f64;

/// A song's audio codes as a file (`generate --codes-out`, `--prompt-codes`, and each song's
/// `codes.json`): one row of frames per codebook.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct CodesFile {
    pub codes: Vec<Vec<u32>>,
}

/// transformers' `MusicgenConfig`: the three sub-models' configs.
#[derive(Debug, Clone, Deserialize)]
pub struct MusicgenConfig {
    pub text_encoder: T5Config,
    pub audio_encoder: EncodecConfig,
    pub decoder: DecoderConfig,
}

pub struct MusicGen {
    text: T5Encoder,
    enc_to_dec: Option<Linear>,
    decoder: MusicgenDecoder,
    /// Shared, so a song can be decoded in chunks while the decoder is busy making it.
    codec: Arc<EncodecDecoder>,
    device: Device,
}

impl MusicGen {
    /// Load from a directory or hub repo id. `precision` applies to the decoder LM, where
    /// the time goes; T5 and EnCodec stay f32 (T5 overflows in f16), but for EnCodec's
    /// LSTM on the CPU, which keeps its recurrent weights in f16 at any precision but f32
    /// (`encodec::recurrent_precision`).
    pub fn load(files: &ModelFiles, precision: Precision, device: &Device) -> Result<Self> {
        // On the CPU only the projection weights change precision (activations stay f32,
        // see host_matmul); elsewhere the whole decoder runs in the chosen dtype.
        let dtype = if device.is_cpu() {
            DType::F32
        } else {
            precision.dtype()
        };
        let cfg: MusicgenConfig = files.read_config()?;
        check_config(&cfg)?;
        let tokenizer = files.tokenizer()?;
        let vb = files.var_builder(dtype, device)?;
        let mismatch = || files.mismatch();
        let text = T5Encoder::load(
            vb.pp("text_encoder").set_dtype(DType::F32),
            &cfg.text_encoder,
            tokenizer,
        )
        .with_context(mismatch)?;
        let enc_to_dec = if needs_projection(&cfg) {
            let p = vb.pp("enc_to_dec_proj").set_dtype(DType::F32);
            Some(
                Linear::load(p, cfg.text_encoder.d_model, cfg.decoder.hidden_size, true)
                    .with_context(mismatch)?,
            )
        } else {
            None
        };
        let decoder = MusicgenDecoder::load(vb.pp("decoder"), &cfg.decoder, precision)
            .with_context(mismatch)?;
        let codec = EncodecDecoder::load(
            vb.pp("audio_encoder"),
            &cfg.audio_encoder,
            cfg.decoder.num_codebooks,
            precision,
        )
        .with_context(mismatch)?;
        Ok(Self {
            text,
            enc_to_dec,
            decoder,
            codec: Arc::new(codec),
            device: device.clone(),
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.codec.config().sampling_rate
    }

    /// Bytes of weights one decoder step reads (see `MusicgenDecoder::step_weight_bytes`).
    pub fn step_weight_bytes(&self) -> usize {
        self.decoder.step_weight_bytes()
    }

    pub fn num_codebooks(&self) -> usize {
        self.decoder.config().num_codebooks
    }

    /// Audio frames (codes per codebook) per second.
    pub fn frame_rate(&self) -> f64 {
        self.codec.config().frame_rate()
    }

    /// The T5 encoder's last hidden state for a prompt, (1, T, d_model).
    pub fn encode_prompt(&mut self, prompt: &str) -> Result<Tensor> {
        let ids = self.text.tokenize(prompt)?;
        self.text.encode_ids(&ids)
    }

    /// Songs started from now on keep their attention caches in one shared pool, as they
    /// do on a GPU (where it is how a pass over many songs stays a few kernels per layer):
    /// on the CPU, for tests and comparisons.
    pub fn pool_attention_caches(&mut self) -> Result<()> {
        Ok(self.decoder.pool_caches()?)
    }

    /// The EnCodec decoder, to decode chunks of a song while it is being made.
    pub fn codec(&self) -> Arc<EncodecDecoder> {
        self.codec.clone()
    }

    /// Codes → mono samples (frames × hop of them).
    pub fn decode(&self, codes: &[Vec<u32>]) -> Result<Vec<f32>> {
        self.codec.decode(codes)
    }

    /// `decode` in parts of bounded memory, for songs of any length
    /// (`EncodecDecoder::decode_whole_song`).
    pub fn decode_whole_song(&self, codes: &[Vec<u32>]) -> Result<Vec<f32>> {
        self.codec.decode_whole_song(codes)
    }
}

fn needs_projection(cfg: &MusicgenConfig) -> bool {
    cfg.text_encoder.d_model != cfg.decoder.hidden_size
        && cfg.decoder.cross_attention_hidden_size.is_none()
}

/// Refuse configs we would otherwise turn into noise.
fn check_config(cfg: &MusicgenConfig) -> Result<()> {
    let d = &cfg.decoder;
    if d.audio_channels == 2 {
        bail!(
            "stereo MusicGen models ({} codebooks) are not supported yet: use a mono model such as facebook/musicgen-small",
            d.num_codebooks
        );
    }
    if d.audio_channels != 1 || cfg.audio_encoder.audio_channels != 1 {
        bail!("only mono MusicGen models are supported");
    }
    if d.num_codebooks == 0
        || d.num_attention_heads == 0
        || !d.hidden_size.is_multiple_of(d.num_attention_heads)
    {
        bail!("config.json: decoder hidden_size must be a multiple of num_attention_heads");
    }
    if d.vocab_size != cfg.audio_encoder.codebook_size {
        bail!(
            "config.json: the decoder's vocab_size ({}) differs from EnCodec's codebook_size ({})",
            d.vocab_size,
            cfg.audio_encoder.codebook_size
        );
    }
    if d.pad_id() as usize != d.vocab_size {
        bail!(
            "config.json: the decoder's pad_token_id must be vocab_size ({})",
            d.vocab_size
        );
    }
    Ok(())
}
