//! `EncodecLSTM` on the CPU: the input products for every frame at once, then the
//! recurrence frame by frame. Weights are read through candle (names as in the
//! checkpoint) and rearranged once at load time.
//!
//! Each frame reads all of W_hh (8 MB in f16 for musicgen's 1024 units), so one
//! sequence's recurrence is bound by that read, from L3 at best (and slower when other
//! work shares the cache). So a long signal is cut into a few segments stepped in
//! lockstep (`segments`; `kernels::lstm_cell` steps up to `MAX_SEQUENCES` at once): each
//! read of W_hh serves every segment, and the loop is bound by its multiply-adds
//! instead. A segment after the first starts from a zero state a warm-up before its own
//! frames, as a chunk of a live decode does (`chunked::DEFAULT_CONTEXT_SECONDS`): an
//! LSTM's state forgets where it started, and the warm-up's outputs are dropped.
//! Measured inside a 15 s decode on a 2-core EPYC (AVX2 path, f16 W_hh): a layer's
//! recurrence 42–50 ms as one sequence (W_hh read at 120–140 GB/s), 38 ms as three
//! segments (~75 % of the FMA peak: on AVX2 each f16 widening takes an FMA port's slot).
//!
//! Within a frame, a task takes a few blocks of units and finishes their cells and
//! hidden state for every segment: one pass over the weights and one fork-join per
//! frame.

mod segments;

use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::buffers::{sized, Buffers};
use super::conv::host;
use super::signal::{fill_rows, ProductPrecision, Signal, Weight};
use crate::ml::kernels::lstm_cell::{RecurrentPrecision, RecurrentWeight, UNITS};
use segments::{segments, Segment, MIN_SEGMENT_FRAMES, WARMUP_FRAMES};

/// Blocks per task: a few per thread, so one slow thread does not hold the frame up.
const BLOCKS_PER_TASK: usize = 4;

/// Buffers a decode of the LSTM holds at once: the input projections and two layers'
/// hidden states (`Lstm::scratch`).
const SCRATCH_BUFFERS: usize = 3;

