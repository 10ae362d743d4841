//! `EncodecConv1d` on the CPU over time-major signals: weight-normed conv with
//! transformers' padding, computed a time chunk per task. Weights are read through candle
//! (names as in the checkpoint) and rearranged once at load time into the layout the
//! product wants.

use std::ops::Range;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::buffers::{sized, WinogradScratch};
use super::conv_winograd::{outputs_per_group, Start, Winograd};
use super::signal::{
    chunk_bounds, chunk_frames, fill_rows, split_rows, PadMode, Padding, ProductPrecision, Signal,
    Weight,
};
use super::EncodecConfig;
use crate::ml::kernels::host_matmul::dot;
use crate::ml::kernels::isa;
use crate::ml::kernels::packed_gemm::columns_per_pass;

/// A tensor's values on the host, as f32, in row-major order.
pub(super) fn host(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()
}

/// Weight-normalised weight: g · v / ‖v‖, the norm over every dim but the first.
/// Checkpoints store (g, v) as `weight_g`/`weight_v` (old torch) or as
/// `parametrizations.weight.original0/1` (new torch); both are accepted.
pub(super) fn weight_norm(
    vb: &VarBuilder,
    shape: (usize, usize, usize),
) -> candle_core::Result<Vec<f32>> {
    host(&weight_norm_tensor(vb, shape)?)
}

/// `weight_norm` as a tensor on the VarBuilder's device.
pub(super) fn weight_norm_tensor(
    vb: &VarBuilder,
    shape: (usize, usize, usize),
) -> candle_core::Result<Tensor> {
    let g_shape = (shape.0, 1, 1);
    let (g, v) = if vb.contains_tensor("parametrizations.weight.original0") {
        let p = vb.pp("parametrizations").pp("weight");
        (p.get(g_shape, "original0")?, p.get(shape, "original1")?)
    } else {
        (vb.get(g_shape, "weight_g")?, vb.get(shape, "weight_v")?)
    };
    let norm = v.sqr()?.sum_keepdim((1, 2))?.sqrt()?;
    v.broadcast_mul(&g.broadcast_div(&norm)?)
}

/// A convolution's weights in the layout its product wants. All come from the (taps · cin,
/// cout) matrix whose row `tap · cin + c` holds input channel c's weights at that tap, so
/// one window of `taps` consecutive frames is one row of the product.
enum ConvWeight {
    /// One output channel, undilated (the last layer, to mono audio): the matrix's one
    /// column, dotted with each window (a GEMM with one column runs far below this).
    Mono(Vec<f32>),
    /// Undilated: one product over every window. With `frames` > 1 (layers with fewer
    /// output channels than the GEMM multiplies at a time, which would multiply zero
    /// columns: `columns_per_pass`),
    /// one row of the product makes `frames` consecutive output frames: its window is
    /// taps + frames − 1 frames long and the matrix has frames · cout columns, frame f's
    /// taps shifted down by f frames (zeros elsewhere).
    Windows { weight: Weight, frames: usize },
    /// Dilated: the taps are not adjacent frames, so one product per tap, (cin, cout).
    Taps(Vec<Weight>),
    /// Three adjacent taps, stride 1, outputs as wide as the GEMM multiplies at a time:
    /// Winograd's F(m, 3) (`conv_winograd`), half the multiply-adds at m = 4.
    Winograd(Winograd),
}

/// A convolution's geometry: channels, taps, stride, dilation and transformers' padding.
/// Shared by the CPU layer here and the tensor-op one (`on_device`).
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub taps: usize,
    pub stride: usize,
    pub dilation: usize,
    pad_left: usize,
    pad_right: usize,
    pub mode: PadMode,
}

impl ConvShape {
    pub fn new(
        cfg: &EncodecConfig,
        (cin, cout): (usize, usize),
        taps: usize,
        stride: usize,
        dilation: usize,
    ) -> Self {
        let total = (taps - 1) * dilation + 1 - stride;
        let (pad_left, pad_right) = if cfg.use_causal_conv {
            (total, 0)
        } else {
            (total - total / 2, total / 2)
        };
        Self {
            cin,
            cout,
            taps,
            stride,
            dilation,
            pad_left,
            pad_right,
            mode: cfg.pad_mode,
        }
    }

    fn effective_taps(&self) -> usize {
        (self.taps - 1) * self.dilation + 1
    }

