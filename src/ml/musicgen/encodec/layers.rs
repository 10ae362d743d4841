//! EnCodec's convolution layers on the CPU, over time-major signals: `EncodecConv1d`,
//! `EncodecConvTranspose1d` and `EncodecResnetBlock`, with transformers' padding and
//! trimming (the LSTM is in `lstm`). Weights are read through candle (names as in the checkpoint)
//! and rearranged once at load time into the layouts the products want.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use rayon::prelude::*;

use super::signal::{elu_in_place, pad, PadMode, Signal, Weight, PAR_CHUNK};
use super::EncodecConfig;
use crate::ml::kernels::host_matmul::dot;

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
fn weight_norm(vb: &VarBuilder, shape: (usize, usize, usize)) -> candle_core::Result<Vec<f32>> {
    let g_shape = (shape.0, 1, 1);
    let (g, v) = if vb.contains_tensor("parametrizations.weight.original0") {
        let p = vb.pp("parametrizations").pp("weight");
        (p.get(g_shape, "original0")?, p.get(shape, "original1")?)
    } else {
        (vb.get(g_shape, "weight_g")?, vb.get(shape, "weight_v")?)
    };
    let norm = v.sqr()?.sum_keepdim((1, 2))?.sqrt()?;
    host(&v.broadcast_mul(&g.broadcast_div(&norm)?)?)
}

/// A convolution's weights in the layout its product wants. All come from the (taps · cin,
/// cout) matrix whose row `tap · cin + c` holds input channel c's weights at that tap, so
/// one window of `taps` consecutive frames is one row of the product.
enum ConvWeight {
    /// One output channel, undilated (the last layer, to mono audio): the matrix's one
    /// column, dotted with each window (a GEMM with one column runs far below this).
    Mono(Vec<f32>),
    /// Undilated: the whole matrix, one product over every window.
    Windows(Weight),
    /// Dilated: the taps are not adjacent frames, so one product per tap, (cin, cout).
    Taps(Vec<Weight>),
}

/// `EncodecConv1d`: weight-normed conv with "same"-style padding (asymmetric or causal).
pub struct Conv {
    weight: ConvWeight,
    pub bias: Vec<f32>,
    cin: usize,
    cout: usize,
    taps: usize,
    stride: usize,
    dilation: usize,
    pad_left: usize,
    pad_right: usize,
    mode: PadMode,
}

