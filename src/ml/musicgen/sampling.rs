//! Choosing the next token from logits, in the order transformers applies its warpers:
//! temperature → top-k → top-p, then a draw (or argmax when greedy).

use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// Argmax decoding (the same tokens as transformers' `do_sample=False`).
    pub greedy: bool,
    pub temperature: f64,
    /// Keep the k most likely tokens; 0 disables.
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p; 0 (or ≥ 1) disables.
    pub top_p: f64,
    pub seed: u64,
}

impl Default for SamplingConfig {
    /// MusicGen's own generation defaults.
    fn default() -> Self {
        Self {
            greedy: false,
            temperature: 1.0,
            top_k: 250,
            top_p: 0.0,
            seed: 0,
        }
    }
}

impl SamplingConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.greedy || self.temperature.is_finite() && self.temperature > 0.0) {
            bail!(
                "temperature must be a positive number, got {}",
                self.temperature
            );
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            bail!("top-p must be between 0 and 1, got {}", self.top_p);
        }
        Ok(())
    }
}

pub struct Sampler {
    cfg: SamplingConfig,
    rng: StdRng,
    // Reused between calls: sampling runs once per codebook per decoder step.
    scratch: Vec<(f32, u32)>,
}

impl Sampler {
    pub fn new(cfg: SamplingConfig) -> Self {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Self {
            cfg,
            rng,
            scratch: Vec::new(),
        }
    }

    /// One token id from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.cfg.greedy || self.cfg.top_k == 1 {
            return argmax(logits);
        }
        let t = self.cfg.temperature as f32;
        let cand = &mut self.scratch;
        cand.clear();
        cand.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_finite())
                .map(|(i, &l)| (l / t, i as u32)),
        );
        if cand.is_empty() {
            return argmax(logits);
        }
        let by_logit_desc =
            |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let k = self.cfg.top_k;
        if k > 0 && k < cand.len() {
            cand.select_nth_unstable_by(k - 1, by_logit_desc);
            cand.truncate(k);
        }
        cand.sort_unstable_by(by_logit_desc);
        // Softmax over the survivors (max first, so exp never overflows).
        let max = cand[0].0;
        let mut total = 0f32;
        for c in cand.iter_mut() {
            c.0 = (c.0 - max).exp();
            total += c.0;
        }
        let p = self.cfg.top_p as f32;
        if p > 0.0 && p < 1.0 {
            let mut acc = 0f32;
            let mut keep = cand.len();
            for (i, c) in cand.iter().enumerate() {
                acc += c.0 / total;
                if acc >= p {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep);
            total = cand.iter().map(|c| c.0).sum();
        }
        let mut r = self.rng.random::<f32>() * total;
        for &(w, id) in cand.iter() {
            if r < w {
                return id;
            }
            r -= w;
        }
        cand[cand.len() - 1].1
    }
}

/// Index of the largest logit; the first one on ties, like torch.argmax.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// Classifier-free guidance on raw logits, as transformers does it:
/// `uncond + (cond − uncond) · scale`.
pub fn guide(cond: &[f32], uncond: &[f32], scale: f32, out: &mut Vec<f32>) {
    out.clear();
    out.extend(cond.iter().zip(uncond).map(|(c, u)| u + (c - u) * scale));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(top_k: usize, top_p: f64, seed: u64) -> SamplingConfig {
        SamplingConfig {
            greedy: false,
            temperature: 1.0,
            top_k,
            top_p,
            seed,
        }
    }

    #[test]
    fn argmax_takes_first_of_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
    }

    #[test]
    fn greedy_ignores_the_rng() {
        let mut s = Sampler::new(SamplingConfig {
            greedy: true,
            ..cfg(250, 0.0, 7)
        });
        for _ in 0..10 {
            assert_eq!(s.sample(&[0.1, 0.2, 5.0, 0.3]), 2);
        }
    }

    #[test]
    fn top_k_never_leaves_the_k_best() {
        let logits: Vec<f32> = (0..100).map(|i| i as f32 * 0.01).collect();
        let mut s = Sampler::new(cfg(3, 0.0, 1));
        for _ in 0..500 {
            assert!(s.sample(&logits) >= 97);
        }
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        // Probabilities ≈ [0.64, 0.24, 0.09, 0.03]: p = 0.8 keeps the first two.
        let logits = [3.0f32, 2.0, 1.0, 0.0];
        let mut s = Sampler::new(cfg(0, 0.8, 3));
        let mut seen = [0usize; 4];
        for _ in 0..2000 {
            seen[s.sample(&logits) as usize] += 1;
        }
        assert!(seen[0] > 0 && seen[1] > 0);
        assert_eq!(seen[2] + seen[3], 0);
    }

    #[test]
    fn same_seed_same_draws() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 7) % 11) as f32).collect();
        let draw = |seed| {
            let mut s = Sampler::new(cfg(20, 0.0, seed));
            (0..20).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    #[test]
    fn guidance_matches_the_formula() {
        let mut out = Vec::new();
        guide(&[2.0, 0.0], &[1.0, 1.0], 3.0, &mut out);
        assert_eq!(out, vec![4.0, -2.0]);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(SamplingConfig {
            temperature: 0.0,
            ..cfg(0, 0.0, 0)
        }
        .validate()
        .is_err());
        assert!(cfg(0, 1.5, 0).validate().is_err());
        assert!(cfg(250, 0.0, 0).validate().is_ok());
    }
}
