//! One song being decoded, step by step, over all its windows: what `generate_codes` runs
//! alone and what the worker runs many of at once (`MusicGen::step` over several songs:
//! one pass of the decoder for all of them, songs joining and leaving between steps).
//!
//! A step is a pass over the next position of the delay pattern: codebook c is shifted
//! right by c, so position p holds frame p − 1 − c; it is padding when p ≤ c (start) or
//! p > len − k + c (end), and the context's code while that frame is one of the context's.
//! The first pass of a window takes the start token and the whole context; later ones one
//! column.

use anyhow::{bail, Result};
use candle_core::Tensor;

use super::decoder::DecoderState;
use super::sampling::{guide, Sampler};
use super::windows::Window;
use super::MusicGen;
use crate::ml::kernels::keep_awake::keep_awake;

/// Reported after every decoder step, with the codes of the frames made so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Decoder steps done and to do, over every window of the song.
    pub step: usize,
    pub total: usize,
    /// Frames whose every codebook is known, the prompt's included.
    pub frames: usize,
    /// Frames the song will have.
    pub total_frames: usize,
}

/// What a song is made of: its windows, in frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SongPlan {
    pub total_frames: usize,
    pub windows: Vec<Window>,
    /// Decoder steps over all windows.
    pub steps: usize,
}

/// The text condition, made once per song: encoder states (with the unconditional half
/// when guided) and their attention mask.
pub(crate) struct Condition {
    pub(crate) enc: Tensor,
    pub(crate) mask: Tensor,
    pub(crate) guided: bool,
    pub(crate) scale: f32,
}

/// How a song's tokens are picked from its guided logits.
pub(crate) enum Chooser {
    Sample(Box<Sampler>),
    /// Teacher forcing: the given codes are fed back and every guided row is kept.
    Forced {
        codes: Vec<Vec<u32>>,
        logits: Vec<Vec<f32>>,
    },
}

impl Chooser {
    /// The token at `position` (counted from the start token) of `codebook`.
    fn choose(&mut self, position: usize, codebook: usize, logits: &[f32]) -> u32 {
        match self {
            Chooser::Sample(s) => s.sample(logits),
            Chooser::Forced {
                codes,
                logits: kept,
            } => {
                kept.push(logits.to_vec());
                // Position p + 1 of codebook c holds frame p − c.
                codes[codebook][position - codebook]
            }
        }
    }
}

/// The window being decoded: its decoder state and delay-pattern positions.
struct Open {
    state: DecoderState,
    /// Codes by codebook and position (start token included): fixed ones set at the
    /// start, chosen ones as they are made.
    seq: Vec<Vec<u32>>,
    /// The context's codes, by codebook.
    context: Vec<Vec<u32>>,
    /// Positions, the start token included.
    len: usize,
    /// Steps done in this window.
    step: usize,
}

pub struct Decoding {
    cond: Condition,
    plan: SongPlan,
    chooser: Chooser,
    /// The song so far (the prompt codes first), by codebook.
    song: Vec<Vec<u32>>,
    /// Index of the window being decoded (`plan.windows.len()` when done).
    window: usize,
    open: Option<Open>,
    codebooks: usize,
    pad: u32,
    guided_row: Vec<f32>,
}

impl Decoding {
    pub(crate) fn new(
        model: &MusicGen,
        cond: Condition,
        plan: SongPlan,
        song: Vec<Vec<u32>>,
        chooser: Chooser,
    ) -> Self {
        let cfg = model.decoder.config();
        Self {
            cond,
            plan,
            chooser,
            song,
            window: 0,
            open: None,
            codebooks: cfg.num_codebooks,
            pad: cfg.pad_id(),
            guided_row: Vec::with_capacity(cfg.vocab_size),
        }
    }

    pub fn is_done(&self) -> bool {
        self.window >= self.plan.windows.len()
    }

    /// The song so far, the prompt codes first: one row of frames per codebook.
    pub fn song(&self) -> &[Vec<u32>] {
        &self.song
    }

    pub fn into_song(self) -> Vec<Vec<u32>> {
        self.song
    }

    pub(crate) fn into_chooser(self) -> Chooser {
        self.chooser
    }

    /// Steps and frames done so far.
    pub fn progress(&self) -> Progress {
        let earlier: usize = self.plan.windows[..self.window]
            .iter()
            .map(|w| w.steps(self.codebooks))
            .sum();
        let step = earlier + self.open.as_ref().map_or(0, |o| o.step);
        Progress {
            step,
            total: self.plan.steps,
            frames: self.song[0].len(),
            total_frames: self.plan.total_frames,
        }
    }

    /// Whether the next step is a window's first pass over several positions (it runs
    /// alone, not in a batch).
    pub fn next_is_first_pass(&self) -> bool {
        self.open.is_none() && self.current().is_some_and(|w| w.context > 0)
    }

    fn current(&self) -> Option<&Window> {
        self.plan.windows.get(self.window)
    }

    /// The code at position `p` of codebook `c` when the delay pattern or the context
    /// fixes it.
    fn fixed(&self, open: &Open, t: usize, c: usize, p: usize) -> Option<u32> {
        let k = self.codebooks;
        if p <= c || p > open.len - k + c {
            Some(self.pad)
        } else if p - 1 - c < t {
            Some(open.context[c][p - 1 - c])
        } else {
            None
        }
    }

