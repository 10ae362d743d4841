//! MusicGen's decoding loop, as transformers' `MusicgenForConditionalGeneration.generate`
//! runs it: the prompt through T5 (and the projection), then the decoder LM one step at a
//! time with the codebook delay pattern and classifier-free guidance as one batch of two;
//! tokens are sampled (or forced, to compare precisions) and the delay is undone.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};
use candle_core::{DType, Module, Tensor};

use super::sampling::{guide, Sampler, SamplingConfig};
use super::MusicGen;

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

impl MusicGen {
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
}