/// `EncodecLSTM`: a stacked LSTM over time with a residual connection around it.
pub struct Lstm {
    layers: Vec<LstmLayer>,
    hidden: usize,
    /// The input projections (12 MB for 15 s of musicgen's) and the layers' hidden
    /// states, kept from one decode to the next: made fresh, their pages were faulted in
    /// and zeroed by the kernel on every decode.
    scratch: Buffers,
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
        products: ProductPrecision,
    ) -> candle_core::Result<Self> {
        let vb = vb.pp("lstm");
        let layers = (0..num_layers)
            .map(|l| {
                let w_ih = vb.get((4 * dim, dim), &format!("weight_ih_l{l}"))?;
                let w_hh = vb.get((4 * dim, dim), &format!("weight_hh_l{l}"))?;
                let bias = (vb.get(4 * dim, &format!("bias_ih_l{l}"))?
                    + vb.get(4 * dim, &format!("bias_hh_l{l}"))?)?;
                Ok(LstmLayer {
                    w_ih_t: Weight::with(&host(&w_ih.t()?.contiguous()?)?, dim, 4 * dim, products),
                    w_hh: RecurrentWeight::new(&host(&w_hh)?, dim, recurrent),
                    bias: host(&bias)?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            layers,
            hidden: dim,
            scratch: Buffers::keeping(SCRATCH_BUFFERS),
        })
    }

    /// The layers over `x`, plus `x`, written into `out` (any buffer: `buffers::sized`).
    pub fn forward(&self, x: &Signal, out: Vec<f32>) -> Signal {
        let count = x.frames / MIN_SEGMENT_FRAMES;
        self.forward_in_segments(x, &segments(x.frames, count, WARMUP_FRAMES), out)
    }

    /// `forward` with each layer's recurrence run as `segments` (which cover the frames,
    /// in order) stepped in lockstep.
    fn forward_in_segments(&self, x: &Signal, segments: &[Segment], out: Vec<f32>) -> Signal {
        assert_eq!(x.channels, self.hidden, "LSTM input channels");
        let (t_len, h_dim) = (x.frames, self.hidden);
        let scratch = &self.scratch;
        // Each layer's input projections, made again for the next layer.
        let xi = sized(scratch.take(), t_len * 4 * h_dim);
        let mut xi = Signal::new(t_len, 4 * h_dim, xi);
        // Each layer's output, the next one's input (the first reads `x` itself).
        let mut seq: Option<Signal> = None;
        for layer in &self.layers {
            let input = seq.as_ref().unwrap_or(x);
            // The input projection for every frame at once.
            fill_rows(&mut xi.data, &layer.bias);
            layer
                .w_ih_t
                .acc(&mut xi.data, 4 * h_dim, &input.data, h_dim, t_len);
            let hs = layer.recurrence(&xi, segments, scratch.take());
            if let Some(done) = seq.replace(hs) {
                scratch.give(done.data);
            }
        }
        let mut out = sized(out, x.data.len());
        let layers = seq.as_ref().unwrap_or(x);
        for ((o, s), v) in out.iter_mut().zip(&layers.data).zip(&x.data) {
            *o = s + v;
        }
        scratch.give(xi.data);
        if let Some(done) = seq {
            scratch.give(done.data);
        }
        Signal::new(t_len, h_dim, out)
    }
}

impl LstmLayer {
    /// The hidden states of every frame, given each frame's input projection plus biases
    /// `xi` (frames, 4H), the segments stepped in lockstep; written into `hs` (any
    /// buffer: `buffers::sized`).
    fn recurrence(&self, xi: &Signal, segments: &[Segment], hs: Vec<f32>) -> Signal {
        let (frames, hidden) = (xi.frames, xi.channels / 4);
        let count = segments.len();
        let mut hs = sized(hs, frames * hidden);
        // Each segment's previous hidden state, one after another.
        let mut prev = vec![0f32; count * hidden];
        // Cells and new hidden values block by block, a block's segments side by side
        // (so a task's blocks are one slice): block b's segment s at
        // (b·UNITS·count + s·units(b)).
        let mut cells = vec![0f32; count * hidden];
        let mut next = vec![0f32; count * hidden];
        let steps = segments.iter().map(|s| s.run.len()).max().unwrap_or(0);
        for step in 0..steps {
            // Runs are equally long but for a shorter last one: the live ones lead.
            let live = segments.iter().take_while(|s| step < s.run.len()).count();
            let h_prev: Vec<&[f32]> = prev.chunks_exact(hidden).take(live).collect();
            let xi_rows: Vec<&[f32]> = segments[..live]
                .iter()
                .map(|s| xi.row(s.run.start + step))
                .collect();
            self.step(&h_prev, &xi_rows, count, &mut cells, &mut next);
            // Each live segment's new state becomes its previous one, and its output if
            // the frame is its own.
            for (s, (segment, h)) in segments[..live]
                .iter()
                .zip(prev.chunks_exact_mut(hidden))
                .enumerate()
            {
                for b in 0..self.w_hh.blocks() {
                    let units = self.w_hh.units(b);
                    let at = b * UNITS * count + s * units;
                    h[b * UNITS..b * UNITS + units].copy_from_slice(&next[at..at + units]);
                }
                let frame = segment.run.start + step;
                if frame >= segment.own {
                    hs[frame * hidden..(frame + 1) * hidden].copy_from_slice(h);
                }
            }
        }
        Signal::new(frames, hidden, hs)
    }

    /// One frame of each live segment (`h_prev.len()` of the `count` in `cells` and
    /// `next`): gates = W_hh·h_prev + xi, then the cells and the new hidden values, a few
    /// blocks of units per task.
    fn step(
        &self,
        h_prev: &[&[f32]],
        xi: &[&[f32]],
        count: usize,
        cells: &mut [f32],
        next: &mut [f32],
    ) {
        let live = h_prev.len();
        let span = BLOCKS_PER_TASK * UNITS * count;
        next.par_chunks_mut(span)
            .zip(cells.par_chunks_mut(span))
            .enumerate()
            .for_each(|(task, (next, cells))| {
                for (i, (next, cells)) in next
                    .chunks_mut(UNITS * count)
                    .zip(cells.chunks_mut(UNITS * count))
                    .enumerate()
                {
                    let block = task * BLOCKS_PER_TASK + i;
                    // The live segments lead the block's slice.
                    let used = live * self.w_hh.units(block);
                    self.w_hh
                        .step_block(block, h_prev, xi, &mut cells[..used], &mut next[..used]);
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

    /// The tensors of a `layers`-layer LSTM of `h` units (weights times `scale`), by
    /// checkpoint name, and per layer [w_ih, w_hh, b_ih, b_hh].
    fn lstm_weights(
        h: usize,
        layers: usize,
        scale: f32,
    ) -> (HashMap<String, Tensor>, Vec<[Vec<f32>; 4]>) {
        let mut map = HashMap::new();
        let mut raw = Vec::new();
        for l in 0..layers {
            let seed = 40 + 10 * l as u64;
            let scaled = |n: usize, seed: u64| -> Vec<f32> {
                noise(n, seed).iter().map(|v| v * scale).collect()
            };
            let parts = [
                scaled(4 * h * h, seed),
                scaled(4 * h * h, seed + 1),
                scaled(4 * h, seed + 2),
                scaled(4 * h, seed + 3),
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
                let t = Tensor::from_slice(v, shape.as_slice(), &Device::Cpu).expect("tensor");
                map.insert(format!("lstm.{name}_l{l}"), t);
            }
            raw.push(parts);
        }
        (map, raw)
    }

    /// The LSTM `lstm_weights` made, loaded through `Lstm::load`.
    fn load(
        map: &HashMap<String, Tensor>,
        h: usize,
        layers: usize,
        recurrent: RecurrentPrecision,
    ) -> Lstm {
        let vb = VarBuilder::from_tensors(map.clone(), DType::F32, &Device::Cpu);
        Lstm::load(vb, h, layers, recurrent, ProductPrecision::F32).expect("load")
    }

    #[test]
    fn segments_step_like_separate_sequences() {
        // Each segment in lockstep gives what stepping its run alone from a zero state
        // gives (a partial block of units: 20).
        let (h, frames) = (20, 61);
        let (map, _) = lstm_weights(h, 1, 1.0);
        let lstm = load(&map, h, 1, RecurrentPrecision::F32);
        let layer = &lstm.layers[0];
        let xi = Signal::new(frames, 4 * h, noise(frames * 4 * h, 9));
        let segs = segments(frames, 3, 7);
        let together = layer.recurrence(&xi, &segs, Vec::new());
        for s in &segs {
            let part = &xi.data[s.run.start * 4 * h..s.run.end * 4 * h];
            let part = Signal::new(s.run.len(), 4 * h, part.to_vec());
            let alone = layer.recurrence(&part, &segments(s.run.len(), 1, 0), Vec::new());
            let skip = s.own - s.run.start;
            close(
                &together.data[s.own * h..s.run.end * h],
                &alone.data[skip * h..],
            );
        }
    }

    #[test]
    fn warmed_up_segments_match_the_whole_recurrence() {
        // An LSTM whose state forgets (small weights: forget gates near ½): segments
        // warmed up on 40 frames match one sequence to f32 rounding; without a warm-up
        // they do not (here the difference shrinks ~30× per 10 frames of warm-up).
        let (h, frames, layers) = (20, 120, 2);
        let (map, _) = lstm_weights(h, layers, 0.3);
        let lstm = load(&map, h, layers, RecurrentPrecision::F32);
        let x = Signal::new(frames, h, noise(frames * h, 5));
        let whole = lstm.forward_in_segments(&x, &segments(frames, 1, 0), Vec::new());
        let worst = |warmup| {
            let segs = segments(frames, 3, warmup);
            let parts = lstm.forward_in_segments(&x, &segs, Vec::new());
            parts
                .data
                .iter()
                .zip(&whole.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max)
        };
        assert!(worst(0) > 0.1, "no warm-up: {}", worst(0));
        assert!(worst(20) < worst(10) / 10.0, "20 vs 10 frames");
        assert!(worst(40) < 1e-6, "a warm-up of 40: {}", worst(40));
    }

    #[test]
    fn lstm_matches_the_definition() {
        // 20 units: one whole block of UNITS and a partial one.
        let (h, frames, layers) = (20, 9, 2);
        let (map, raw) = lstm_weights(h, layers, 1.0);
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
        close(
            &load(&map, h, layers, RecurrentPrecision::F32)
                .forward(&x, Vec::new())
                .data,
            &exact,
        );
        let half = load(&map, h, layers, RecurrentPrecision::F16)
            .forward(&x, Vec::new())
            .data;
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
