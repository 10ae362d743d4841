//! `EncodecConvTranspose1d` on the CPU: upsampling by `stride`, trimming the fixed
//! padding so the output is exactly input × stride frames, a time chunk per task.
//!
//! Window u (input frames u − (w−1) … u, w = ⌈taps / s⌉) makes the s consecutive output
//! frames u·s … u·s + s − 1, which lie side by side in a time-major signal: one row of
//! s·cout values, Y_u = Σ_i X_{u−(w−1)+i} · B_i with B_i a (cin, s·cout) matrix. So the
//! whole layer is w products with k = cin and n = s·cout, and no strided output.
//!
//! Two neighbouring windows share w − 1 frames, so the windows are a correlation of w
//! taps B_i over the input frames: with w ≥ 2 they run on Winograd's F(m, w)
//! (`conv_winograd`), m + w − 1 products for m windows instead of m · w. EnCodec's layers
//! have taps = 2s (w = 2): F(6, 2) makes six windows from seven products, 42 % fewer
//! multiply-adds than one product per window frame (F(4, 2), for the first upsampling's
//! large weights: five products for four windows, 38 % fewer).

use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::buffers::{reused, sized, WinogradScratch};
use super::conv::{host, weight_norm};
use super::conv_winograd::{outputs_per_group, Start, Winograd};
use super::signal::{
    chunk_bounds, chunk_frames, fill_rows, split_rows, PadMode, Padding, ProductPrecision, Signal,
    Weight, STREAMED_SIGNAL_FLOATS,
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
    product: Product,
    /// The bias of each output frame, s times over: the bias of a window's row.
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
        products: ProductPrecision,
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
        let product = if window >= 2 {
            let taps: Vec<&[f32]> = matrices.iter().map(Vec::as_slice).collect();
            Product::Winograd(Winograd::new(
                &taps,
                cin,
                n,
                outputs_per_group(cin, n),
                products,
            ))
        } else {
            Product::Direct(
                matrices
                    .iter()
                    .map(|m| Weight::with(m, cin, n, products))
                    .collect(),
            )
        };
        let (trim_left, trim_right) = trims(cfg, taps, stride);
        Ok(Self {
            product,
            bias: bias.repeat(stride),
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
        // Per window: the staged frame, its row and Winograd's scratch; every matrix is
        // read by every chunk.
        let (cin, n) = (self.cin, self.stride * self.cout);
        let (scratch, weights, per_row) = match &self.product {
            Product::Winograd(f) => (f.scratch_per_frame(), f.weight_floats(), f.frames_per_row()),
            Product::Direct(blocks) => (0, blocks.len() * cin * n, 1),
        };
        let floats = cin + n + scratch;
        let windows = x.frames + self.window - 1;
        let chunk = chunk_frames(floats, weights, windows, per_row);
        let stream = x.frames * self.stride * self.cout > STREAMED_SIGNAL_FLOATS;
        self.forward_in_chunks(x, elu, chunk, stream, out)
    }

    /// `forward`, `chunk` windows per task: each stages the (ELU'd) input frames its
    /// windows read, zero outside the signal, makes their rows in a buffer of its own and
    /// copies out the ones the trims keep. With `stream`, the chunks the trims do not cut
    /// are stored past the caches (`STREAMED_SIGNAL_FLOATS`).
    pub fn forward_in_chunks(
        &self,
        x: &Signal,
        elu: bool,
        chunk: usize,
        stream: bool,
        out: Vec<f32>,
    ) -> Signal {
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
                let Scratch {
                    staged,
                    winograd,
                    rows,
                } = scratch;
                if first == 0 && out.len() == full {
                    // Nothing trimmed from this chunk: made in place.
                    self.windows(staged, u_hi - u_lo, out, stream, winograd);
                    return;
                }
                let y = reused(rows, full);
                self.windows(staged, u_hi - u_lo, y, false, winograd);
                out.copy_from_slice(&y[first * cout..first * cout + out.len()]);
            });
        Signal::new(frames, cout, data)
    }

    /// y (rows × s·cout) = the bias plus the rows of `rows` windows over `staged`
    /// (rows + w − 1 frames); what y held is overwritten, past the caches if `stream`.
    fn windows(
        &self,
        staged: &[f32],
        rows: usize,
        y: &mut [f32],
        stream: bool,
        scratch: &mut WinogradScratch,
    ) {
        match &self.product {
            Product::Winograd(f) => {
                let start = if stream {
                    Start::StreamedBias(&self.bias)
                } else {
                    Start::Bias(&self.bias)
                };
                f.run(staged, rows, y, start, scratch)
            }
            Product::Direct(blocks) => {
                let (cin, n) = (self.cin, self.stride * self.cout);
                fill_rows(y, &self.bias);
                for (i, b) in blocks.iter().enumerate() {
                    b.acc_here(y, n, &staged[i * cin..], cin, rows);
                }
            }
        }
    }
}

/// How a window's row is made from its w frames.
enum Product {
    /// w ≥ 2: Winograd over the windows.
    Winograd(Winograd),
    /// One frame a window (taps ≤ stride): B_0 alone.
    Direct(Vec<Weight>),
}

/// What a task keeps from one chunk to the next (`for_each_init`), so chunks do not
/// allocate: the staged input, Winograd's buffers, and the rows of a chunk the trims cut.
#[derive(Default)]
struct Scratch {
    staged: Vec<f32>,
    winograd: WinogradScratch,
    rows: Vec<f32>,
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, config, near, noise, weights};
    use super::*;

    #[test]
    fn transposed_conv_matches_the_definition() {
        // 16 columns (s·cout), so that the output rows are whole vectors and can stream;
        // and 128 · 64, wide enough for 16-bit products, which must stay close.
        for (cin, cout, taps, stride, causal, products) in [
            (3, 4, 8, 4, false, ProductPrecision::F32),
            (3, 4, 5, 2, true, ProductPrecision::F32),
            (3, 4, 5, 2, false, ProductPrecision::F32),
            (3, 4, 4, 4, true, ProductPrecision::F32),
            (128, 16, 8, 4, false, ProductPrecision::Int16),
            (128, 32, 4, 2, true, ProductPrecision::Int16),
        ] {
            let (vb, w, b) = weights((cin, cout, taps), cout, 11);
            let cfg = config(causal);
            let up =
                ConvTranspose::load(vb, &cfg, cin, cout, taps, stride, products).expect("load");
            let frames = 10;
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
            // One chunk, and chunks of 1–5 windows (the trims cut into the first and last;
            // chunks that are not whole groups end Winograd's with a partial one).
            for chunk in [1000, 1, 2, 3, 5] {
                for stream in [false, true] {
                    let y = up.forward_in_chunks(&x, false, chunk, stream, Vec::new());
                    match products {
                        ProductPrecision::F32 => close(&y.data, keep),
                        ProductPrecision::Int16 => near(&y.data, keep, 57.0),
                    }
                }
            }
        }
    }
}
