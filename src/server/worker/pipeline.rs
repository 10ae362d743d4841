//! One song, start to finish, on the worker's thread: photo → caption → CLIP and palette →
//! prompt → MusicGen → WAV. Models load on first use (downloads are logged) and stay
//! loaded. Knows nothing of HTTP or the database: it reports through callbacks.

use std::sync::atomic::AtomicBool;

use anyhow::Result;
use image::RgbImage;

use super::models::Models;
use crate::api::types::{MadeFrom, SongOptions, Stage, ACCENT};
use crate::ml::vision::hints::CAPTION_TOKENS;
use crate::ml::{photo_hints, wav, GenerateOptions, Length, SamplingConfig};
use crate::prompt::{compose, words_for_model, Hints};
use crate::server::db::MadeOf;
use crate::server::song_options::{choices, title_for};

/// Colours for songs without a photo (the visualizer needs some): the accent first.
pub const WORDS_PALETTE: [&str; 5] = [ACCENT, "#ff6b9a", "#ffb84d", "#3ec7c2", "#2d2a4a"];

/// What a job needs.
pub struct Job<'a> {
    pub options: &'a SongOptions,
    pub seed: u64,
    pub photo: Option<&'a RgbImage>,
}

/// Run a job. `report(stage, step, total)` is called as it goes; `made` once the prompt is
/// known. Returns the WAV file's bytes.
pub fn run(
    models: &mut Models,
    job: &Job,
    report: &mut dyn FnMut(Stage, u32, u32),
    made: &mut dyn FnMut(&MadeOf),
    cancel: &AtomicBool,
) -> Result<Vec<u8>> {
    let mut hints = Hints::default();
    if let Some(photo) = job.photo {
        report(Stage::Reading, 0, 0);
        let caption = match models.captioner()? {
            Some(c) => Some(c.caption(photo, CAPTION_TOKENS)?.text),
            None => None,
        };
        report(Stage::Mood, 0, 0);
        // CLIP scores and the palette; the caption is already made.
        hints = Hints {
            caption,
            ..photo_hints(photo, None, models.clip()?)?
        };
    }
    report(Stage::Composing, 0, 0);
    let choices = choices(job.options);
    let words = words_for_model(&choices);
    if job.options.prompt.is_none() && !words.is_empty() {
        if let Some(reader) = models.words()? {
            hints.words = reader.sense(&words, choices.long_text)?;
        }
    }
    let (prompt, parts) = match &job.options.prompt {
        Some(p) => (
            p.trim().to_string(),
            vec![MadeFrom {
                what: "prompt".into(),
                value: p.trim().to_string(),
                source: "choice".into(),
                because: None,
            }],
        ),
        None => {
            let composed = compose(&hints, &choices)?;
            let parts = composed
                .parts
                .iter()
                .map(|p| MadeFrom {
                    what: p.what.clone(),
                    value: p.value.clone(),
                    source: p.source.as_str().to_string(),
                    because: p.because.clone(),
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
        &mut |p, _| report(Stage::Generating, p.step as u32, p.total as u32),
        cancel,
    )?;
    report(Stage::Mixing, 0, 0);
    let samples = model.decode(&codes)?;
    wav::wav_bytes(&samples, model.sample_rate())
}
