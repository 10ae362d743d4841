//! MusicGen's decoding loop, as transformers' `MusicgenForConditionalGeneration.generate`
//! runs it: the prompt through T5 (and the projection), then the decoder LM one step at a
//! time with the codebook delay pattern and classifier-free guidance as one batch of two;
//! tokens are sampled (or forced, to compare precisions) and the delay is undone.
//!
//! A song may continue earlier codes (transformers' `decoder_input_ids`: they go in with
//! the first forward pass and come back at the start of the result), and a song longer
//! than one window is made window by window (`windows`), each prompted with the end of the
//! last. The steps themselves are `decoding`'s, which also runs many songs at once.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};
use candle_core::{DType, Module, Tensor};

pub use super::decoding::Progress;
use super::decoding::{Chooser, Condition, Decoding, SongPlan};
use super::sampling::{Sampler, SamplingConfig};
use super::windows::{Window, Windows};
use super::{MusicGen, MAX_SECONDS};

#[derive(Debug, Clone, PartialEq)]
pub enum Length {
    /// The whole song's length, a continued prompt included.
    Seconds(f64),
    /// Decoder steps after the prompt, as in transformers' `generate(max_new_tokens=…)`:
    /// the song gets `n + 1 − codebooks` frames more than the prompt.
    MaxNewTokens(usize),
}

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub length: Length,
    /// Classifier-free guidance scale; ≤ 1 turns guidance off.
    pub guidance_scale: f64,
    pub sampling: SamplingConfig,
    /// Codes to continue, one row of frames per codebook (what `--codes-out` writes); empty
    /// for a new song.
    pub prompt_codes: Vec<Vec<u32>>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            length: Length::Seconds(10.0),
            guidance_scale: 3.0,
            sampling: SamplingConfig::default(),
            prompt_codes: Vec::new(),
        }
    }
}

/// Returned (inside `anyhow::Error`) when the cancel flag stops a generation.
#[derive(Debug, thiserror::Error)]
#[error("generation cancelled")]
pub struct Cancelled;

/// Called after each step with the progress and the song's complete frames so far; an
/// error stops the generation.
pub type OnStep<'a> = dyn FnMut(Progress, &[Vec<u32>]) -> Result<()> + 'a;

impl MusicGen {
    /// The windows that make a song of `length` after `prompt_frames` frames.
    pub fn plan(&self, length: &Length, prompt_frames: usize) -> Result<SongPlan> {
        let k = self.num_codebooks();
        let rate = self.codec.config().frame_rate();
        let max_frames = (MAX_SECONDS * rate).round() as usize;
        let total_frames = match *length {
            Length::Seconds(s) => {
                if !(s.is_finite() && s > 0.0 && s <= MAX_SECONDS) {
                    bail!(
                        "duration must be more than 0 and at most {MAX_SECONDS} seconds, got {s}"
                    );
                }
                (s * rate).round().max(1.0) as usize
            }
            Length::MaxNewTokens(n) => {
                // The delay pattern needs 2K − 1 positions (start token included).
                let min = 2 * k - 2;
                if n < min {
                    bail!(
                        "max-new-tokens must be at least {min} for a {k}-codebook model, got {n}"
                    );
                }
                prompt_frames + n + 1 - k
            }
        };
        if total_frames > max_frames {
            bail!("that is longer than {MAX_SECONDS} seconds ({total_frames} frames, at most {max_frames})");
        }
        if total_frames <= prompt_frames {
            bail!(
                "the prompt codes are already {:.1} s long: ask for a longer song",
                prompt_frames as f64 / rate
            );
        }
        if total_frames < k - 1 {
            bail!(
                "a song needs at least {} frames for a {k}-codebook model",
                k - 1
            );
        }
        let cfg = self.decoder.config();
        let windows = Windows::for_model(rate, cfg.max_position_embeddings, k)
            .plan(prompt_frames, total_frames);
        let steps = windows.iter().map(|w| w.steps(k)).sum();
        Ok(SongPlan {
            total_frames,
            windows,
            steps,
        })
    }

    /// A song ready to decode (`MusicGen::step`): its prompt through T5, its windows
    /// planned, its sampler seeded.
    pub fn start_decoding(&mut self, prompt: &str, opts: &GenerateOptions) -> Result<Decoding> {
        opts.sampling.validate()?;
        let song = self.check_prompt_codes(&opts.prompt_codes)?;
        let plan = self.plan(&opts.length, song[0].len())?;
        let cond = self.condition(prompt, opts.guidance_scale)?;
        let chooser = Chooser::Sample(Box::new(Sampler::new(opts.sampling.clone())));
        Ok(Decoding::new(self, cond, plan, song, chooser))
    }

    /// Prompt → audio codes (the prompt codes first), reporting each decoder step and
    /// stopping when `cancel` is set.
    pub fn generate_codes(
        &mut self,
        prompt: &str,
        opts: &GenerateOptions,
        on_step: &mut OnStep,
        cancel: &AtomicBool,
    ) -> Result<Vec<Vec<u32>>> {
        let mut song = self.start_decoding(prompt, opts)?;
        while !song.is_done() {
            if cancel.load(Ordering::Relaxed) {
                return Err(Cancelled.into());
            }
            self.step(&mut [&mut song])?;
            on_step(song.progress(), song.song())?;
        }
        Ok(song.into_song())
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
        let cond = self.condition(prompt, guidance_scale)?;
        let window = Window {
            context: 0,
            new: codes[0].len(),
        };
        let plan = SongPlan {
            total_frames: window.new,
            steps: window.steps(k),
            windows: vec![window],
        };
        let chooser = Chooser::Forced {
            codes: codes.to_vec(),
            logits: Vec::new(),
        };
        let mut song = Decoding::new(self, cond, plan, vec![Vec::new(); k], chooser);
        while !song.is_done() {
            self.step(&mut [&mut song])?;
        }
        match song.into_chooser() {
            Chooser::Forced { logits, .. } => Ok(logits),
            Chooser::Sample(_) => bail!("teacher forcing sampled instead"),
        }
    }

    /// Prompt codes must be one row per codebook, equally long, each code in the vocabulary.
    /// Returns them as the start of the song (empty rows for none).
    fn check_prompt_codes(&self, codes: &[Vec<u32>]) -> Result<Vec<Vec<u32>>> {
        let k = self.num_codebooks();
        if codes.is_empty() {
            return Ok(vec![Vec::new(); k]);
        }
        let vocab = self.decoder.config().vocab_size;
        if codes.len() != k {
            bail!(
                "the prompt codes have {} codebooks; this model has {k}",
                codes.len()
            );
        }
        if codes.iter().any(|c| c.len() != codes[0].len()) {
            bail!("the prompt codes' codebooks differ in length");
        }
        if let Some(bad) = codes.iter().flatten().find(|&&c| c as usize >= vocab) {
            bail!("prompt code {bad} is outside this model's {vocab} codes");
        }
        Ok(codes.to_vec())
    }

    /// T5 (and the projection) over the prompt; with guidance, a second, unconditional row:
    /// all zeros with an all-zero attention mask (transformers).
    fn condition(&mut self, prompt: &str, guidance_scale: f64) -> Result<Condition> {
        if !guidance_scale.is_finite() || guidance_scale < 0.0 {
            bail!("guidance must be a number ≥ 0, got {guidance_scale}");
        }
        let enc = self.encode_prompt(prompt)?;
        let enc = match &self.enc_to_dec {
            Some(p) => p.forward(&enc)?,
            None => enc,
        };
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
        Ok(Condition {
            enc,
            mask,
            guided,
            scale: guidance_scale as f32,
        })
    }
}
