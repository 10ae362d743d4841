//! `EncodecLSTM` on the CPU: the input products for every frame at once, then the
//! recurrence frame by frame. Weights are read through candle (names as in the
//! checkpoint) and rearranged once at load time.
//!
//! Each frame reads all of W_hh (16 MB in f32 for musicgen's 1024 units, from L3 at
//! best), so the recurrence is bound by that read: W_hh is regrouped for the recurrence
//! kernel (`kernels::lstm_cell`, a block of UNITS units' four gates side by side, in f32
//! or f16), a task takes a few blocks and finishes their units' cell and hidden state:
//! one pass over the weights and one fork-join per frame.

use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::buffers::sized;
use super::conv::host;
use super::signal::{fill_rows, Signal, Weight};
use crate::ml::kernels::lstm_cell::{RecurrentPrecision, RecurrentWeight, UNITS};

/// Blocks per task: a few per thread, so one slow thread does not hold the frame up.
const BLOCKS_PER_TASK: usize = 4;

/// `EncodecLSTM`: a stacked LSTM over time with a residual connection around it.
pub struct Lstm {
    layers: Vec<LstmLayer>,
    hidden: usize,
}

struct LstmLayer {
    /// W_ih transposed: (in, 4H), for one product over every frame at once.
    w_ih_t: Weight,
    /// W_hh, regrouped for the recurrence kernel.
    w_hh: RecurrentWeight,
    /// b_ih + b_hh, in torch's gate order (i, f, g, o), 4H.
    bias: Vec<f32>,
}

