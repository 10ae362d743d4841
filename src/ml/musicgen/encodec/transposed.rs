//! `EncodecConvTranspose1d` on the CPU: upsampling by `stride`, trimming the fixed
//! padding so the output is exactly input × stride frames, a time chunk per task.
//!
//! Output frame u·s + p (phase p) sums input frames u − m through taps p + m·s, so each
//! phase is one product over a window of `window` consecutive input frames.

use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::conv::{bounds, fill_rows, host, weight_norm};
use super::signal::{chunk_frames, split_rows, PadMode, Padding, Signal, Weight};
use super::EncodecConfig;

pub struct ConvTranspose {
    /// Per phase: (window · cin, cout); block i of rows meets input frame u − (window−1−i).
    phases: Vec<Weight>,
    bias: Vec<f32>,
    cin: usize,
    cout: usize,
    taps: usize,
    stride: usize,
    window: usize,
    trim_left: usize,
    trim_right: usize,
}

impl ConvTranspose {
    pub fn load(
        vb: VarBuilder,
        cfg: &EncodecConfig,
        cin: usize,
        cout: usize,
        taps: usize,
        stride: usize,
    ) -> candle_core::Result<Self> {
        let vb = vb.pp("conv");
        let w = weight_norm(&vb, (cin, cout, taps))?;
        let bias = host(&vb.get(cout, "bias")?)?;
        let window = taps.div_ceil(stride);
        let phases = (0..stride)
            .map(|p| {
                let mut m = vec![0f32; window * cin * cout];
                for i in 0..window {
                    let tap = p + (window - 1 - i) * stride;
                    if tap >= taps {
                        continue;
                    }
                    for c in 0..cin {
                        for o in 0..cout {
                            m[(i * cin + c) * cout + o] = w[(c * cout + o) * taps + tap];
                        }
                    }
                }
                Weight::new(&m, window * cin, cout)
            })
            .collect();
        let total = taps.saturating_sub(stride);
        let trim_right = if cfg.use_causal_conv {
            (total as f64 * cfg.trim_right_ratio).ceil() as usize
        } else {
            total / 2
        };
        Ok(Self {
            phases,
            bias,
            cin,
            cout,
            taps,
            stride,
            window,
            trim_left: total - trim_right,
            trim_right,
        })
    }

    /// Output frames per input frame.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Multiply-adds for an input of `len` frames.
    pub fn multiply_adds(&self, len: usize) -> usize {
        len * self.taps * self.cin * self.cout
    }

    /// convT(ELU(x) if `elu`, else x), trimmed, bias included.
    pub fn forward(&self, x: &Signal, elu: bool) -> Signal {
        self.forward_in_chunks(x, elu, chunk_frames(self.cin))
    }

    /// `forward`, `chunk` input frames per task: each stages the (ELU'd) input frames its
    /// output rows read, zero outside the signal, and runs every phase over them.
    pub fn forward_in_chunks(&self, x: &Signal, elu: bool, chunk: usize) -> Signal {
        assert_eq!(x.channels, self.cin, "transposed conv input channels");
        let (s, w, cin, cout) = (self.stride, self.window, self.cin, self.cout);
        // Window u covers padded frames u .. u + w, i.e. input frames u − (w−1) .. u.
        let padding = Padding {
            len: x.frames,
            left: w - 1,
            right: w - 1,
            mode: PadMode::Zero,
        };
        let full = (x.frames - 1) * s + self.taps;
        let end = full - self.trim_right;
        let (tl, frames) = (self.trim_left, end - self.trim_left);
        // Chunks of windows, as output rows: untrimmed frame f is output row f − tl.
        let bounds: Vec<usize> = bounds(x.frames + w - 1, chunk)
            .into_iter()
            .map(|u| (u * s).clamp(tl, end) - tl)
            .collect();
        let first_at_or_after = |p: usize, frame: usize| {
            if p >= frame {
                0
            } else {
                (frame - p).div_ceil(s)
            }
        };
        let mut data = vec![0f32; frames * cout];
        split_rows(&mut data, cout, &bounds)
            .into_par_iter()
            .zip(bounds.par_windows(2))
            .filter(|(_, b)| b[0] < b[1])
            .for_each(|(out, b)| {
                let (f0, f1) = (b[0] + tl, b[1] + tl);
                let (u_lo, u_hi) = (f0 / s, f1.div_ceil(s));
                let mut staged = Vec::new();
                padding.stage(x, u_lo..u_hi + w - 1, elu, &mut staged);
                fill_rows(out, &self.bias);
                for (p, weight) in self.phases.iter().enumerate() {
                    let (u0, u1) = (first_at_or_after(p, f0), first_at_or_after(p, f1));
                    if u1 <= u0 {
                        continue;
                    }
                    let row = u0 * s + p - f0;
                    let lhs = &staged[(u0 - u_lo) * cin..];
                    weight.acc_here(&mut out[row * cout..], s * cout, lhs, cin, u1 - u0);
                }
            });
        Signal::new(frames, cout, data)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, config, noise, weights};
    use super::*;

    #[test]
    fn transposed_conv_matches_the_definition() {
        let (cin, cout) = (3, 2);
        for (taps, stride, causal) in [(8, 4, false), (5, 2, true), (5, 2, false), (4, 4, true)] {
            let (vb, w, b) = weights((cin, cout, taps), cout, 11);
            let up =
                ConvTranspose::load(vb, &config(causal), cin, cout, taps, stride).expect("load");
            let frames = 7;
            let x = Signal::new(frames, cin, noise(frames * cin, 5));
            let full = (frames - 1) * stride + taps;
            let mut want = vec![0f32; full * cout];
            for t in 0..frames {
                for j in 0..taps {
                    for o in 0..cout {
                        for c in 0..cin {
                            want[(t * stride + j) * cout + o] +=
                                x.row(t)[c] * w[(c * cout + o) * taps + j];
                        }
                    }
                }
            }
            for row in want.chunks_exact_mut(cout) {
                row.iter_mut().zip(&b).for_each(|(v, b)| *v += b);
            }
            let keep = &want[up.trim_left * cout..(full - up.trim_right) * cout];
            // One chunk, and chunks of 1–3 windows (the trims cut into the first and last).
            for chunk in [1000, 1, 2, 3] {
                close(&up.forward_in_chunks(&x, false, chunk).data, keep);
            }
        }
    }
}