    /// Open the current window if it is not, and return the next pass's tokens (one row's
    /// K × S, codebook by codebook: every row of the song takes the same), S, and the
    /// song's decoder state.
    fn input(&mut self, model: &MusicGen) -> Result<(Vec<u32>, usize, &mut DecoderState)> {
        let Some(&w) = self.current() else {
            bail!("the song is already decoded");
        };
        let k = self.codebooks;
        if self.open.is_none() {
            let len = w.context + w.new + k;
            let state = model
                .decoder
                .start(&self.cond.enc, Some(&self.cond.mask), len)?;
            let context = self
                .song
                .iter()
                .map(|row| row[row.len() - w.context..].to_vec())
                .collect();
            let mut open = Open {
                state,
                seq: Vec::new(),
                context,
                len,
                step: 0,
            };
            open.seq = (0..k)
                .map(|c| {
                    (0..len)
                        .map(|p| self.fixed(&open, w.context, c, p).unwrap_or(self.pad))
                        .collect()
                })
                .collect();
            self.open = Some(open);
        }
        let Some(open) = self.open.as_mut() else {
            bail!("the window did not open");
        };
        let (from, count) = match open.step {
            0 => (0, w.context + 1),
            step => (w.context + step, 1),
        };
        let columns: Vec<u32> = (0..k)
            .flat_map(|c| open.seq[c][from..from + count].iter().copied())
            .collect();
        Ok((columns, count, &mut open.state))
    }

    /// Take a pass's logits (rows × K × vocab, row-major): choose the free codes of the new
    /// position, keep the frame it completes, and close the window after its last step.
    fn accept(&mut self, logits: &[f32], vocab: usize) -> Result<()> {
        let Some(&w) = self.current() else {
            bail!("the song is already decoded");
        };
        let Some(mut open) = self.open.take() else {
            bail!("no window is open");
        };
        let (k, t) = (self.codebooks, w.context);
        // The position this pass made: after the context and start token on the first.
        let p = t + open.step + 1;
        for c in 0..k {
            open.seq[c][p] = match self.fixed(&open, t, c, p) {
                Some(code) => code,
                None => {
                    let cond_row = &logits[c * vocab..(c + 1) * vocab];
                    if self.cond.guided {
                        let uncond = &logits[(k + c) * vocab..(k + c + 1) * vocab];
                        guide(cond_row, uncond, self.cond.scale, &mut self.guided_row);
                        self.chooser.choose(p - 1, c, &self.guided_row)
                    } else {
                        self.chooser.choose(p - 1, c, cond_row)
                    }
                }
            };
        }
        // Position p completes frame p − k (its last codebook's code); keep new ones.
        if p >= k && p - k >= t {
            for (c, row) in self.song.iter_mut().enumerate() {
                row.push(open.seq[c][p - k + c + 1]);
            }
        }
        open.step += 1;
        if open.step == w.steps(k) {
            self.window += 1;
        } else {
            self.open = Some(open);
        }
        Ok(())
    }
}

impl MusicGen {
    /// One step of each song in `songs`, in one pass of the decoder (a window's first pass
    /// over its context runs on its own first). A song gets the same tokens as it would
    /// alone. After an error the songs of the failed pass may be part-way through it: they
    /// cannot go on.
    pub fn step(&self, songs: &mut [&mut Decoding]) -> Result<()> {
        // On the CPU a pass is ~200 parallel loops with serial work between them.
        if self.device.is_cpu() {
            keep_awake();
        }
        let (first, rest): (Vec<_>, Vec<_>) =
            songs.iter_mut().partition(|d| d.next_is_first_pass());
        for d in first {
            self.step_together(&mut [&mut **d])?;
        }
        let mut rest: Vec<&mut Decoding> = rest.into_iter().map(|d| &mut **d).collect();
        if !rest.is_empty() {
            self.step_together(&mut rest)?;
        }
        Ok(())
    }

    /// One pass over `songs`: their tokens go to the device as one tensor and their
    /// logits come back as one (two transfers a pass, not two per song).
    fn step_together(&self, songs: &mut [&mut Decoding]) -> Result<()> {
        let mut tokens = Vec::new();
        let mut rows = Vec::with_capacity(songs.len());
        let mut states = Vec::with_capacity(songs.len());
        let mut positions = 0;
        for d in songs.iter_mut() {
            let (columns, count, state) = d.input(self)?;
            for _ in 0..state.rows() {
                tokens.extend_from_slice(&columns);
            }
            rows.push(state.rows());
            states.push(state);
            positions = count;
        }
        let k = self.decoder.config().num_codebooks;
        let total: usize = rows.iter().sum();
        let tokens = Tensor::from_vec(tokens, (total, k, positions), &self.device)?;
        let logits = self.decoder.forward_batch(&tokens, &mut states)?;
        let vocab = logits.dim(2)?;
        let logits: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        let mut at = 0;
        for (d, rows) in songs.iter_mut().zip(rows) {
            let n = rows * k * vocab;
            d.accept(&logits[at..at + n], vocab)?;
            at += n;
        }
        Ok(())
    }
}
