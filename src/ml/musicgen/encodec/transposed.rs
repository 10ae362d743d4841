//! `EncodecConvTranspose1d` on the CPU: upsampling by `stride`, trimming the fixed
//! padding so the output is exactly input × stride frames, a time chunk per task.
//!
//! Window u (input frames u − (w−1) … u, w = ⌈taps / s⌉) makes the s consecutive output
//! frames u·s … u·s + s − 1, which lie side by side in a time-major signal: one row of
//! s·cout values, Y_u = Σ_i X_{u−(w−1)+i} · B_i with B_i a (cin, s·cout) matrix. So the
//! whole layer is w products with k = cin and n = s·cout, and no strided output.
//!
//! EnCodec's layers have taps = 2s (w = 2), and two neighbouring windows share a frame:
//! Winograd's F(2, 2) makes the pair (Y_u, Y_{u+1}) from three products instead of four,
//!   m1 = (X_u − X_{u+1}) B_0,  m2 = X_{u+1} (B_0 + B_1),  m3 = (X_{u+2} − X_{u+1}) B_1,
//!   Y_u = m1 + m2,  Y_{u+1} = m2 + m3,
//! a quarter fewer multiply-adds for the cost of a few subtractions per input frame.

use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::buffers::{reused, sized, WinogradScratch};
use super::conv::{host, weight_norm};
use super::signal::{
    chunk_bounds, chunk_frames, fill_rows, split_rows, PadMode, Padding, Signal, Weight,
};
use super::EncodecConfig;

/// Frames cut from the start and the end of the full output ((len − 1)·stride + taps
/// frames), as transformers does, so len input frames give len·stride.
pub fn trims(cfg: &EncodecConfig, taps: usize, stride: usize) -> (usize, usize) {
    let total = taps.saturating_sub(stride);
    let right = if cfg.use_causal_conv {
        (total as f64 * cfg.trim_right_ratio).ceil() as usize
    } else {
        total / 2
    };
    (total - right, right)
}

