//! The audio of songs being made, in memory: each chunk the worker decodes is kept here
//! as 16-bit PCM until shortly after the song is finished, for the song pages to fetch
//! (`http::live`). A song page that joins late reads what is here; the finished files
//! replace it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;

use crate::api::live::Live;

/// How long a finished song's chunks stay, so pages still playing them can finish the
/// chunk they are on and switch to the whole file.
pub const KEEP_AFTER_FINISH: Duration = Duration::from_secs(120);

/// One chunk: its first sample's index in the song, and its samples as 16-bit LE PCM.
#[derive(Clone)]
pub struct LiveChunk {
    pub start_sample: u64,
    pub pcm: Bytes,
}

struct LiveSong {
    info: Live,
    chunks: Vec<LiveChunk>,
}

#[derive(Clone, Default)]
pub struct LiveAudio {
    songs: Arc<Mutex<HashMap<String, LiveSong>>>,
}

/// Samples → 16-bit LE PCM. Each chunk is clamped, not normalised: a per-chunk gain would
/// jump in level from chunk to chunk (the finished WAV is scaled once, as a whole).
pub fn pcm16_le(samples: &[f32]) -> Bytes {
    let mut out = Vec::with_capacity(samples.len() * 2);
    for s in samples {
        let s = if s.is_finite() {
            s.clamp(-1.0, 1.0)
        } else {
            0.0
        };
        out.extend_from_slice(&((s * i16::MAX as f32).round() as i16).to_le_bytes());
    }
    Bytes::from(out)
}

impl LiveAudio {
    /// Add a song's next chunk, with what is known of the song now.
    pub fn push(&self, id: &str, chunk: LiveChunk, info: Live) {
        if let Ok(mut songs) = self.songs.lock() {
            let song = songs.entry(id.to_string()).or_insert_with(|| LiveSong {
                info: info.clone(),
                chunks: Vec::new(),
            });
            song.chunks.push(chunk);
            song.info = info;
        }
    }

    /// Update the rate and readiness between chunks.
    pub fn update(&self, id: &str, made_per_s: f32) -> Option<Live> {
        let mut songs = self.songs.lock().ok()?;
        let song = songs.get_mut(id)?;
        song.info.made_per_s = made_per_s;
        Some(song.info.clone())
    }

    pub fn info(&self, id: &str) -> Option<Live> {
        Some(self.songs.lock().ok()?.get(id)?.info.clone())
    }

    pub fn chunk(&self, id: &str, index: usize) -> Option<(LiveChunk, u32)> {
        let songs = self.songs.lock().ok()?;
        let song = songs.get(id)?;
        Some((song.chunks.get(index)?.clone(), song.info.sample_rate))
    }

    /// Forget a song now (a failed or restarted job: its chunks are not its audio).
    pub fn forget(&self, id: &str) {
        if let Ok(mut songs) = self.songs.lock() {
            songs.remove(id);
        }
    }

    /// Forget a finished song after `KEEP_AFTER_FINISH`.
    pub fn forget_later(&self, id: &str) {
        let (this, id) = (self.clone(), id.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(KEEP_AFTER_FINISH).await;
            this.forget(&id);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_is_little_endian_and_clamped() {
        let b = pcm16_le(&[0.0, 1.0, -2.0, f32::NAN]);
        assert_eq!(&b[..], &[0, 0, 0xFF, 0x7F, 0x01, 0x80, 0, 0]);
    }

    #[test]
    fn chunks_are_kept_in_order_until_forgotten() {
        let live = LiveAudio::default();
        let info = Live {
            chunks: 1,
            ready_s: 1.0,
            total_s: 10.0,
            made_per_s: 0.5,
            sample_rate: 32_000,
        };
        for i in 0..3 {
            let chunk = LiveChunk {
                start_sample: i * 10,
                pcm: Bytes::from(vec![i as u8; 20]),
            };
            live.push(
                "a",
                chunk,
                Live {
                    chunks: i as u32 + 1,
                    ..info.clone()
                },
            );
        }
        assert_eq!(live.info("a").map(|i| i.chunks), Some(3));
        assert_eq!(live.chunk("a", 1).map(|c| c.0.start_sample), Some(10));
        assert!(live.chunk("a", 3).is_none() && live.chunk("b", 0).is_none());
        assert_eq!(live.update("a", 0.9).map(|i| i.made_per_s), Some(0.9));
        live.forget("a");
        assert!(live.info("a").is_none());
    }
}
