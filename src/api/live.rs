//! Listening while a song is made: what the song page's event stream says about the audio
//! decoded so far, the URL of each chunk, and when playback can start without catching up
//! with generation. Shared by the server (which fills it) and the browser (which plays it).

use serde::{Deserialize, Serialize};

/// Seconds of slack kept between playback and the newest audio: a chunk's worth, so a
/// little jitter in generation never makes playback wait.
pub const LIVE_MARGIN_S: f32 = 2.5;

/// Audio of a song being made, as far as it exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Live {
    /// Chunks that can be fetched (`live_chunk_path`), numbered from 0.
    pub chunks: u32,
    /// Seconds of audio in them.
    pub ready_s: f32,
    /// Seconds the song will have.
    pub total_s: f32,
    /// Seconds of audio made per second of waiting, measured so far.
    pub made_per_s: f32,
    pub sample_rate: u32,
}

/// A chunk's URL: raw 16-bit little-endian mono PCM at `Live::sample_rate`; its first
/// sample's place in the song is in the `x-start-sample` header.
pub fn live_chunk_path(id: &str, index: u32) -> String {
    format!("/api/songs/{id}/live/{index}")
}

/// The header with a chunk's first sample's index in the song.
pub const START_SAMPLE_HEADER: &str = "x-start-sample";

impl Live {
    /// Whether playback from `position` (seconds) now would reach the end without waiting
    /// for generation, at the rate measured so far (with `LIVE_MARGIN_S` to spare).
    pub fn safe_to_start(&self, position: f32) -> bool {
        self.wait_s(position) <= 0.0
    }

    /// Seconds until playback from `position` is safe to start (0: now), if generation
    /// keeps its pace.
    pub fn wait_s(&self, position: f32) -> f32 {
        // Started now, playback reaches the end in total − position seconds; by then
        // generation (at its rate) must have made the rest, with the margin to spare, and
        // the margin must be there now. Never more than the whole song.
        let rate = self.made_per_s.max(0.0);
        let needed = (position + (self.total_s - position) * (1.0 - rate).max(0.0) + LIVE_MARGIN_S)
            .min(self.total_s);
        let short = needed - self.ready_s;
        if short <= 0.01 {
            0.0
        } else if rate <= 0.0 {
            f32::INFINITY
        } else {
            // Each second of waiting adds `rate` seconds of audio.
            short / rate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ready_s: f32, made_per_s: f32) -> Live {
        Live {
            chunks: 1,
            ready_s,
            total_s: 30.0,
            made_per_s,
            sample_rate: 32_000,
        }
    }

    #[test]
    fn faster_than_real_time_starts_once_the_margin_is_there() {
        assert!(!live(1.0, 2.0).safe_to_start(0.0));
        assert!(live(3.0, 2.0).safe_to_start(0.0));
    }

    #[test]
    fn slower_than_real_time_waits_until_the_rest_will_arrive_in_time() {
        // At 0.8× real time, 30 s from 0 needs 30 × 0.2 + 2.5 = 8.5 s ready.
        assert!(!live(8.0, 0.8).safe_to_start(0.0));
        assert!(live(8.6, 0.8).safe_to_start(0.0));
        let w = live(4.5, 0.8).wait_s(0.0);
        assert!((w - 5.0).abs() < 1e-3, "{w}");
    }

    #[test]
    fn a_finished_song_is_always_safe_and_a_stalled_one_never() {
        assert!(live(30.0, 0.0).safe_to_start(0.0));
        assert!(live(10.0, 0.0).wait_s(0.0).is_infinite());
    }
}
