//! The models a worker keeps: each loads on first use (downloads are logged) and stays
//! loaded; the caption and CLIP steps can be turned off.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use candle_core::Device;

use crate::ml::hub::{self, ModelChoice, ModelFiles};
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
    /// The models' weights: MusicGen's decoder, BLIP and CLIP (`Precision::for_gemm` says
    /// what their vision transformers keep).
    pub precision: Precision,
}

pub struct Models {
    cfg: ModelConfig,
    device: Device,
    /// Its own lock: the song decoder holds it for a pass while jobs caption photos.
    musicgen: Option<Arc<Mutex<MusicGen>>>,
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

    pub fn musicgen(&mut self) -> Result<Arc<Mutex<MusicGen>>> {
        if let Some(m) = &self.musicgen {
            return Ok(m.clone());
        }
        let t = Instant::now();
        tracing::info!(model = %self.cfg.musicgen, "loading MusicGen (downloads on first use)");
        let files = hub::resolve(&self.cfg.musicgen)?;
        let m = Arc::new(Mutex::new(MusicGen::load(
            &files,
            self.cfg.precision,
            &self.device,
        )?));
        tracing::info!(secs = t.elapsed().as_secs_f32(), "MusicGen ready");
        self.musicgen = Some(m.clone());
        Ok(m)
    }

    pub fn captioner(&mut self) -> Result<Option<&Captioner>> {
        let (choice, precision, device) = (&self.cfg.caption, self.cfg.precision, &self.device);
        optional(&mut self.captioner, choice, "BLIP", |f| {
            Captioner::load(f, precision, device)
        })
    }

    pub fn clip(&mut self) -> Result<Option<&ClipScorer>> {
        let (choice, precision, device) = (&self.cfg.clip, self.cfg.precision, &self.device);
        optional(&mut self.clip, choice, "CLIP", |f| {
            ClipScorer::load(f, precision, device)
        })
    }

    pub fn words(&mut self) -> Result<Option<&WordReader>> {
        let (choice, device) = (&self.cfg.text, &self.device);
        optional(&mut self.words, choice, "the text model", |f| {
            WordReader::load(f, device)
        })
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

/// A model that can be turned off, loaded on first use: `slot` is None until then, then
/// Some(None) when off or Some(Some(model)).
fn optional<'a, T>(
    slot: &'a mut Option<Option<T>>,
    choice: &ModelChoice,
    what: &str,
    load: impl FnOnce(&ModelFiles) -> Result<T>,
) -> Result<Option<&'a T>> {
    if slot.is_none() {
        *slot = Some(match choice.resolve()? {
            None => None,
            Some(files) => {
                tracing::info!(model = %choice, "loading {what}");
                Some(load(&files)?)
            }
        });
    }
    Ok(slot.as_ref().and_then(Option::as_ref))
}
