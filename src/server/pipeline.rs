//! One song, start to finish, on the worker's thread: photo → caption → CLIP and palette →
//! prompt → MusicGen → WAV. Models load on first use (downloads are logged) and stay
//! loaded. Knows nothing of HTTP or the database: it reports through callbacks.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use image::RgbImage;

use crate::api::types::{MadeFrom, SongOptions};
use crate::ml::blip::Captioner;
use crate::ml::clip::ClipScorer;
use crate::ml::device::{parse_device, parse_precision, Precision};
use crate::ml::generate::{GenerateOptions, Length, MusicGen};
use crate::ml::hints::{photo_hints, CAPTION_TOKENS};
use crate::ml::prompt::{compose, Choices, Hints};
use crate::ml::sampling::SamplingConfig;
use crate::ml::{hub, tiny, wav};

use super::db::MadeOf;

/// Which models to use: a hub repo id or a local directory each; "none" turns the
/// caption or CLIP step off.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub musicgen: String,
    pub caption: String,
    pub clip: String,
    pub device: String,
    pub dtype: String,
}

/// Colours for songs without a photo (the visualizer needs some).
pub const WORDS_PALETTE: [&str; 5] = ["#7c5cff", "#ff6b9a", "#ffb84d", "#3ec7c2", "#2d2a4a"];

pub struct Models {
    cfg: ModelConfig,
    device: Device,
    precision: Precision,
    musicgen: Option<MusicGen>,
    captioner: Option<Option<Captioner>>,
    clip: Option<Option<ClipScorer>>,
}

impl Models {
    pub fn new(cfg: ModelConfig) -> Result<Self> {
        Ok(Self {
            device: parse_device(&cfg.device)?,
            precision: parse_precision(&cfg.dtype)?,
            cfg,
            musicgen: None,
            captioner: None,
            clip: None,
        })
    }

    /// Whether songs from this MusicGen are noise (the tiny random model).
    pub fn is_noise(&self) -> bool {
        hub::resolve(&self.cfg.musicgen).is_ok_and(|f| tiny::is_tiny(&f.config))
    }

    fn musicgen(&mut self) -> Result<&mut MusicGen> {
        if self.musicgen.is_none() {
            let t = Instant::now();
            tracing::info!(model = %self.cfg.musicgen, "loading MusicGen (downloads on first use)");
            let files = hub::resolve(&self.cfg.musicgen)?;
            self.musicgen = Some(MusicGen::load(&files, self.precision, &self.device)?);
            tracing::info!(secs = t.elapsed().as_secs_f32(), "MusicGen ready");
        }
        self.musicgen.as_mut().context("MusicGen is not loaded")
    }

    fn captioner(&mut self) -> Result<Option<&Captioner>> {
        if self.captioner.is_none() {
            self.captioner = Some(match self.cfg.caption.as_str() {
                "none" => None,
                m => {
                    tracing::info!(model = %m, "loading BLIP");
                    Some(Captioner::load(
                        &hub::resolve(m)?,
                        self.precision,
                        &self.device,
                    )?)
                }
            });
        }
        Ok(self.captioner.as_ref().and_then(Option::as_ref))
    }

    fn clip(&mut self) -> Result<Option<&ClipScorer>> {
        if self.clip.is_none() {
            self.clip = Some(match self.cfg.clip.as_str() {
                "none" => None,
                m => {
                    tracing::info!(model = %m, "loading CLIP");
                    Some(ClipScorer::load(&hub::resolve(m)?, &self.device)?)
                }
            });
        }
        Ok(self.clip.as_ref().and_then(Option::as_ref))
    }

    /// Load everything now (a server start with small models, or a warm-up).
    pub fn warm(&mut self) -> Result<()> {
        self.musicgen()?;
        self.captioner()?;
        self.clip()?;
        Ok(())
    }
}

/// What a job needs.
pub struct Job<'a> {
    pub options: &'a SongOptions,
    pub seed: u64,
    pub photo: Option<&'a RgbImage>,
}

/// The person's choices as the composer takes them.
pub fn choices(o: &SongOptions) -> Choices {
    Choices {
        genre: o.genre.clone(),
        mood: o.mood.clone(),
        bpm: o.bpm,
        instruments: o.instruments.clone(),
        text: o.text.clone(),
    }
}

/// Stages, in order, with their share of the whole job (for one progress bar).
pub const STAGES: [(&str, f32, f32); 5] = [
    ("reading", 0.00, 0.08),
    ("mood", 0.08, 0.12),
    ("composing", 0.12, 0.15),
    ("generating", 0.15, 0.92),
    ("mixing", 0.92, 1.00),
];

