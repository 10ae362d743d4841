//! One song, start to finish, on the job's thread: photo → caption → CLIP and palette →
//! prompt → MusicGen (in the worker's song decoder, `batcher`, with the other songs being
//! made; each chunk of audio decoded here as soon as its frames exist, to be heard while
//! the rest is made) → WAV and MP3. The heavy parts run on the worker's pool. Models load
//! on first use (downloads are logged) and stay loaded. Knows nothing of HTTP or the
//! database: it reports through callbacks.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use image::RgbImage;
use rayon::ThreadPool;

use super::batcher::{Batcher, Event, Request};
use super::models::Models;
use crate::api::types::{MadeFrom, SongOptions, Stage, ACCENT};
use crate::ml::musicgen::encodec::chunked::{Chunk, LiveDecoder};
use crate::ml::musicgen::encodec::EncodecDecoder;
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

/// Where a worker's jobs run: the models they read photos and words with, the decoder
/// their songs are made in, and the pool their own heavy work (captions, chunks, files)
/// runs on. Shared by every job of the worker.
#[derive(Clone)]
pub struct Workshop {
    pub models: Arc<Mutex<Models>>,
    pub decoder: Batcher,
    pub pool: Arc<ThreadPool>,
}

/// Run a job. `report(stage, step, total)` is called as it goes; `made` once the prompt is
/// known; `heard` with each chunk of audio as it is decoded.
pub fn run(
    shop: &Workshop,
    job: &Job,
    report: &mut dyn FnMut(Stage, u32, u32),
    made: &mut dyn FnMut(&MadeOf),
    heard: &mut dyn FnMut(&Heard),
    cancel: &Arc<AtomicBool>,
) -> Result<SongAudio> {
    let with_models = |f: &mut (dyn FnMut(&mut Models) -> Result<()> + Send)| {
        shop.pool.install(|| {
            let mut models = shop
                .models
                .lock()
                .map_err(|_| anyhow!("the models were poisoned by an earlier crash"))?;
            f(&mut models)
        })
    };
    let mut hints = Hints::default();
    if let Some(photo) = job.photo {
        report(Stage::Reading, 0, 0);
        let mut caption = None;
        with_models(&mut |m| {
            if let Some(c) = m.captioner()? {
                caption = Some(c.caption(photo, CAPTION_TOKENS)?.text);
            }
            Ok(())
        })?;
        report(Stage::Mood, 0, 0);
        // CLIP scores and the palette; the caption is already made.
        with_models(&mut |m| {
            hints = Hints {
                caption: caption.take(),
                ..photo_hints(photo, None, m.clip()?)?
            };
            Ok(())
        })?;
    }
    report(Stage::Composing, 0, 0);
    let choices = choices(job.options);
    let words = words_for_model(&choices);
    if job.options.prompt.is_none() && !words.is_empty() {
        with_models(&mut |m| {
            if let Some(reader) = m.words()? {
                hints.words = reader.sense(&words, choices.long_text)?;
            }
            Ok(())
        })?;
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

    let request = Request {
        prompt,
        opts: GenerateOptions {
            length: Length::Seconds(job.options.duration_s() as f64),
            sampling: SamplingConfig {
                seed: job.seed,
                ..SamplingConfig::default()
            },
            prompt_codes: job.prompt_codes.clone(),
            ..GenerateOptions::default()
        },
        pace: job.pace,
        cancel: cancel.clone(),
        span: tracing::Span::current(),
    };
    let (codes, listening) = follow(shop, request, &job.prompt_codes, report, heard)?;
    report(Stage::Mixing, 0, 0);
    // The files are the whole-song decode (in parts of bounded memory); the chunks were
    // only for listening early.
    let sample_rate = listening.sample_rate;
    shop.pool.install(|| {
        let samples = listening.codec.decode_whole_song(&codes)?;
        Ok(SongAudio {
            wav: wav::wav_bytes(&samples, sample_rate)?,
            mp3: mp3::mp3_bytes(&samples, sample_rate)?,
            codes,
        })
    })
}

/// A song being listened to while it is made.
struct Listening {
    codec: Arc<EncodecDecoder>,
    sample_rate: u32,
    live: LiveDecoder,
}

/// Hand the song to the decoder and follow it to its end: each step reported, each chunk
/// of audio decoded (here, not in the decoder) as soon as its frames exist.
fn follow(
    shop: &Workshop,
    request: Request,
    prompt_codes: &[Vec<u32>],
    report: &mut dyn FnMut(Stage, u32, u32),
    heard: &mut dyn FnMut(&Heard),
) -> Result<(Vec<Vec<u32>>, Listening)> {
    let events = shop.decoder.submit(request)?;
    let prompt_frames = prompt_codes.first().map_or(0, Vec::len);
    let mut song: Vec<Vec<u32>> = prompt_codes.to_vec();
    let mut listening = None;
    loop {
        match events.recv() {
            Ok(Event::Joined {
                codec,
                sample_rate,
                frame_rate,
            }) => {
                listening = Some(Listening {
                    codec,
                    sample_rate,
                    live: LiveDecoder::for_frame_rate(frame_rate),
                })
            }
            Ok(Event::Step {
                progress,
                new_frames,
            }) => {
                let Some(l) = listening.as_mut() else {
                    bail!("the song decoder sent a step before the song joined");
                };
                if song.is_empty() {
                    song = vec![Vec::new(); new_frames.len()];
                }
                for (row, new) in song.iter_mut().zip(new_frames) {
                    row.extend(new);
                }
                let chunks = shop.pool.install(|| -> Result<Vec<Chunk>> {
                    let mut chunks = Vec::new();
                    while let Some(c) = l.live.poll(&l.codec, &song, progress.total_frames)? {
                        chunks.push(c);
                    }
                    Ok(chunks)
                })?;
                let hop = l.codec.config().hop_length() as u64;
                for chunk in &chunks {
                    heard(&Heard {
                        start_sample: chunk.start_frame as u64 * hop,
                        samples: &chunk.samples,
                        sample_rate: l.sample_rate,
                        total_samples: progress.total_frames as u64 * hop,
                        prompt_samples: prompt_frames as u64 * hop,
                    });
                }
                report(
                    Stage::Generating,
                    progress.step as u32,
                    progress.total as u32,
                );
            }
            Ok(Event::Done(codes)) => {
                let codes = codes?;
                let Some(l) = listening else {
                    bail!("the song decoder finished a song that never joined");
                };
                return Ok((codes, l));
            }
            Err(_) => bail!("the song decoder stopped while making this song"),
        }
    }
}