impl Lstm {
    /// `recurrent`: how W_hh is kept (the input weights stay f32: they are read once per
    /// decode, not once per frame).
    pub fn load(
        vb: VarBuilder,
        dim: usize,
        num_layers: usize,
        recurrent: RecurrentPrecision,
    ) -> candle_core::Result<Self> {
        let vb = vb.pp("lstm");
        let layers = (0..num_layers)
            .map(|l| {
                let w_ih = vb.get((4 * dim, dim), &format!("weight_ih_l{l}"))?;
                let w_hh = vb.get((4 * dim, dim), &format!("weight_hh_l{l}"))?;
                let bias = (vb.get(4 * dim, &format!("bias_ih_l{l}"))?
                    + vb.get(4 * dim, &format!("bias_hh_l{l}"))?)?;
                Ok(LstmLayer {
                    w_ih_t: Weight::new(&host(&w_ih.t()?.contiguous()?)?, dim, 4 * dim),
                    w_hh: RecurrentWeight::new(&host(&w_hh)?, dim, recurrent),
                    bias: host(&bias)?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            layers,
            hidden: dim,
        })
    }

    /// The layers over `x`, plus `x`, written into `out` (any buffer: `buffers::sized`).
    pub fn forward(&self, x: &Signal, out: Vec<f32>) -> Signal {
        assert_eq!(x.channels, self.hidden, "LSTM input channels");
        let (t_len, h_dim) = (x.frames, self.hidden);
        // Each layer's input projections, made again for the next layer.
        let mut xi = Signal::new(t_len, 4 * h_dim, vec![0f32; t_len * 4 * h_dim]);
        // Each layer's output, the next one's input (the first reads `x` itself).
        let mut seq: Option<Signal> = None;
        for layer in &self.layers {
            let input = seq.as_ref().unwrap_or(x);
            // The input projection for every frame at once.
            fill_rows(&mut xi.data, &layer.bias);
            layer
                .w_ih_t
                .acc(&mut xi.data, 4 * h_dim, &input.data, h_dim, t_len);
            let mut hs = vec![0f32; t_len * h_dim];
            let mut c = vec![0f32; h_dim];
            let zeros = vec![0f32; h_dim];
            for t in 0..t_len {
                let (done, rest) = hs.split_at_mut(t * h_dim);
                let h_prev = if t == 0 {
                    &zeros[..]
                } else {
                    &done[(t - 1) * h_dim..]
                };
                let h_next = &mut rest[..h_dim];
                layer.step(h_prev, xi.row(t), &mut c, h_next);
            }
            seq = Some(Signal::new(t_len, h_dim, hs));
        }
        let mut out = sized(out, x.data.len());
        let layers = seq.as_ref().unwrap_or(x);
        for ((o, s), v) in out.iter_mut().zip(&layers.data).zip(&x.data) {
            *o = s + v;
        }
        Signal::new(t_len, h_dim, out)
    }
}

impl LstmLayer {
    /// One frame: gates = W_hh·h_prev + xi (input projection and biases), then the cell
    /// `c` and the new hidden state `h_next`, a few blocks of units per task.
    fn step(&self, h_prev: &[f32], xi: &[f32], c: &mut [f32], h_next: &mut [f32]) {
        let span = BLOCKS_PER_TASK * UNITS;
        h_next
            .par_chunks_mut(span)
            .zip(c.par_chunks_mut(span))
            .enumerate()
            .for_each(|(task, (h_out, c_out))| {
                for (i, (h_out, c_out)) in h_out
                    .chunks_mut(UNITS)
                    .zip(c_out.chunks_mut(UNITS))
                    .enumerate()
                {
                    let block = task * BLOCKS_PER_TASK + i;
                    self.w_hh.step_block(block, h_prev, xi, c_out, h_out);
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, noise};
    use super::*;
    use candle_core::{DType, Device, Tensor};
    use half::f16;
    use std::collections::HashMap;

    #[test]
    fn lstm_matches_the_definition() {
        // 20 units: one whole block of UNITS and a partial one.
        let (h, frames, layers) = (20, 9, 2);
        let dev = Device::Cpu;
        let mut map = HashMap::new();
        let mut raw = Vec::new();
        for l in 0..layers {
            let seed = 40 + 10 * l as u64;
            let parts = [
                noise(4 * h * h, seed),
                noise(4 * h * h, seed + 1),
                noise(4 * h, seed + 2),
                noise(4 * h, seed + 3),
            ];
            for (name, (v, shape)) in
                ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
                    .iter()
                    .zip(parts.iter().zip([
                        vec![4 * h, h],
                        vec![4 * h, h],
                        vec![4 * h],
                        vec![4 * h],
                    ]))
            {
                let t = Tensor::from_slice(v, shape.as_slice(), &dev).expect("tensor");
                map.insert(format!("lstm.{name}_l{l}"), t);
            }
            raw.push(parts);
        }
        let x = Signal::new(frames, h, noise(frames * h, 3));
        // torch's definition, with W_hh through `round` (f16 keeps it rounded so).
        let definition = |round: fn(f32) -> f32| {
            let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
            let mut seq = x.data.clone();
            for [w_ih, w_hh, b_ih, b_hh] in &raw {
                let w_hh: Vec<f32> = w_hh.iter().map(|v| round(*v)).collect();
                let (mut hs, mut cs) = (vec![0f32; h], vec![0f32; h]);
                let mut next = Vec::new();
                for t in 0..frames {
                    let input = &seq[t * h..(t + 1) * h];
                    let gate = |r: usize| {
                        let mut acc = b_ih[r] + b_hh[r];
                        for k in 0..h {
                            acc += w_ih[r * h + k] * input[k] + w_hh[r * h + k] * hs[k];
                        }
                        acc
                    };
                    let g: Vec<f32> = (0..4 * h).map(gate).collect();
                    for j in 0..h {
                        cs[j] = sig(g[h + j]) * cs[j] + sig(g[j]) * g[2 * h + j].tanh();
                        hs[j] = sig(g[3 * h + j]) * cs[j].tanh();
                    }
                    next.extend_from_slice(&hs);
                }
                seq = next;
            }
            for (s, v) in seq.iter_mut().zip(&x.data) {
                *s += v;
            }
            seq
        };
        let exact = definition(|v| v);
        let load = |recurrent| {
            let vb = VarBuilder::from_tensors(map.clone(), DType::F32, &dev);
            Lstm::load(vb, h, layers, recurrent).expect("load")
        };
        close(
            &load(RecurrentPrecision::F32).forward(&x, Vec::new()).data,
            &exact,
        );
        let half = load(RecurrentPrecision::F16).forward(&x, Vec::new()).data;
        close(&half, &definition(|v| f16::from_f32(v).to_f32()));
        // And what the rounding costs against the exact weights.
        let worst = half
            .iter()
            .zip(&exact)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst > 0.0 && worst < 2e-3,
            "f16 W_hh moved the output by {worst}"
        );
    }
}
