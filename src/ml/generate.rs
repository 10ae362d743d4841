//! Text → codes → waveform: the whole MusicGen pipeline behind one API, used by the CLI
//! and by the server's worker. Mirrors transformers' `MusicgenForConditionalGeneration
//! .generate`: T5 → (projection) → decoder LM with the codebook delay pattern and
//! classifier-free guidance as one batch of two → EnCodec.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Module, Tensor};
use serde::Deserialize;

use super::device::Precision;
use super::encodec::{EncodecConfig, EncodecDecoder};
use super::hub::ModelFiles;
use super::linear::Linear;
use super::musicgen::{DecoderConfig, MusicgenDecoder};
use super::sampling::{guide, Sampler, SamplingConfig};
use super::t5::{T5Config, T5Encoder};

/// Longest song we make, in seconds.
pub const MAX_SECONDS: f64 = 30.0;

/// transformers' `MusicgenConfig`: the three sub-models' configs.
#[derive(Debug, Clone, Deserialize)]
pub struct MusicgenConfig {
    pub text_encoder: T5Config,
    pub audio_encoder: EncodecConfig,
    pub decoder: DecoderConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Length {
    Seconds(f64),
    /// Decoder steps, as in transformers' `generate(max_new_tokens=…)`.
    MaxNewTokens(usize),
}

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub length: Length,
    /// Classifier-free guidance scale; ≤ 1 turns guidance off.
    pub guidance_scale: f64,
    pub sampling: SamplingConfig,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            length: Length::Seconds(10.0),
            guidance_scale: 3.0,
            sampling: SamplingConfig::default(),
        }
    }
}

/// Reported after every decoder step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub step: usize,
    pub total: usize,
}

/// Returned (inside `anyhow::Error`) when the cancel flag stops a generation.
#[derive(Debug, thiserror::Error)]
#[error("generation cancelled")]
pub struct Cancelled;