    /// The padding of an input of `len` frames: the fixed padding plus transformers'
    /// `_get_extra_padding_for_conv1d`, so the last window is whole.
    pub fn padding(&self, len: usize) -> Padding {
        let ek = self.effective_taps();
        let total = ek - self.stride;
        let n_frames = ((len + total) as f64 - ek as f64) / self.stride as f64 + 1.0;
        let ideal = (n_frames.ceil() as usize - 1) * self.stride + ek - total;
        Padding {
            len,
            left: self.pad_left,
            right: self.pad_right + ideal.saturating_sub(len),
            mode: self.mode,
        }
    }

    pub fn out_frames(&self, len: usize) -> usize {
        (self.padding(len).padded_len() - self.effective_taps()) / self.stride + 1
    }

    /// Multiply-adds for an input of `len` frames.
    pub fn multiply_adds(&self, len: usize) -> usize {
        self.out_frames(len) * self.taps * self.cin * self.cout
    }

    /// The padded input frames that output frames `rows` read.
    pub fn window(&self, rows: &Range<usize>) -> Range<usize> {
        rows.start * self.stride..(rows.end - 1) * self.stride + self.effective_taps()
    }
}

/// `EncodecConv1d`: weight-normed conv with "same"-style padding (asymmetric or causal).
pub struct Conv {
    weight: ConvWeight,
    pub bias: Vec<f32>,
    pub shape: ConvShape,
}

impl Conv {
    /// `products`: how its products multiply (a single output channel's stays f32).
    pub fn load(
        vb: VarBuilder,
        shape: ConvShape,
        products: ProductPrecision,
    ) -> candle_core::Result<Self> {
        let ConvShape {
            cin,
            cout,
            taps,
            stride,
            dilation,
            ..
        } = shape;
        let vb = vb.pp("conv");
        let w = weight_norm(&vb, (cout, cin, taps))?;
        let mut weight = vec![0f32; taps * cin * cout];
        for o in 0..cout {
            for c in 0..cin {
                for tap in 0..taps {
                    weight[(tap * cin + c) * cout + o] = w[(o * cin + c) * taps + tap];
                }
            }
        }
        let width = columns_per_pass(isa::active());
        let weight = if cout == 1 && dilation == 1 {
            ConvWeight::Mono(weight)
        } else if taps == 3 && stride == 1 && dilation == 1 && cout >= width {
            let taps: Vec<&[f32]> = weight.chunks_exact(cin * cout).collect();
            ConvWeight::Winograd(Winograd::new(
                &taps,
                cin,
                cout,
                outputs_per_group(cin, cout),
                products,
            ))
        } else if dilation == 1 {
            let frames = if stride == 1 {
                (width / cout).max(1)
            } else {
                1
            };
            let rows = (taps + frames - 1) * cin;
            let mut wide = vec![0f32; rows * frames * cout];
            for f in 0..frames {
                for (r, row) in weight.chunks_exact(cout).enumerate() {
                    let at = (f * cin + r) * frames * cout + f * cout;
                    wide[at..at + cout].copy_from_slice(row);
                }
            }
            let weight = Weight::with(&wide, rows, frames * cout, products);
            ConvWeight::Windows { weight, frames }
        } else {
            let per_tap = weight.chunks_exact(cin * cout);
            ConvWeight::Taps(
                per_tap
                    .map(|w| Weight::with(w, cin, cout, products))
                    .collect(),
            )
        };
        let bias = host(&vb.get(cout, "bias")?)?;
        Ok(Self {
            weight,
            bias,
            shape,
        })
    }

    /// Output frames per chunk of `frames`: per output frame, a chunk stages stride input
    /// frames, writes one output frame and any scratch the product needs.
    fn chunk(&self, frames: usize) -> usize {
        let s = &self.shape;
        let floats = s.cin * s.stride + s.cout + self.scratch_per_frame();
        chunk_frames(floats, self.weight_floats(), frames, self.frames_per_row())
    }

    /// Output frames one row of the product makes (`chunk_frames` cuts whole tiles).
    pub fn frames_per_row(&self) -> usize {
        match &self.weight {
            ConvWeight::Winograd(f) => f.frames_per_row(),
            ConvWeight::Windows { frames, .. } => *frames,
            ConvWeight::Mono(_) | ConvWeight::Taps(_) => 1,
        }
    }

