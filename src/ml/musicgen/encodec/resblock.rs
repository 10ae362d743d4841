//! `EncodecResnetBlock` on the CPU: ELU → conv(k, dilation) → ELU → conv(1), plus the
//! shortcut (x itself, or a 1×1 conv), all of it one time chunk per task: the hidden
//! signal never leaves the core's cache and the output is written once.

use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::buffers::{reused, sized, WinogradScratch};
use super::conv::{Conv, ConvShape};
use super::signal::ProductPrecision;
use super::signal::{chunk_bounds, chunk_frames, elu_in_place, fill_rows, split_rows, Signal};
use super::EncodecConfig;

/// A block's three convs: conv1 (k, dilated, down to dim / compress), conv2 (1×1, back
/// up to dim) and the 1×1 shortcut.
pub fn shapes(cfg: &EncodecConfig, dim: usize, dilation: usize) -> [ConvShape; 3] {
    let hidden = dim / cfg.compress;
    [
        ConvShape::new(cfg, (dim, hidden), cfg.residual_kernel_size, 1, dilation),
        ConvShape::new(cfg, (hidden, dim), 1, 1, 1),
        ConvShape::new(cfg, (dim, dim), 1, 1, 1),
    ]
}

pub struct ResBlock {
    conv1: Conv,
    conv2: Conv,
    shortcut: Option<Conv>,
    /// conv2's bias, plus the shortcut conv's when there is one: where the output starts.
    out_bias: Vec<f32>,
}

impl ResBlock {
    pub fn load(
        vb: VarBuilder,
        cfg: &EncodecConfig,
        dim: usize,
        dilation: usize,
        products: ProductPrecision,
    ) -> candle_core::Result<Self> {
        let block = vb.pp("block");
        let [one, two, short] = shapes(cfg, dim, dilation);
        let conv1 = Conv::load(block.pp(1), one, products)?;
        let conv2 = Conv::load(block.pp(3), two, products)?;
        let shortcut = if cfg.use_conv_shortcut {
            Some(Conv::load(vb.pp("shortcut"), short, products)?)
        } else {
            None
        };
        let out_bias = match &shortcut {
            Some(s) => s.bias.iter().zip(&conv2.bias).map(|(a, b)| a + b).collect(),
            None => conv2.bias.clone(),
        };
        Ok(Self {
            conv1,
            conv2,
            shortcut,
            out_bias,
        })
    }

    /// The block's output, written into `out` (any buffer: `buffers::sized`).
    pub fn forward(&self, x: &Signal, out: Vec<f32>) -> Signal {
        // Per frame: the staged input, the hidden frame, the output frame and conv1's
        // scratch.
        let c = x.channels;
        let floats = 2 * c + self.conv1.shape.cout + self.conv1.scratch_per_frame();
        let weights = [Some(&self.conv1), Some(&self.conv2), self.shortcut.as_ref()]
            .into_iter()
            .flatten()
            .map(Conv::weight_floats)
            .sum();
        let chunk = chunk_frames(floats, weights, x.frames, self.conv1.frames_per_row());
        self.forward_in_chunks(x, chunk, out)
    }

    /// `forward`, `chunk` frames per task.
    pub fn forward_in_chunks(&self, x: &Signal, chunk: usize, out: Vec<f32>) -> Signal {
        let one = &self.conv1.shape;
        let (len, c, hidden) = (x.frames, x.channels, one.cout);
        assert_eq!(c, one.cin, "residual block channels");
        assert_eq!(one.out_frames(len), len, "residual conv keeps the length");
        let padding = one.padding(len);
        let mut data = sized(out, len * c);
        let bounds = chunk_bounds(len, chunk);
        split_rows(&mut data, c, &bounds)
            .into_par_iter()
            .zip(bounds.par_windows(2))
            .for_each_init(Scratch::default, |scratch, (out, b)| {
                let rows = b[1] - b[0];
                let Scratch {
                    staged,
                    hidden: h,
                    winograd,
                } = scratch;
                padding.stage(x, one.window(&(b[0]..b[1])), true, staged);
                let h = reused(h, rows * hidden);
                self.conv1.write_staged(staged, rows, h, winograd);
                elu_in_place(h);
                let own = &x.data[b[0] * c..b[1] * c];
                match &self.shortcut {
                    Some(s) => {
                        fill_rows(out, &self.out_bias);
                        s.acc_staged(own, rows, out, winograd);
                    }
                    None => {
                        // Row by row (a `cycle()` over the bias compiled to a scalar loop).
                        for (o, v) in out.chunks_exact_mut(c).zip(own.chunks_exact(c)) {
                            for ((o, v), bias) in o.iter_mut().zip(v).zip(&self.out_bias) {
                                *o = v + bias;
                            }
                        }
                    }
                }
                self.conv2.acc_staged(h, rows, out, winograd);
            });
        Signal::new(len, c, data)
    }
}

