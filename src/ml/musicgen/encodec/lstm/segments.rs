//! How an LSTM's frames are cut into segments stepped in lockstep (`super`): equally long
//! runs, each after the first starting a warm-up before its own frames.

use std::ops::Range;

use crate::ml::kernels::lstm_cell::MAX_SEQUENCES;

/// Frames a segment's state runs before its own: 1 s at EnCodec's 50 frames/s, twice the
/// left context after which a chunked decode matches the whole one to f32 rounding
/// (`chunked::DEFAULT_CONTEXT_SECONDS`, measured by `scripts/bench/long-songs`).
pub const WARMUP_FRAMES: usize = 50;

/// Fewest own frames per segment: four warm-ups, so the warm-ups add at most a quarter
/// to the recurrence's multiply-adds. A 15 s decode (750 frames) runs in three segments.
pub const MIN_SEGMENT_FRAMES: usize = 4 * WARMUP_FRAMES;

/// A part of the frames stepped as one sequence: `run` from a zero state, keeping the
/// outputs of frames `own..run.end` (the frames before are its warm-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub run: Range<usize>,
    pub own: usize,
}

/// `frames` cut into `count` segments whose runs are equally long (the last may be
/// shorter), each after the first warmed up on `warmup` frames of the one before.
pub fn segments(frames: usize, count: usize, warmup: usize) -> Vec<Segment> {
    let count = count.clamp(1, MAX_SEQUENCES);
    let run = (frames + (count - 1) * warmup).div_ceil(count);
    // The last run is `run` less the rounding (under `count`): longer than its warm-up.
    if count == 1 || run <= warmup + count {
        return vec![Segment {
            run: 0..frames,
            own: 0,
        }];
    }
    // Own frames start at 0, run, 2·run − warmup, …: each run is `run` long.
    let mut starts: Vec<usize> = (0..count)
        .map(|s| {
            if s == 0 {
                0
            } else {
                run + (s - 1) * (run - warmup)
            }
        })
        .collect();
    starts.push(frames);
    starts
        .windows(2)
        .map(|w| Segment {
            run: w[0].saturating_sub(warmup)..w[1],
            own: w[0],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_frames_in_equal_runs() {
        for (frames, count, warmup) in [(750, 3, 50), (785, 3, 50), (61, 3, 7), (200, 4, 10)] {
            let segs = segments(frames, count, warmup);
            assert_eq!(segs.len(), count, "{frames} frames");
            // Own frames tile 0..frames in order; each run starts `warmup` before them.
            for (i, s) in segs.iter().enumerate() {
                let next = segs.get(i + 1).map_or(frames, |n| n.own);
                assert_eq!(s.run.end, next);
                assert_eq!(s.run.start, s.own.saturating_sub(warmup));
                assert!(s.run.len() > warmup && s.run.len() <= segs[0].run.len());
            }
            assert_eq!(segs[0].own, 0);
            let lens: Vec<usize> = segs.iter().map(|s| s.run.len()).collect();
            assert!(lens[..count - 1].iter().all(|&l| l == lens[0]), "{lens:?}");
        }
        // Too short to pay for a warm-up: one segment, whatever was asked.
        assert_eq!(segments(12, 3, 5), vec![Segment { run: 0..12, own: 0 }]);
        assert_eq!(segments(750, 1, 50).len(), 1);
        assert_eq!(segments(750, 9, 50).len(), MAX_SEQUENCES);
        assert_eq!(
            MIN_SEGMENT_FRAMES * 3,
            600,
            "a 15 s decode runs in three segments"
        );
    }
}
