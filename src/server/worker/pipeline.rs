//! One song, start to finish, on the worker's thread: photo → caption → CLIP and palette →
//! prompt → MusicGen (each chunk of audio decoded as soon as its frames exist, to be heard
//! while the rest is made) → WAV and MP3. Models load on first use (downloads are logged)
//! and stay loaded. Knows nothing of HTTP or the database: it reports through callbacks.

use std::sync::atomic::AtomicBool;

use anyhow::Result;
use image::RgbImage;

use super::models::Models;
use crate::api::types::{MadeFrom, SongOptions, Stage, ACCENT};
use crate::ml::musicgen::encodec::chunked::LiveDecoder;
use crate::ml::vision::hints::CAPTION_TOKENS;
use crate::ml::{mp3, photo_hints, wav, GenerateOptions, Length, SamplingConfig};
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
    /// Make the song no faster than this × real time (0: no limit).
    pub pace: f64,
    /// The codes of the song this one extends (empty for a new song).
    pub prompt_codes: Vec<Vec<u32>>,
}

/// A piece of the song, decoded while the rest is being made.
pub struct Heard<'a> {
    /// Where its first sample is in the song.
    pub start_sample: u64,
    pub samples: &'a [f32],
    pub sample_rate: u32,
    /// Samples the whole song will have.
    pub total_samples: u64,
    /// Samples of it that were there before (the song an extension continues).
    pub prompt_samples: u64,
}

/// A finished song's files.
pub struct SongAudio {
    pub wav: Vec<u8>,
    pub mp3: Vec<u8>,
    pub codes: Vec<Vec<u32>>,
}

/// Run a job. `report(stage, step, total)` is called as it goes; `made` once the prompt is
/// known; `heard` with each chunk of audio as it is decoded.
pub fn run(
    models: &mut Models,
    job: &Job,
    report: &mut dyn FnMut(Stage, u32, u32),
    made: &mut dyn FnMut(&MadeOf),
    heard: &mut dyn FnMut(&Heard),
    cancel: &AtomicBool,
) -> Result<SongAudio> {
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
    let title = title_for(job.options, hints.caption.as_deref(), &prompt);
    made(&MadeOf {
        title: match job.options.extends {
            Some(_) => format!("{title} (extended)"),
            None => title,
        },
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
        prompt_codes: job.prompt_codes.clone(),
        ..GenerateOptions::default()
    };
    let model = models.musicgen()?;
    let (codec, sample_rate) = (model.codec(), model.sample_rate());
    let hop = codec.config().hop_length() as u64;
    let rate = model.frame_rate();
    let mut live = LiveDecoder::for_frame_rate(rate);
    let started = std::time::Instant::now();
    let prompt_frames = job.prompt_codes.first().map_or(0, Vec::len);
    let codes = model.generate_codes(
        &prompt,
        &opts,
        &mut |p, song| {
            while let Some(chunk) = live.poll(&codec, song, p.total_frames)? {
                heard(&Heard {
                    start_sample: chunk.start_frame as u64 * hop,
                    samples: &chunk.samples,
                    sample_rate,
                    total_samples: p.total_frames as u64 * hop,
                    prompt_samples: prompt_frames as u64 * hop,
                });
            }
            report(Stage::Generating, p.step as u32, p.total as u32);
            if job.pace > 0.0 {
                // Only the frames made here count: a continued song's come at once.
                let due = (p.frames - prompt_frames) as f64 / rate / job.pace;
                let ahead = due - started.elapsed().as_secs_f64();
                if ahead > 0.0 {
                    std::thread::sleep(std::time::Duration::from_secs_f64(ahead));
                }
            }
            Ok(())
        },
        cancel,
    )?;
    report(Stage::Mixing, 0, 0);
    // The files are the whole-song decode; the chunks were only for listening early.
    let samples = model.decode(&codes)?;
    Ok(SongAudio {
        wav: wav::wav_bytes(&samples, sample_rate)?,
        mp3: mp3::mp3_bytes(&samples, sample_rate)?,
        codes,
    })
}