pub struct ConvTranspose {
    /// B_i for each of the w frames of a window, (cin, s·cout): column p·cout + o holds
    /// tap p + (w−1−i)·s (zero past the last tap).
    blocks: Vec<Weight>,
    /// B_0 + B_1 when w = 2 (the F(2, 2) path), else None.
    sum: Option<Weight>,
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
        let n = stride * cout;
        let matrices: Vec<Vec<f32>> = (0..window)
            .map(|i| {
                let mut m = vec![0f32; cin * n];
                for p in 0..stride {
                    let tap = p + (window - 1 - i) * stride;
                    if tap >= taps {
                        continue;
                    }
                    for c in 0..cin {
                        for o in 0..cout {
                            m[c * n + p * cout + o] = w[(c * cout + o) * taps + tap];
                        }
                    }
                }
                m
            })
            .collect();
        let sum = (window == 2).then(|| {
            let both: Vec<f32> = matrices[0]
                .iter()
                .zip(&matrices[1])
                .map(|(a, b)| a + b)
                .collect();
            Weight::new(&both, cin, n)
        });
        let blocks = matrices.iter().map(|m| Weight::new(m, cin, n)).collect();
        let (trim_left, trim_right) = trims(cfg, taps, stride);
        Ok(Self {
            blocks,
            sum,
            bias,
            cin,
            cout,
            taps,
            stride,
            window,
            trim_left,
            trim_right,
        })
    }

    /// convT(ELU(x) if `elu`, else x), trimmed, bias included, written into `out` (any
    /// buffer: `buffers::sized`).
    pub fn forward(&self, x: &Signal, elu: bool, out: Vec<f32>) -> Signal {
        // Per window: the staged frame, F(2, 2)'s three half-rate inputs, the row and
        // half a row of m2.
        let (cin, n) = (self.cin, self.stride * self.cout);
        let floats = cin + 3 * cin / 2 + n + n / 2;
        // Every matrix a chunk reads: one per window frame, and F(2, 2)'s sum when it has one.
        let matrices = self.blocks.len() + usize::from(self.sum.is_some());
        let weights = matrices * cin * n;
        let windows = x.frames + self.window - 1;
        self.forward_in_chunks(x, elu, chunk_frames(floats, weights, windows), out)
    }

    /// `forward`, `chunk` windows per task: each stages the (ELU'd) input frames its
    /// windows read, zero outside the signal, makes their rows in a buffer of its own and
    /// copies out the ones the trims keep.
    pub fn forward_in_chunks(&self, x: &Signal, elu: bool, chunk: usize, out: Vec<f32>) -> Signal {
        assert_eq!(x.channels, self.cin, "transposed conv input channels");
        let (s, w, cout) = (self.stride, self.window, self.cout);
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
        let windows = chunk_bounds(x.frames + w - 1, chunk);
        // The same chunks as output rows: untrimmed frame f is output row f − tl.
        let rows: Vec<usize> = windows
            .iter()
            .map(|u| (u * s).clamp(tl, end) - tl)
            .collect();
        let mut data = sized(out, frames * cout);
        split_rows(&mut data, cout, &rows)
            .into_par_iter()
            .zip(windows.par_windows(2))
            .filter(|(out, _)| !out.is_empty())
            .for_each_init(Scratch::default, |scratch, (out, u)| {
                let (u_lo, u_hi) = (u[0], u[1]);
                padding.stage(x, u_lo..u_hi + w - 1, elu, &mut scratch.staged);
                let first = (u_lo * s).max(tl) - u_lo * s;
                let full = (u_hi - u_lo) * s * cout;
                let Scratch { staged, f22, rows } = scratch;
                if first == 0 && out.len() == full {
                    // Nothing trimmed from this chunk: made in place.
                    self.windows(staged, u_hi - u_lo, out, f22);
                    return;
                }
                let y = reused(rows, full);
                self.windows(staged, u_hi - u_lo, y, f22);
                out.copy_from_slice(&y[first * cout..first * cout + out.len()]);
            });
        Signal::new(frames, cout, data)
    }

    /// y (rows × s·cout) = the bias plus the rows of `rows` windows over `staged`
    /// (rows + w − 1 frames); what y held is overwritten.
    fn windows(&self, staged: &[f32], rows: usize, y: &mut [f32], scratch: &mut WinogradScratch) {
        let (cin, n) = (self.cin, self.stride * self.cout);
        let Some(sum) = &self.sum else {
            return self.direct(staged, rows, y);
        };
        let frame = |j: usize| &staged[j * cin..(j + 1) * cin];
        let pairs = rows / 2;
        if pairs > 0 {
            // The inputs of m1, m2 and m3 for every pair, then the three products: m1
            // and m3 written straight into the even and odd rows, m2 (plus the bias)
            // added to both, so each row is written once and added to once.
            let d = reused(&mut scratch.inputs, 3 * pairs * cin);
            let (d1, rest) = d.split_at_mut(pairs * cin);
            let (d2, d3) = rest.split_at_mut(pairs * cin);
            for i in 0..pairs {
                let (a, b, c) = (frame(2 * i), frame(2 * i + 1), frame(2 * i + 2));
                let at = i * cin..(i + 1) * cin;
                for (((o1, o2), o3), ((a, b), c)) in d1[at.clone()]
                    .iter_mut()
                    .zip(&mut d2[at.clone()])
                    .zip(&mut d3[at])
                    .zip(a.iter().zip(b).zip(c))
                {
                    *o1 = a - b;
                    *o2 = *b;
                    *o3 = c - b;
                }
            }
            self.blocks[0].set_here(y, 2 * n, d1, cin, pairs);
            self.blocks[1].set_here(&mut y[n..], 2 * n, d3, cin, pairs);
            let m2 = reused(&mut scratch.products, pairs * n);
            sum.set_here(m2, n, d2, cin, pairs);
            let cout = self.cout;
            for (pair, m) in y.chunks_exact_mut(2 * n).zip(m2.chunks_exact(n)) {
                let (even, odd) = pair.split_at_mut(n);
                let frames = even.chunks_exact_mut(cout).zip(odd.chunks_exact_mut(cout));
                for ((even, odd), m) in frames.zip(m.chunks_exact(cout)) {
                    for (((e, o), m), b) in even.iter_mut().zip(odd).zip(m).zip(&self.bias) {
                        let v = m + b;
                        *e += v;
                        *o += v;
                    }
                }
            }
        }
        if rows % 2 == 1 {
            // The odd last window, directly.
            let last = rows - 1;
            self.direct(&staged[last * cin..], 1, &mut y[last * n..]);
        }
    }

    /// `windows` without Winograd: the bias, then one product per window frame.
    fn direct(&self, staged: &[f32], rows: usize, y: &mut [f32]) {
        let (cin, n) = (self.cin, self.stride * self.cout);
        fill_rows(y, &self.bias);
        for (i, b) in self.blocks.iter().enumerate() {
            b.acc_here(y, n, &staged[i * cin..], cin, rows);
        }
    }
}

/// What a task keeps from one chunk to the next (`for_each_init`), so chunks do not
/// allocate: the staged input, F(2, 2)'s buffers, and the rows of a chunk the trims cut.
#[derive(Default)]
struct Scratch {
    staged: Vec<f32>,
    f22: WinogradScratch,
    rows: Vec<f32>,
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
            // One chunk, and chunks of 1–3 windows (the trims cut into the first and last;
            // odd chunks end F(2, 2)'s pairs with a single window).
            for chunk in [1000, 1, 2, 3] {
                close(
                    &up.forward_in_chunks(&x, false, chunk, Vec::new()).data,
                    keep,
                );
            }
        }
    }
}