    /// Floats of weights by the layer's definition: what sizes a chunk. A Winograd conv
    /// reads twice as many (six transformed matrices for three taps); the residual
    /// blocks' chunk heights were measured with this figure, not that one.
    pub fn weight_floats(&self) -> usize {
        let s = &self.shape;
        s.taps * s.cin * s.cout
    }

    /// Floats of scratch the product needs per output frame (Winograd's transforms).
    pub fn scratch_per_frame(&self) -> usize {
        match &self.weight {
            ConvWeight::Winograd(f) => f.scratch_per_frame(),
            _ => 0,
        }
    }

    /// conv(ELU(x) if `elu`, else x), bias included, written into `out` (any buffer:
    /// `buffers::sized`).
    pub fn forward(&self, x: &Signal, elu: bool, out: Vec<f32>) -> Signal {
        let chunk = self.chunk(self.shape.out_frames(x.frames));
        self.forward_in_chunks(x, elu, chunk, out)
    }

    /// `forward`, `chunk` output frames per task: each stages its window of the padded
    /// (and ELU'd) input and multiplies it while it is in cache.
    pub fn forward_in_chunks(&self, x: &Signal, elu: bool, chunk: usize, out: Vec<f32>) -> Signal {
        let shape = &self.shape;
        assert_eq!(x.channels, shape.cin, "conv input channels");
        let frames = shape.out_frames(x.frames);
        let padding = shape.padding(x.frames);
        let mut data = sized(out, frames * shape.cout);
        let bounds = chunk_bounds(frames, chunk);
        split_rows(&mut data, shape.cout, &bounds)
            .into_par_iter()
            .zip(bounds.par_windows(2))
            .for_each_init(Scratch::default, |scratch, (out, b)| {
                let window = shape.window(&(b[0]..b[1]));
                padding.stage(x, window, elu, &mut scratch.staged);
                self.write_staged(&scratch.staged, b[1] - b[0], out, &mut scratch.winograd);
            });
        Signal::new(frames, shape.cout, data)
    }

    /// out (rows × cout, row-major) = the bias plus the conv of `staged`, the padded
    /// input frames from the first row's window on; on this thread.
    pub fn write_staged(
        &self,
        staged: &[f32],
        rows: usize,
        out: &mut [f32],
        scratch: &mut WinogradScratch,
    ) {
        match &self.weight {
            // Winograd adds the bias where it combines its products: one pass less.
            ConvWeight::Winograd(f) => f.run(staged, rows, out, Start::Bias(&self.bias), scratch),
            _ => {
                fill_rows(out, &self.bias);
                self.acc_staged(staged, rows, out, scratch);
            }
        }
    }

    /// out (rows × cout, row-major) += the conv of `staged`, the padded input frames from
    /// the first row's window on; on this thread.
    pub fn acc_staged(
        &self,
        staged: &[f32],
        rows: usize,
        out: &mut [f32],
        scratch: &mut WinogradScratch,
    ) {
        let ConvShape {
            cin,
            cout,
            taps,
            stride,
            dilation,
            ..
        } = self.shape;
        let step = stride * cin;
        match &self.weight {
            ConvWeight::Mono(weight) => {
                let span = taps * cin;
                for (t, y) in out.iter_mut().take(rows).enumerate() {
                    *y += dot(weight, &staged[t * step..t * step + span]);
                }
            }
            // All taps at once: the window of frames t·s .. t·s + taps is contiguous.
            ConvWeight::Windows { weight, frames } => {
                let (f, whole) = (*frames, rows / frames);
                weight.acc_here(out, f * cout, staged, f * step, whole);
                let tail = rows - whole * f;
                if tail > 0 {
                    // The last few frames: a zero-extended window, a row of f frames,
                    // and only the first `tail` of them kept.
                    let from = whole * f * step;
                    let mut window = vec![0f32; (taps + f - 1) * cin];
                    let have = (staged.len() - from).min(window.len());
                    window[..have].copy_from_slice(&staged[from..from + have]);
                    let mut y = vec![0f32; f * cout];
                    weight.acc_here(&mut y, f * cout, &window, f * step, 1);
                    let out = &mut out[whole * f * cout..(whole * f + tail) * cout];
                    for (o, v) in out.iter_mut().zip(&y) {
                        *o += v;
                    }
                }
            }
            ConvWeight::Winograd(f) => f.run(staged, rows, out, Start::Accumulate, scratch),
            ConvWeight::Taps(taps) => {
                for (tap, w) in taps.iter().enumerate() {
                    let from = &staged[tap * dilation * cin..];
                    w.acc_here(out, cout, from, step, rows);
                }
            }
        }
    }
}