impl Conv {
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        vb: VarBuilder,
        cfg: &EncodecConfig,
        cin: usize,
        cout: usize,
        taps: usize,
        stride: usize,
        dilation: usize,
    ) -> candle_core::Result<Self> {
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
        let weight = if cout == 1 && dilation == 1 {
            ConvWeight::Mono(weight)
        } else if dilation == 1 {
            ConvWeight::Windows(Weight::new(&weight, taps * cin, cout))
        } else {
            let per_tap = weight.chunks_exact(cin * cout);
            ConvWeight::Taps(per_tap.map(|w| Weight::new(w, cin, cout)).collect())
        };
        let bias = host(&vb.get(cout, "bias")?)?;
        let total = (taps - 1) * dilation + 1 - stride;
        let (pad_left, pad_right) = if cfg.use_causal_conv {
            (total, 0)
        } else {
            (total - total / 2, total / 2)
        };
        let mode = cfg.pad_mode;
        Ok(Self {
            weight,
            bias,
            cin,
            cout,
            taps,
            stride,
            dilation,
            pad_left,
            pad_right,
            mode,
        })
    }

    fn effective_taps(&self) -> usize {
        (self.taps - 1) * self.dilation + 1
    }

    /// (left, right) padding for an input of `len` frames: the fixed padding plus
    /// transformers' `_get_extra_padding_for_conv1d`, so the last window is whole.
    fn padding(&self, len: usize) -> (usize, usize) {
        let ek = self.effective_taps();
        let total = ek - self.stride;
        let n_frames = ((len + total) as f64 - ek as f64) / self.stride as f64 + 1.0;
        let ideal = (n_frames.ceil() as usize - 1) * self.stride + ek - total;
        (self.pad_left, self.pad_right + ideal.saturating_sub(len))
    }

    fn out_frames(&self, len: usize) -> usize {
        let (l, r) = self.padding(len);
        (len + l + r - self.effective_taps()) / self.stride + 1
    }

    /// conv(ELU(x) if `elu`, else x), bias included.
    pub fn forward(&self, x: &Signal, elu: bool) -> Signal {
        let mut out = Signal::filled(self.out_frames(x.frames), &self.bias);
        self.accumulate(x, elu, &mut out);
        out
    }

    /// out += conv(ELU(x) if `elu`, else x), without the bias.
    pub fn accumulate(&self, x: &Signal, elu: bool, out: &mut Signal) {
        assert_eq!(x.channels, self.cin, "conv input channels");
        assert_eq!(out.channels, self.cout, "conv output channels");
        assert_eq!(out.frames, self.out_frames(x.frames), "conv output frames");
        let (l, r) = self.padding(x.frames);
        let padded;
        let input = if l == 0 && r == 0 && !elu {
            x
        } else {
            padded = pad(x, l, r, self.mode, elu);
            &padded
        };
        let (cin, cout) = (self.cin, self.cout);
        match &self.weight {
            ConvWeight::Mono(weight) => {
                let span = self.taps * cin;
                let step = self.stride * cin;
                out.data
                    .par_chunks_mut(PAR_CHUNK)
                    .enumerate()
                    .for_each(|(chunk, ys)| {
                        for (i, y) in ys.iter_mut().enumerate() {
                            let t = chunk * PAR_CHUNK + i;
                            *y += dot(weight, &input.data[t * step..t * step + span]);
                        }
                    });
            }
            // All taps at once: the window of frames t·s .. t·s + taps is contiguous.
            ConvWeight::Windows(w) => {
                w.acc(
                    &mut out.data,
                    cout,
                    &input.data,
                    self.stride * cin,
                    out.frames,
                );
            }
            ConvWeight::Taps(taps) => {
                for (tap, w) in taps.iter().enumerate() {
                    let from = &input.data[tap * self.dilation * cin..];
                    w.acc(&mut out.data, cout, from, self.stride * cin, out.frames);
                }
            }
        }
    }
}

/// `EncodecConvTranspose1d`: upsampling by `stride`, trimming the fixed padding so the
/// output is exactly input × stride frames.
///
/// Output frame u·s + p (phase p) sums input frames u − m through taps p + m·s, so each
/// phase is one product over a window of `window` consecutive input frames.
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

    /// convT(ELU(x) if `elu`, else x), trimmed, bias included.
    pub fn forward(&self, x: &Signal, elu: bool) -> Signal {
        assert_eq!(x.channels, self.cin, "transposed conv input channels");
        let (s, w, cin, cout) = (self.stride, self.window, self.cin, self.cout);
        // Zero frames on both sides so every window is in range.
        let input = pad(x, w - 1, w - 1, PadMode::Zero, elu);
        let full = (x.frames - 1) * s + self.taps;
        let end = full - self.trim_right;
        let mut out = Signal::filled(end - self.trim_left, &self.bias);
        let first_at_or_after = |p: usize, frame: usize| {
            if p >= frame {
                0
            } else {
                (frame - p).div_ceil(s)
            }
        };
        for (p, weight) in self.phases.iter().enumerate() {
            let u0 = first_at_or_after(p, self.trim_left);
            let u1 = first_at_or_after(p, end);
            if u1 <= u0 {
                continue;
            }
            let row = u0 * s + p - self.trim_left;
            let dst = &mut out.data[row * cout..];
            weight.acc(dst, s * cout, &input.data[u0 * cin..], cin, u1 - u0);
        }
        out
    }
}

/// `EncodecResnetBlock`: ELU → conv(k, dilation) → ELU → conv(1), plus the shortcut.
pub struct ResBlock {
    conv1: Conv,
    conv2: Conv,
    shortcut: Option<Conv>,
}

impl ResBlock {
    pub fn load(
        vb: VarBuilder,
        cfg: &EncodecConfig,
        dim: usize,
        dilation: usize,
    ) -> candle_core::Result<Self> {
        let hidden = dim / cfg.compress;
        let block = vb.pp("block");
        let k = cfg.residual_kernel_size;
        let conv1 = Conv::load(block.pp(1), cfg, dim, hidden, k, 1, dilation)?;
        let conv2 = Conv::load(block.pp(3), cfg, hidden, dim, 1, 1, 1)?;
        let shortcut = if cfg.use_conv_shortcut {
            Some(Conv::load(vb.pp("shortcut"), cfg, dim, dim, 1, 1, 1)?)
        } else {
            None
        };
        Ok(Self {
            conv1,
            conv2,
            shortcut,
        })
    }