/// Overall 0–1 progress for a stage and a fraction of it done.
pub fn overall(stage: &str, done: f32) -> f32 {
    STAGES
        .iter()
        .find(|(s, _, _)| *s == stage)
        .map(|(_, a, b)| a + (b - a) * done.clamp(0.0, 1.0))
        .unwrap_or(0.0)
}

/// A title people can read in a list: their words, else the caption, else the style.
pub fn title_for(options: &SongOptions, caption: Option<&str>, prompt: &str) -> String {
    let source = options
        .text
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .or(caption.filter(|c| !c.trim().is_empty()))
        .unwrap_or(prompt);
    let words: Vec<&str> = source.split_whitespace().collect();
    let mut title = String::new();
    for w in words {
        if title.chars().count() + w.chars().count() + 1 > 60 {
            break;
        }
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(w);
    }
    let title = title.trim_end_matches([',', '.', ';', ':']).to_string();
    let mut chars = title.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Untitled song".into(),
    }
}

/// Run a job. `report(stage, step, total)` is called as it goes; `made` once the prompt is
/// known. Returns the WAV file's bytes.
pub fn run(
    models: &mut Models,
    job: &Job,
    report: &mut dyn FnMut(&str, u32, u32),
    made: &mut dyn FnMut(&MadeOf),
    cancel: &AtomicBool,
) -> Result<Vec<u8>> {
    let mut hints = Hints::default();
    if let Some(photo) = job.photo {
        report("reading", 0, 0);
        let caption = match models.captioner()? {
            Some(c) => Some(c.caption(photo, CAPTION_TOKENS)?.text),
            None => None,
        };
        report("mood", 0, 0);
        // CLIP scores and the palette; the caption is already made.
        hints = Hints {
            caption,
            ..photo_hints(photo, None, models.clip()?)?
        };
    }
    report("composing", 0, 0);
    let (prompt, parts) = match &job.options.prompt {
        Some(p) => (
            p.trim().to_string(),
            vec![MadeFrom {
                what: "prompt".into(),
                value: p.trim().to_string(),
                source: "choice".into(),
            }],
        ),
        None => {
            let composed = compose(&hints, &choices(job.options))?;
            let parts = composed
                .parts
                .iter()
                .map(|p| MadeFrom {
                    what: p.what.clone(),
                    value: p.value.clone(),
                    source: serde_json::to_value(p.source)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                })
                .collect();
            (composed.prompt, parts)
        }
    };
    let palette = match &hints.palette {
        Some(p) => p.colours.iter().map(|s| s.hex.clone()).collect(),
        None => WORDS_PALETTE.iter().map(|s| s.to_string()).collect(),
    };
    made(&MadeOf {
        title: title_for(job.options, hints.caption.as_deref(), &prompt),
        caption: hints.caption.clone(),
        prompt: prompt.clone(),
        parts,
        palette,
    });

    let opts = GenerateOptions {
        length: Length::Seconds(job.options.duration_s() as f64),
        sampling: SamplingConfig {
            seed: job.seed,
            ..SamplingConfig::default()
        },
        ..GenerateOptions::default()
    };
    let model = models.musicgen()?;
    let codes = model.generate_codes(
        &prompt,
        &opts,
        &mut |p| report("generating", p.step as u32, p.total as u32),
        cancel,
    )?;
    report("mixing", 0, 0);
    let samples = model.decode(&codes)?;
    wav::wav_bytes(&samples, model.sample_rate())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_prefer_words_then_caption() {
        let mut o = SongOptions::default();
        assert_eq!(
            title_for(&o, Some("a dog on a beach"), "lofi"),
            "A dog on a beach"
        );
        o.text = Some("  rainy   tuesday ".into());
        assert_eq!(title_for(&o, Some("a dog"), "lofi"), "Rainy tuesday");
        let long = "word ".repeat(40);
        assert!(
            title_for(&SongOptions::default(), None, &long)
                .chars()
                .count()
                <= 60
        );
        assert_eq!(
            title_for(&SongOptions::default(), None, ""),
            "Untitled song"
        );
    }

    #[test]
    fn overall_progress_rises_through_the_stages() {
        let mut last = -1.0;
        for (stage, _, _) in STAGES {
            for done in [0.0, 0.5, 1.0] {
                let p = overall(stage, done);
                assert!(p >= last, "{stage} {done}");
                last = p;
            }
        }
        assert_eq!(overall("mixing", 1.0), 1.0);
    }
}