/// A finished song.
pub struct Song {
    /// codes[codebook][frame], after the delay pattern is undone.
    pub codes: Vec<Vec<u32>>,
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

pub struct MusicGen {
    text: T5Encoder,
    enc_to_dec: Option<Linear>,
    decoder: MusicgenDecoder,
    codec: EncodecDecoder,
    device: Device,
}

impl MusicGen {
    /// Load from a directory or hub repo id. `precision` applies to the decoder LM, where
    /// the time goes; T5 and EnCodec stay f32 (T5 overflows in f16).
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
        )
        .with_context(mismatch)?;
        Ok(Self {
            text,
            enc_to_dec,
            decoder,
            codec,
            device: device.clone(),
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.codec.config().sampling_rate
    }

    pub fn num_codebooks(&self) -> usize {
        self.decoder.config().num_codebooks
    }

    /// Length → decoder steps. A duration gives round(seconds × frame rate) frames, plus
    /// the codebooks − 1 extra steps the delay pattern needs.
    pub fn max_new_tokens(&self, length: &Length) -> Result<usize> {
        let k = self.num_codebooks();
        let rate = self.codec.config().frame_rate();
        let max_frames = (MAX_SECONDS * rate).round() as usize;
        let n = match *length {
            Length::Seconds(s) => {
                if !(s.is_finite() && s > 0.0 && s <= MAX_SECONDS) {
                    bail!(
                        "duration must be more than 0 and at most {MAX_SECONDS} seconds, got {s}"
                    );
                }
                (s * rate).round().max(1.0) as usize + k - 1
            }
            Length::MaxNewTokens(n) => n,
        };
        // The delay pattern needs 2K − 1 positions (start token included) to be built.
        let min = 2 * k - 2;
        if n < min {
            bail!("max-new-tokens must be at least {min} for a {k}-codebook model, got {n}");
        }
        if n + 1 - k > max_frames {
            bail!(
                "that is longer than {MAX_SECONDS} seconds ({} frames, at most {max_frames})",
                n + 1 - k
            );
        }
        let max_pos = self.decoder.config().max_position_embeddings;
        if n + 1 > max_pos {
            bail!("max-new-tokens {n} exceeds the model's {max_pos} positions");
        }
        Ok(n)
    }

    /// The T5 encoder's last hidden state for a prompt, (1, T, d_model).
    pub fn encode_prompt(&mut self, prompt: &str) -> Result<Tensor> {
        let ids = self.text.tokenize(prompt)?;
        self.text.encode_ids(&ids)
    }

    /// Prompt → audio codes, reporting each decoder step and stopping when `cancel` is set.
    pub fn generate_codes(
        &mut self,
        prompt: &str,
        opts: &GenerateOptions,
        on_step: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<Vec<Vec<u32>>> {
        opts.sampling.validate()?;
        let n = self.max_new_tokens(&opts.length)?;
        let mut sampler = Sampler::new(opts.sampling.clone());
        let mut choose = |_step: usize, _codebook: usize, logits: &[f32]| sampler.sample(logits);
        self.decode_loop(prompt, n, opts.guidance_scale, &mut choose, on_step, cancel)
    }

    /// Feed `codes` (as produced by `generate_codes` for `prompt`) back through the decoder
    /// and return the guided logits it gives at every sampled position, in step order.
    /// Used to compare precisions (f32 vs f16/bf16) on identical inputs.
    pub fn teacher_forced_logits(
        &mut self,
        prompt: &str,
        codes: &[Vec<u32>],
        guidance_scale: f64,
    ) -> Result<Vec<Vec<f32>>> {
        let k = self.num_codebooks();
        if codes.len() != k || codes.iter().any(|c| c.len() != codes[0].len()) {
            bail!("expected {k} codebooks of equal length");
        }
        let n = codes[0].len() + k - 1;
        let mut rows = Vec::new();
        let mut choose = |step: usize, c: usize, logits: &[f32]| {
            rows.push(logits.to_vec());
            // Position step+1 of codebook c holds frame step − c.
            codes[c][step - c]
        };
        self.decode_loop(
            prompt,
            n,
            guidance_scale,
            &mut choose,
            &mut |_| {},
            &AtomicBool::new(false),
        )?;
        Ok(rows)
    }

    /// The decoder loop shared by sampling and teacher forcing: `choose(step, codebook,
    /// guided_logits)` picks each token that the delay pattern leaves free.
    fn decode_loop(
        &mut self,
        prompt: &str,
        n: usize,
        guidance_scale: f64,
        choose: &mut dyn FnMut(usize, usize, &[f32]) -> u32,
        on_step: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<Vec<Vec<u32>>> {
        if !guidance_scale.is_finite() || guidance_scale < 0.0 {
            bail!("guidance must be a number ≥ 0, got {guidance_scale}");
        }
        let cfg = self.decoder.config().clone();
        let (k, vocab, pad) = (cfg.num_codebooks, cfg.vocab_size, cfg.pad_id());

        let enc = self.encode_prompt(prompt)?;
        let enc = match &self.enc_to_dec {
            Some(p) => p.forward(&enc)?,
            None => enc,
        };
        // Guidance runs the conditional and the unconditional pass as one batch of two; the
        // unconditional text is all zeros with an all-zero attention mask (transformers).
        let guided = guidance_scale > 1.0;
        let t = enc.dim(1)?;
        let (enc, mask) = if guided {
            let mask = Tensor::new(&[1f32, 0.0], &self.device)?
                .reshape((2, 1))?
                .repeat((1, t))?;
            (Tensor::cat(&[&enc, &enc.zeros_like()?], 0)?, mask)
        } else {
            (enc, Tensor::ones((1, t), DType::F32, &self.device)?)
        };
        let batch = enc.dim(0)?;
        let len = n + 1; // positions, the start token included
        let mut state = self.decoder.start(&enc, Some(&mask), len)?;

        // The delay pattern: codebook c is shifted right by c, so at position p it is
        // padding when p ≤ c (start) or p > len − k + c (end).
        let forced = |c: usize, p: usize| p <= c || p > len - k + c;
        let mut seq = vec![vec![pad; len]; k];
        let mut guided_row = Vec::with_capacity(vocab);
        let scale = guidance_scale as f32;
        for step in 0..n {
            if cancel.load(Ordering::Relaxed) {
                return Err(Cancelled.into());
            }
            let column: Vec<u32> = (0..k).map(|c| seq[c][step]).collect();
            let tokens =
                Tensor::from_vec(column, (1, k, 1), &self.device)?.repeat((batch, 1, 1))?;
            let logits = self.decoder.forward(&tokens, &mut state)?;
            let logits: Vec<f32> = logits.flatten_all()?.to_vec1()?;
            let p = step + 1;
            for (c, row) in seq.iter_mut().enumerate() {
                row[p] = if forced(c, p) {
                    pad
                } else {
                    let cond = &logits[c * vocab..(c + 1) * vocab];
                    if guided {
                        let uncond = &logits[(k + c) * vocab..(k + c + 1) * vocab];
                        guide(cond, uncond, scale, &mut guided_row);
                        choose(step, c, &guided_row)
                    } else {
                        choose(step, c, cond)
                    }
                };
            }
            on_step(Progress {
                step: step + 1,
                total: n,
            });
        }
        let frames = len - k;
        Ok((0..k)
            .map(|c| seq[c][c + 1..c + 1 + frames].to_vec())
            .collect())
    }

    /// Codes → mono samples (frames × hop of them).
    pub fn decode(&self, codes: &[Vec<u32>]) -> Result<Vec<f32>> {
        self.codec.decode(codes)
    }

    /// Prompt → song.
    pub fn generate(
        &mut self,
        prompt: &str,
        opts: &GenerateOptions,
        on_step: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<Song> {
        let codes = self.generate_codes(prompt, opts, on_step, cancel)?;
        let samples = self.decode(&codes)?;
        Ok(Song {
            codes,
            samples,
            sample_rate: self.sample_rate(),
        })
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