    pub fn forward(&self, x: &Signal) -> Signal {
        let mut h = self.conv1.forward(x, true);
        elu_in_place(&mut h.data);
        // Both 1×1 convs accumulate onto one output that starts as their biases (or x).
        let mut out = match &self.shortcut {
            Some(s) => {
                let bias: Vec<f32> = s
                    .bias
                    .iter()
                    .zip(&self.conv2.bias)
                    .map(|(a, b)| a + b)
                    .collect();
                let mut out = Signal::filled(x.frames, &bias);
                s.accumulate(x, false, &mut out);
                out
            }
            None => {
                let mut out = x.clone();
                for row in out.data.chunks_exact_mut(x.channels) {
                    for (v, b) in row.iter_mut().zip(&self.conv2.bias) {
                        *v += b;
                    }
                }
                out
            }
        };
        self.conv2.accumulate(&h, false, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn config(causal: bool) -> EncodecConfig {
        let mut cfg: EncodecConfig = serde_json::from_str("{}").expect("defaults");
        cfg.use_causal_conv = causal;
        cfg
    }

    /// Weight-norm tensors (g, v) and a bias under `conv.`, plus the effective weight.
    fn weights(
        shape: (usize, usize, usize),
        bias: usize,
        seed: u64,
    ) -> (VarBuilder<'static>, Vec<f32>, Vec<f32>) {
        let (a, b, c) = shape;
        let v = noise(a * b * c, seed);
        let g = noise(a, seed + 1);
        let bias_v = noise(bias, seed + 2);
        let mut w = v.clone();
        for (i, rows) in w.chunks_exact_mut(b * c).enumerate() {
            let norm = rows.iter().map(|x| x * x).sum::<f32>().sqrt();
            rows.iter_mut().for_each(|x| *x *= g[i] / norm);
        }
        let dev = Device::Cpu;
        let t =
            |data: &[f32], shape: &[usize]| Tensor::from_slice(data, shape, &dev).expect("tensor");
        let map = HashMap::from([
            ("conv.weight_v".to_string(), t(&v, &[a, b, c])),
            ("conv.weight_g".to_string(), t(&g, &[a, 1, 1])),
            ("conv.bias".to_string(), t(&bias_v, &[bias])),
        ]);
        (VarBuilder::from_tensors(map, DType::F32, &dev), w, bias_v)
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "max |Δ| {worst}");
    }

    #[test]
    fn strided_dilated_conv_matches_the_definition() {
        let (cin, cout, taps) = (3, 4, 3);
        for (stride, dilation, causal, frames) in [
            (1, 2, false, 11),
            (2, 1, true, 10),
            (2, 3, false, 13),
            (1, 1, true, 2),
        ] {
            let (vb, w, b) = weights((cout, cin, taps), cout, 7);
            let conv =
                Conv::load(vb, &config(causal), cin, cout, taps, stride, dilation).expect("load");
            let x = Signal::new(frames, cin, noise(frames * cin, 3));
            let y = conv.forward(&x, false);
            let (l, r) = conv.padding(frames);
            let p = pad(&x, l, r, conv.mode, false);
            let mut want = Vec::new();
            for t in 0..y.frames {
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
            close(&y.data, &want);
        }
    }

    #[test]
    fn transposed_conv_matches_the_definition() {
        let (cin, cout) = (3, 2);
        for (taps, stride, causal) in [(8, 4, false), (5, 2, true), (5, 2, false), (4, 4, true)] {
            let (vb, w, b) = weights((cin, cout, taps), cout, 11);
            let up =
                ConvTranspose::load(vb, &config(causal), cin, cout, taps, stride).expect("load");
            let frames = 5;
            let x = Signal::new(frames, cin, noise(frames * cin, 5));
            let y = up.forward(&x, false);
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
            close(&y.data, keep);
        }
    }
}
