//! Decoding a song in chunks while it is made. EnCodec's convolutions see a few frames
//! either side and its LSTM carries state forward, so a chunk is decoded together with
//! some frames before and after it and only its own samples are kept; with enough context
//! the stitched chunks match the whole-song decode (the bench `long_songs` measures how
//! much: `scripts/bench/long-songs`).

use anyhow::{bail, Result};

use super::EncodecDecoder;

/// Frames decoded before and after a chunk and then dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub left: usize,
    pub right: usize,
}

/// 0.5 s before, 0.2 s after (25 and 10 frames at 50 frames/s). Measured on full-size
/// random weights (`scripts/bench/long-songs`): no context gives 24 dB, 10 + 5 frames
/// 83 dB, 25 + 10 frames 120 dB (max |Δ| 2e-7: the whole decode, itself in warmed-up LSTM
/// segments, to f32 rounding); more changes nothing.
pub const DEFAULT_CONTEXT_SECONDS: (f64, f64) = (0.5, 0.2);

/// Seconds in the first chunk of a song heard while it is made (small: the first sound
/// comes early), and in each one after (larger: less context decoded twice).
pub const LIVE_FIRST_CHUNK_SECONDS: f64 = 1.0;
pub const LIVE_CHUNK_SECONDS: f64 = 2.0;

impl Context {
    /// `DEFAULT_CONTEXT_SECONDS` at a frame rate.
    pub fn for_frame_rate(rate: f64) -> Self {
        let (l, r) = DEFAULT_CONTEXT_SECONDS;
        Self {
            left: (l * rate).ceil() as usize,
            right: (r * rate).ceil() as usize,
        }
    }
}

/// Seconds in each part of a whole-song decode (`decode_in_parts`): with the context
/// around it, its largest signals still fit the decoder's kept buffers (`buffers`), so a
/// song of any length decodes in the same memory.
pub const WHOLE_SONG_PART_SECONDS: f64 = 15.0;

impl EncodecDecoder {
    /// The whole song, decoded in parts of `part` frames with `ctx` context around each:
    /// memory bounded by a part instead of the song (a three-minute song's two largest
    /// signals are 1.5 GB each), the same samples to f32 rounding with enough context
    /// (`DEFAULT_CONTEXT_SECONDS`). A song of at most `part` frames is decoded whole.
    pub fn decode_in_parts(
        &self,
        codes: &[Vec<u32>],
        part: usize,
        ctx: Context,
    ) -> Result<Vec<f32>> {
        let (frames, part) = (codes.first().map_or(0, Vec::len), part.max(1));
        if frames <= part {
            return self.decode(codes);
        }
        let mut samples = Vec::with_capacity(frames * self.config().hop_length());
        for start in (0..frames).step_by(part) {
            let end = (start + part).min(frames);
            samples.extend(self.decode_range(codes, start, end, ctx)?);
        }
        Ok(samples)
    }

    /// `decode_in_parts` with the server's parts (`WHOLE_SONG_PART_SECONDS`) and context.
    pub fn decode_whole_song(&self, codes: &[Vec<u32>]) -> Result<Vec<f32>> {
        let rate = self.config().frame_rate();
        let part = (WHOLE_SONG_PART_SECONDS * rate).round() as usize;
        self.decode_in_parts(codes, part, Context::for_frame_rate(rate))
    }

    /// The samples of frames `start..end` of `codes`, decoded with up to `ctx` frames of
    /// context either side (fewer at the song's ends).
    pub fn decode_range(
        &self,
        codes: &[Vec<u32>],
        start: usize,
        end: usize,
        ctx: Context,
    ) -> Result<Vec<f32>> {
        let frames = codes.first().map_or(0, Vec::len);
        if start >= end || end > frames {
            bail!("frames {start}..{end} are not in a song of {frames}");
        }
        let from = start.saturating_sub(ctx.left);
        let to = (end + ctx.right).min(frames);
        let part: Vec<Vec<u32>> = codes.iter().map(|row| row[from..to].to_vec()).collect();
        let samples = self.decode(&part)?;
        let hop = self.config().hop_length();
        Ok(samples[(start - from) * hop..(end - from) * hop].to_vec())
    }
}

/// Follows a song's frames as they are made and decodes the next chunk as soon as its
/// right context exists (or the song is complete).
#[derive(Debug, Clone)]
pub struct LiveDecoder {
    ctx: Context,
    /// Frames per chunk after the first.
    chunk: usize,
    /// Frames in the first chunk: small, so the first sound comes early.
    first: usize,
    /// Frames decoded so far.
    done: usize,
}

/// One decoded chunk: where it starts in the song, and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub start_frame: usize,
    pub samples: Vec<f32>,
}

impl LiveDecoder {
    pub fn new(ctx: Context, first: usize, chunk: usize) -> Self {
        Self {
            ctx,
            chunk: chunk.max(1),
            first: first.max(1),
            done: 0,
        }
    }

    /// The server's choice at a frame rate: `Context::for_frame_rate` and the live chunk
    /// lengths.
    pub fn for_frame_rate(rate: f64) -> Self {
        let frames = |s: f64| (s * rate).round() as usize;
        Self::new(
            Context::for_frame_rate(rate),
            frames(LIVE_FIRST_CHUNK_SECONDS),
            frames(LIVE_CHUNK_SECONDS),
        )
    }

    /// The frames decoded so far.
    pub fn frames_done(&self) -> usize {
        self.done
    }

    /// Frames that must exist before the next chunk can be decoded (the song's total once
    /// the chunk reaches its end).
    fn needs(&self, total_frames: usize) -> usize {
        let end = (self.done + self.next_len()).min(total_frames);
        (end + self.ctx.right).min(total_frames)
    }

    fn next_len(&self) -> usize {
        if self.done == 0 {
            self.first
        } else {
            self.chunk
        }
    }

    /// Decode the next chunk if `codes` (the song's complete frames so far, of
    /// `total_frames`) allow it.
    pub fn poll(
        &mut self,
        codec: &EncodecDecoder,
        codes: &[Vec<u32>],
        total_frames: usize,
    ) -> Result<Option<Chunk>> {
        let have = codes.first().map_or(0, Vec::len);
        if self.done >= total_frames || have < self.needs(total_frames) {
            return Ok(None);
        }
        let end = (self.done + self.next_len()).min(total_frames);
        let samples = codec.decode_range(codes, self.done, end, self.ctx)?;
        let chunk = Chunk {
            start_frame: self.done,
            samples,
        };
        self.done = end;
        Ok(Some(chunk))
    }
}

/// Signal-to-noise ratio of `test` against `reference`, in dB (infinite when equal).
pub fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    let signal: f64 = reference.iter().map(|x| (*x as f64).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(test)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum();
    10.0 * (signal / noise).log10()
}