/// What a task keeps from one chunk to the next (`for_each_init`), so chunks do not
/// allocate: the staged input, the hidden signal and Winograd's buffers.
#[derive(Default)]
struct Scratch {
    staged: Vec<f32>,
    hidden: Vec<f32>,
    winograd: WinogradScratch,
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, config, near, noise, tensors};
    use super::*;
    use std::collections::HashMap;

    /// A conv's effective weight and its bias.
    type Parts = (Vec<f32>, Vec<f32>);

    /// One block's tensors under `block.1`, `block.3` and `shortcut`, from `tensors`.
    fn block_weights(dim: usize, hidden: usize, k: usize) -> (VarBuilder<'static>, [Parts; 3]) {
        let mut map = HashMap::new();
        let mut parts = Vec::new();
        for (i, (name, shape)) in [
            ("block.1", (hidden, dim, k)),
            ("block.3", (dim, hidden, 1)),
            ("shortcut", (dim, dim, 1)),
        ]
        .into_iter()
        .enumerate()
        {
            let (tensors, w, b) = tensors(shape, shape.0, 20 + 3 * i as u64);
            for (key, t) in tensors {
                map.insert(format!("{name}.{key}"), t);
            }
            parts.push((w, b));
        }
        let vb = VarBuilder::from_tensors(map, candle_core::DType::F32, &candle_core::Device::Cpu);
        let parts: [Parts; 3] = parts.try_into().expect("three convs");
        (vb, parts)
    }

    #[test]
    fn residual_block_matches_the_definition() {
        let (frames, k) = (13, 3);
        // 128 channels: a hidden signal as wide as the GEMM's pass, so conv1 is Winograd.
        // 256 in 16 bits: both convs (and the shortcut) wide enough for them.
        let (f32, int16) = (ProductPrecision::F32, ProductPrecision::Int16);
        for (dim, shortcut, dilation, products) in [
            (4, false, 1, f32),
            (4, true, 1, f32),
            (4, false, 2, f32),
            (4, true, 2, f32),
            (128, false, 1, f32),
            (128, true, 1, f32),
            (256, false, 1, int16),
            (256, true, 1, int16),
        ] {
            let mut cfg = config(false);
            cfg.use_conv_shortcut = shortcut;
            let hidden = dim / cfg.compress;
            let (vb, [(w1, b1), (w2, b2), (ws, bs)]) = block_weights(dim, hidden, k);
            let block = ResBlock::load(vb, &cfg, dim, dilation, products).expect("load");
            let x = Signal::new(frames, dim, noise(frames * dim, 6));
            let elu = |v: f32| if v > 0.0 { v } else { v.exp() - 1.0 };
            // Reflect padding of the dilated "same" conv: (k−1)·d frames split evenly.
            let half = (k - 1) * dilation / 2;
            let at = |t: isize| -> usize {
                let n = frames as isize;
                (if t < 0 {
                    -t
                } else if t >= n {
                    2 * n - 2 - t
                } else {
                    t
                }) as usize
            };
            let mut want = Vec::new();
            for t in 0..frames {
                let h: Vec<f32> = (0..hidden)
                    .map(|o| {
                        let mut acc = b1[o];
                        for tap in 0..k {
                            let src = at(t as isize + (tap * dilation) as isize - half as isize);
                            for ch in 0..dim {
                                acc += w1[(o * dim + ch) * k + tap] * elu(x.row(src)[ch]);
                            }
                        }
                        elu(acc)
                    })
                    .collect();
                for o in 0..dim {
                    let mut acc =
                        b2[o] + (0..hidden).map(|j| w2[o * hidden + j] * h[j]).sum::<f32>();
                    acc += if shortcut {
                        bs[o] + (0..dim).map(|j| ws[o * dim + j] * x.row(t)[j]).sum::<f32>()
                    } else {
                        x.row(t)[o]
                    };
                    want.push(acc);
                }
            }
            for chunk in [1000, 1, 2, 5, 6] {
                let got = block.forward_in_chunks(&x, chunk, Vec::new()).data;
                match products {
                    ProductPrecision::F32 => close(&got, &want),
                    ProductPrecision::Int16 => near(&got, &want, 57.0),
                }
            }
        }
    }
}