/// What a task keeps from one chunk to the next (`for_each_init`), so chunks do not
/// allocate: the staged input and Winograd's buffers.
#[derive(Default)]
struct Scratch {
    staged: Vec<f32>,
    winograd: WinogradScratch,
}

#[cfg(test)]
mod tests {
    use super::super::signal::pad;
    use super::super::testing::{close, config, noise, weights};
    use super::*;

    #[test]
    fn strided_dilated_conv_matches_the_definition() {
        for (cin, cout, stride, dilation, causal, frames) in [
            (3, 4, 1, 2, false, 11),
            (3, 4, 2, 1, true, 10),
            (3, 4, 2, 3, false, 13),
            (3, 4, 1, 1, true, 2),
            (3, 4, 1, 1, false, 17),
            // Outputs as wide as the GEMM's pass: Winograd, whole groups and not.
            (5, 64, 1, 1, false, 13),
            (5, 64, 1, 1, true, 12),
            (5, 64, 1, 1, false, 1),
        ] {
            let taps = 3;
            let (vb, w, b) = weights((cout, cin, taps), cout, 7);
            let shape = ConvShape::new(&config(causal), (cin, cout), taps, stride, dilation);
            let conv = Conv::load(vb, shape, ProductPrecision::F32).expect("load");
            let x = Signal::new(frames, cin, noise(frames * cin, 3));
            let p = shape.padding(frames);
            let p = pad(&x, p.left, p.right, shape.mode, true);
            let mut want = Vec::new();
            for t in 0..shape.out_frames(frames) {
                for o in 0..cout {
                    let mut acc = b[o];
                    for tap in 0..taps {
                        let row = p.row(t * stride + tap * dilation);
                        for c in 0..cin {
                            acc += w[(o * cin + c) * taps + tap] * row[c];
                        }
                    }
                    want.push(acc);
                }
            }
            // One chunk, and chunks that cut the signal anywhere (edges included).
            for chunk in [1000, 1, 2, 3, 5, 8] {
                close(
                    &conv.forward_in_chunks(&x, true, chunk, Vec::new()).data,
                    &want,
                );
            }
        }
    }

    #[test]
    fn adding_a_conv_matches_writing_it() {
        // `acc_staged` (onto what out holds) and `write_staged` (over it, from the bias)
        // agree, Winograd (64 outputs, whole groups and not) and the plain product alike.
        for (cout, rows) in [(4, 9), (64, 13), (64, 12)] {
            let (cin, taps) = (5, 3);
            let (vb, _, _) = weights((cout, cin, taps), cout, 7);
            let shape = ConvShape::new(&config(false), (cin, cout), taps, 1, 1);
            let conv = Conv::load(vb, shape, ProductPrecision::F32).expect("load");
            let staged = noise((rows + taps - 1) * cin, 8);
            let mut scratch = WinogradScratch::default();
            let mut written = vec![f32::NAN; rows * cout];
            conv.write_staged(&staged, rows, &mut written, &mut scratch);
            let mut added = vec![0f32; rows * cout];
            fill_rows(&mut added, &conv.bias);
            conv.acc_staged(&staged, rows, &mut added, &mut scratch);
            close(&added, &written);
        }
    }

    #[test]
    fn mono_conv_matches_the_definition() {
        let (cin, taps, frames) = (5, 7, 23);
        let (vb, w, b) = weights((1, cin, taps), 1, 9);
        let shape = ConvShape::new(&config(false), (cin, 1), taps, 1, 1);
        let conv = Conv::load(vb, shape, ProductPrecision::F32).expect("load");
        let x = Signal::new(frames, cin, noise(frames * cin, 4));
        let p = shape.padding(frames);
        let p = pad(&x, p.left, p.right, PadMode::Reflect, true);
        let want: Vec<f32> = (0..frames)
            .map(|t| {
                let mut acc = b[0];
                for tap in 0..taps {
                    for (c, v) in p.row(t + tap).iter().enumerate() {
                        acc += w[c * taps + tap] * v;
                    }
                }
                acc
            })
            .collect();
        for chunk in [1000, 4] {
            close(
                &conv.forward_in_chunks(&x, true, chunk, Vec::new()).data,
                &want,
            );
        }
    }
}
