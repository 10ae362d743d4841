//! Songs longer than the decoder's window, as audiocraft makes them: the first window is
//! up to 30 s; each next one is prompted with the last 12 s of the codes made so far (an
//! 18 s stride) and the same text, and adds up to 18 s. Every window starts a fresh decoder
//! state, so memory and time per step stay flat however long the song.

/// Seconds of audio one window holds at most (audiocraft's `max_duration`).
pub const WINDOW_SECONDS: f64 = 30.0;
/// Seconds of earlier codes each later window is prompted with (audiocraft: 30 s windows,
/// 18 s stride).
pub const CONTEXT_SECONDS: f64 = 12.0;

/// One window of a plan, in frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Frames of the song so far that prompt this window (its last ones).
    pub context: usize,
    /// Frames this window adds.
    pub new: usize,
}

/// A model's window and context lengths, in frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub window: usize,
    pub context: usize,
}

impl Windows {
    /// 30 s of frames, or fewer where the model has fewer positions (the delay pattern
    /// takes `codebooks` of them); the context keeps audiocraft's 12 : 30 proportion.
    pub fn for_model(frame_rate: f64, max_positions: usize, codebooks: usize) -> Self {
        let window = ((WINDOW_SECONDS * frame_rate).round() as usize)
            .min(max_positions.saturating_sub(codebooks))
            .max(2);
        let context = ((window as f64 * CONTEXT_SECONDS / WINDOW_SECONDS).round() as usize)
            .clamp(1, window - 1);
        Self { window, context }
    }

    /// The windows that take a song of `prompt` frames to `total` frames (none when it is
    /// that long already).
    pub fn plan(&self, prompt: usize, total: usize) -> Vec<Window> {
        let mut made = prompt;
        let mut out = Vec::new();
        while made < total {
            let context = made.min(self.context);
            let new = (total - made).min(self.window - context);
            out.push(Window { context, new });
            made += new;
        }
        out
    }
}

impl Window {
    /// Decoder forward passes the window takes: one per new frame, plus the codebooks − 1
    /// the delay pattern adds at its end (the context goes in with the first one).
    pub fn steps(&self, codebooks: usize) -> usize {
        self.new + codebooks - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// musicgen-small: 50 frames/s, 2048 positions, 4 codebooks.
    fn small() -> Windows {
        Windows::for_model(50.0, 2048, 4)
    }

    #[test]
    fn musicgen_small_windows_are_audiocrafts_30_s_with_12_s_of_context() {
        assert_eq!(
            small(),
            Windows {
                window: 1500,
                context: 600
            }
        );
    }

    #[test]
    fn a_song_that_fits_one_window_is_one_window() {
        assert_eq!(
            small().plan(0, 1500),
            vec![Window {
                context: 0,
                new: 1500
            }]
        );
        assert_eq!(
            small().plan(0, 250),
            vec![Window {
                context: 0,
                new: 250
            }]
        );
    }

    #[test]
    fn ninety_seconds_takes_audiocrafts_windows_and_ends_exactly() {
        let plan = small().plan(0, 4500);
        let want = [(0, 1500), (600, 900), (600, 900), (600, 900), (600, 300)];
        let got: Vec<_> = plan.iter().map(|w| (w.context, w.new)).collect();
        assert_eq!(got, want);
        assert_eq!(plan.iter().map(|w| w.new).sum::<usize>(), 4500);
    }

    #[test]
    fn one_frame_past_a_window_boundary_is_a_window_of_one_frame() {
        let plan = small().plan(0, 1501);
        assert_eq!(
            plan[1],
            Window {
                context: 600,
                new: 1
            }
        );
    }

    #[test]
    fn a_continuation_is_prompted_with_at_most_the_context() {
        // A 4 s prompt goes in whole; a 30 s one with its last 12 s.
        assert_eq!(
            small().plan(200, 500),
            vec![Window {
                context: 200,
                new: 300
            }]
        );
        let plan = small().plan(1500, 3000);
        assert_eq!(
            plan[0],
            Window {
                context: 600,
                new: 900
            }
        );
        assert_eq!(plan.iter().map(|w| w.new).sum::<usize>(), 1500);
        assert!(small().plan(1500, 1500).is_empty());
    }

    #[test]
    fn few_positions_shrink_the_window_and_keep_the_proportion() {
        // The parity fixtures: 4000 frames/s, 256 positions.
        let w = Windows::for_model(4000.0, 256, 4);
        assert_eq!(
            w,
            Windows {
                window: 252,
                context: 101
            }
        );
        for total in [1, 251, 252, 253, 1000] {
            let plan = w.plan(0, total);
            assert_eq!(plan.iter().map(|x| x.new).sum::<usize>(), total);
            assert!(plan.iter().all(|x| x.context + x.new <= w.window));
        }
    }

    #[test]
    fn steps_add_the_delay_pattern_tail() {
        assert_eq!(
            Window {
                context: 600,
                new: 900
            }
            .steps(4),
            903
        );
    }
}
