//! The models a worker keeps: each loads on first use (downloads are logged) and stays
//! loaded; the caption and CLIP steps can be turned off.

use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;

use crate::ml::hub::{self, ModelChoice};
use crate::ml::{tiny, Captioner, ClipScorer, MusicGen, Precision, WordReader};

/// Which models to use: a hub repo id or a local directory each; "none" turns the
/// caption or CLIP step off.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub musicgen: String,
    pub caption: ModelChoice,
    pub clip: ModelChoice,
    /// Reads the person's words for meaning; "none" leaves keywords only.
    pub text: ModelChoice,
    pub precision: Precision,
}

pub struct Models {
    cfg: ModelConfig,
    device: Device,
    musicgen: Option<MusicGen>,
    captioner: Option<Option<Captioner>>,
    clip: Option<Option<ClipScorer>>,
    words: Option<Option<WordReader>>,
}

impl Models {
    /// Nothing loads yet; `device` is opened once, at start (`DeviceChoice::open`).
    pub fn new(cfg: ModelConfig, device: Device) -> Self {
        Self {
            cfg,
            device,
            musicgen: None,
            captioner: None,
            clip: None,
            words: None,
        }
    }

    /// Whether songs from this MusicGen are noise (the tiny random model).
    pub fn is_noise(&self) -> bool {
        hub::resolve(&self.cfg.musicgen).is_ok_and(|f| tiny::is_tiny(&f.config))
    }

    pub fn musicgen(&mut self) -> Result<&mut MusicGen> {
        if self.musicgen.is_none() {
            let t = Instant::now();
            tracing::info!(model = %self.cfg.musicgen, "loading MusicGen (downloads on first use)");
            let files = hub::resolve(&self.cfg.musicgen)?;
            self.musicgen = Some(MusicGen::load(&files, self.cfg.precision, &self.device)?);
            tracing::info!(secs = t.elapsed().as_secs_f32(), "MusicGen ready");
        }
        self.musicgen.as_mut().context("MusicGen is not loaded")
    }

    pub fn captioner(&mut self) -> Result<Option<&Captioner>> {
        if self.captioner.is_none() {
            self.captioner = Some(match self.cfg.caption.resolve()? {
                None => None,
                Some(files) => {
                    tracing::info!(model = %self.cfg.caption, "loading BLIP");
                    Some(Captioner::load(&files, self.cfg.precision, &self.device)?)
                }
            });
        }
        Ok(self.captioner.as_ref().and_then(Option::as_ref))
    }

    pub fn clip(&mut self) -> Result<Option<&ClipScorer>> {
        if self.clip.is_none() {
            self.clip = Some(match self.cfg.clip.resolve()? {
                None => None,
                Some(files) => {
                    tracing::info!(model = %self.cfg.clip, "loading CLIP");
                    Some(ClipScorer::load(&files, &self.device)?)
                }
            });
        }
        Ok(self.clip.as_ref().and_then(Option::as_ref))
    }

    pub fn words(&mut self) -> Result<Option<&WordReader>> {
        if self.words.is_none() {
            self.words = Some(match self.cfg.text.resolve()? {
                None => None,
                Some(files) => {
                    tracing::info!(model = %self.cfg.text, "loading the text model");
                    Some(WordReader::load(&files, &self.device)?)
                }
            });
        }
        Ok(self.words.as_ref().and_then(Option::as_ref))
    }

    /// Load everything now (a server start with small models, or a warm-up).
    pub fn warm(&mut self) -> Result<()> {
        self.musicgen()?;
        self.captioner()?;
        self.clip()?;
        self.words()?;
        Ok(())
    }
}
