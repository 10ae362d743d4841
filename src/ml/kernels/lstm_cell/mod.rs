//! One frame of an LSTM layer's recurrence on the CPU, for one or a few sequences in
//! lockstep: gates = W_hh · h + xi (the input projection and biases, made for every frame
//! at once by the caller), then the cell and the new hidden state, for one block of
//! `UNITS` hidden units at a time.
//!
//! Why a kernel of its own: every frame reads all of W_hh (16 MB in f32 for EnCodec's
//! 1024 units), one frame after another, so one sequence's recurrence is bound by that
//! read from L3 (or from memory, when other work has pushed W_hh out of L3). Several
//! sequences stepped together (`MAX_SEQUENCES`) share each read: the weights are read
//! once per frame for all of them, and the loop becomes bound by its multiply-adds. The
//! four gates of a block's units lie side by side for every input, so a broadcast h value
//! multiplies whole vectors of gate sums (no horizontal sums, explicit FMAs), and the
//! cell's sigmoids and tanhs run a vector of units at a time. W_hh may be kept in f16
//! (`RecurrentPrecision::F16`): half the bytes to read, widened in registers.

use half::f16;

use super::isa::{self, Isa};

#[cfg(target_arch = "x86_64")]
mod x86;

/// Hidden units per block: their 4 gates are 64 sums, four AVX-512 vectors (eight AVX2).
pub const UNITS: usize = 16;
/// Gate sums per block.
const GATES: usize = 4 * UNITS;
/// Gates per stripe of a block's weights: each input's STRIPE weights lie together (one
/// 64-byte line in f16) and a stripe's inputs follow one another, so a pass over part of
/// the gates (several sequences keep fewer gate sums in registers at once) reads one
/// stream from the start, not every other line of interleaved rows.
const STRIPE: usize = 32;

const _: () = assert!(
    GATES.is_multiple_of(STRIPE) && STRIPE.is_multiple_of(16),
    "stripes of whole vectors"
);

/// Where gate `gate`'s weight for input k lies in a block's weights (`hidden` inputs).
#[inline(always)]
fn weight_at(hidden: usize, k: usize, gate: usize) -> usize {
    (gate / STRIPE) * hidden * STRIPE + k * STRIPE + gate % STRIPE
}
/// Sequences one call steps at most: their gate sums stay in registers (`x86`).
pub const MAX_SEQUENCES: usize = 4;

/// How W_hh is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecurrentPrecision {
    /// As trained: the recurrence as torch computes it (to f32 rounding).
    F32,
    /// Rounded to f16 (2⁻¹¹ relative) at load: half the bytes every frame reads.
    F16,
}

/// W_hh (4H, H) regrouped: per block of UNITS units, the GATES weights of each input k
/// (gate q of unit u is the block's gate q·UNITS + u, torch's gate order i, f, g, o), in
/// stripes (`weight_at`); units past H are zero.
pub struct RecurrentWeight {
    w: Storage,
    hidden: usize,
}

enum Storage {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

/// A stored weight: widened to f32 in registers by the vector paths, one at a time by
/// the portable one.
#[cfg(target_arch = "x86_64")]
trait Stored: super::lanes::Elem + Into<f32> {}
#[cfg(not(target_arch = "x86_64"))]
trait Stored: Copy + Into<f32> {}
impl Stored for f32 {}
impl Stored for f16 {}

impl RecurrentWeight {
    /// From torch's (4H, H) `weight_hh`, row-major.
    pub fn new(w_hh: &[f32], hidden: usize, precision: RecurrentPrecision) -> Self {
        assert_eq!(w_hh.len(), 4 * hidden * hidden, "weight_hh is not (4H, H)");
        let blocks = hidden.div_ceil(UNITS);
        let mut w = vec![0f32; blocks * hidden * GATES];
        for q in 0..4 {
            for j in 0..hidden {
                let (block, u) = (j / UNITS, j % UNITS);
                for k in 0..hidden {
                    w[block * hidden * GATES + weight_at(hidden, k, q * UNITS + u)] =
                        w_hh[(q * hidden + j) * hidden + k];
                }
            }
        }
        let w = match precision {
            RecurrentPrecision::F32 => Storage::F32(w),
            RecurrentPrecision::F16 => Storage::F16(w.iter().map(|v| f16::from_f32(*v)).collect()),
        };
        Self { w, hidden }
    }

    /// Blocks of UNITS units (the last may be partial).
    pub fn blocks(&self) -> usize {
        self.hidden.div_ceil(UNITS)
    }

    /// Units in block `block`: UNITS, but for a partial last block.
    pub fn units(&self, block: usize) -> usize {
        (self.hidden - block * UNITS).min(UNITS)
    }

    /// Block `block`'s units for one frame of each of a few sequences, on the active
    /// kernel path: for sequence s, `h_prev[s]` its previous hidden state (H) and `xi[s]`
    /// its frame's input projection plus biases (4H, torch's gate order); `c` and `h_out`
    /// hold the block's cells (updated) and new hidden values, sequence after sequence
    /// (`units(block)` each).
    pub fn step_block(
        &self,
        block: usize,
        h_prev: &[&[f32]],
        xi: &[&[f32]],
        c: &mut [f32],
        h_out: &mut [f32],
    ) {
        self.step_block_on(isa::active(), block, h_prev, xi, c, h_out)
    }

    /// `step_block` on a given path (tests run every path the CPU has).
    pub fn step_block_on(
        &self,
        isa: Isa,
        block: usize,
        h_prev: &[&[f32]],
        xi: &[&[f32]],
        c: &mut [f32],
        h_out: &mut [f32],
    ) {
        let seqs = h_prev.len();
        assert!(
            (1..=MAX_SEQUENCES).contains(&seqs) && xi.len() == seqs,
            "1 to {MAX_SEQUENCES} sequences, each with its input projection"
        );
        match seqs {
            1 => self.step_sequences::<1>(isa, block, h_prev, xi, c, h_out),
            2 => self.step_sequences::<2>(isa, block, h_prev, xi, c, h_out),
            3 => self.step_sequences::<3>(isa, block, h_prev, xi, c, h_out),
            _ => self.step_sequences::<4>(isa, block, h_prev, xi, c, h_out),
        }
    }

    /// `step_block_on` for S sequences (S = `h_prev.len()`, checked by the caller).
    fn step_sequences<const S: usize>(
        &self,
        isa: Isa,
        block: usize,
        h_prev: &[&[f32]],
        xi: &[&[f32]],
        c: &mut [f32],
        h_out: &mut [f32],
    ) {
        let hidden = self.hidden;
        assert!(isa <= isa::detect(), "{isa} asked for on a CPU without it");
        assert!(block < self.blocks(), "block out of range");
        assert!(
            h_prev.iter().all(|h| h.len() == hidden) && xi.iter().all(|x| x.len() == 4 * hidden),
            "frame sizes"
        );
        let units = self.units(block);
        assert!(
            c.len() == S * units && h_out.len() == S * units,
            "block sizes"
        );
        let h_prev: [&[f32]; S] = std::array::from_fn(|s| h_prev[s]);
        let xi: [&[f32]; S] = std::array::from_fn(|s| xi[s]);
        let at = block * hidden * GATES..(block + 1) * hidden * GATES;
        let first = block * UNITS;
        match &self.w {
            Storage::F32(w) => Block::new(&w[at], h_prev, xi, first).step(isa, c, h_out),
            Storage::F16(w) => Block::new(&w[at], h_prev, xi, first).step(isa, c, h_out),
        }
    }
}

/// One block's inputs for one frame of S sequences.
struct Block<'a, E, const S: usize> {
    /// The block's weights: hidden · GATES, laid out by `weight_at`.
    w: &'a [E],
    h_prev: [&'a [f32]; S],
    xi: [&'a [f32]; S],
    /// The block's first unit.
    first: usize,
}

impl<'a, E: Stored, const S: usize> Block<'a, E, S> {
    fn new(w: &'a [E], h_prev: [&'a [f32]; S], xi: [&'a [f32]; S], first: usize) -> Self {
        assert_eq!(w.len(), h_prev[0].len() * GATES, "block weights");
        Self {
            w,
            h_prev,
            xi,
            first,
        }
    }

    /// The gate sums, then the cells and hidden values of the block's units, `c.len() / S`
    /// per sequence.
    fn step(&self, isa: Isa, c: &mut [f32], h_out: &mut [f32]) {
        // SAFETY: the CPU has the path (the caller asserted it); the weights hold
        // hidden · GATES values (asserted in `new`) and every h_prev is hidden long;
        // c and h_out are S equal parts of at most UNITS (asserted by the caller).
        #[cfg(target_arch = "x86_64")]
        match isa {
            Isa::Avx512 => return unsafe { x86::step_avx512(self, c, h_out) },
            Isa::Avx2 => return unsafe { x86::step_avx2(self, c, h_out) },
            Isa::Portable => {}
        }
        let _ = isa;
        let units = c.len() / S;
        for (s, (c, h_out)) in c
            .chunks_exact_mut(units)
            .zip(h_out.chunks_exact_mut(units))
            .enumerate()
        {
            let hidden = self.h_prev[s].len();
            let mut g = [0f32; GATES];
            for (k, &hk) in self.h_prev[s].iter().enumerate() {
                for (gate, acc) in g.iter_mut().enumerate() {
                    *acc += hk * self.w[weight_at(hidden, k, gate)].into();
                }
            }
            self.cell(s, &g, c, h_out);
        }
    }

    /// Sequence s's cells and hidden values of the block's `c.len()` units from its gate
    /// sums, a unit at a time (the portable path, and a partial last block).
    fn cell(&self, s: usize, g: &[f32; GATES], c: &mut [f32], h_out: &mut [f32]) {
        let hidden = self.h_prev[s].len();
        for (u, (c, h)) in c.iter_mut().zip(h_out).enumerate() {
            let j = self.first + u;
            let gate = |q: usize| g[q * UNITS + u] + self.xi[s][q * hidden + j];
            let (i, f) = (sigmoid(gate(0)), sigmoid(gate(1)));
            let (cand, o) = (gate(2).tanh(), sigmoid(gate(3)));
            *c = f * *c + i * cand;
            *h = o * c.tanh();
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::kernels::host_matmul::tests::data;

    #[test]
    fn every_path_matches_the_definition_at_every_edge() {
        // One whole block; a partial last block; an odd width (AVX-512 sums even and odd
        // inputs apart: the last input goes alone); gate sums large enough to saturate.
        // Every number of sequences in lockstep, each with its own state and inputs.
        for (hidden, scale) in [(16, 1.0f32), (20, 1.0), (33, 1.0), (48, 8.0)] {
            let w_hh: Vec<f32> = data(4 * hidden * hidden, 1)
                .iter()
                .map(|v| v * scale)
                .collect();
            let seq = |s: u32| {
                let h_prev = data(hidden, 10 * s + 2);
                let xi = data(4 * hidden, 10 * s + 3);
                let c0 = data(hidden, 10 * s + 4);
                (h_prev, xi, c0)
            };
            let all: Vec<_> = (0..MAX_SEQUENCES as u32).map(seq).collect();
            for precision in [RecurrentPrecision::F32, RecurrentPrecision::F16] {
                let round = |v: f32| match precision {
                    RecurrentPrecision::F32 => v,
                    RecurrentPrecision::F16 => f16::from_f32(v).to_f32(),
                };
                // torch's cell, in f64, over the weights as stored: (c, h) per sequence.
                let want: Vec<(Vec<f64>, Vec<f64>)> = all
                    .iter()
                    .map(|(h_prev, xi, c0)| {
                        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
                        let (mut want_c, mut want_h) = (Vec::new(), Vec::new());
                        for (j, c_prev) in c0.iter().enumerate() {
                            let gate = |q: usize| {
                                let r = q * hidden + j;
                                xi[r] as f64
                                    + (0..hidden)
                                        .map(|k| {
                                            round(w_hh[r * hidden + k]) as f64 * h_prev[k] as f64
                                        })
                                        .sum::<f64>()
                            };
                            let c = sig(gate(1)) * *c_prev as f64 + sig(gate(0)) * gate(2).tanh();
                            want_c.push(c);
                            want_h.push(sig(gate(3)) * c.tanh());
                        }
                        (want_c, want_h)
                    })
                    .collect();
                let weight = RecurrentWeight::new(&w_hh, hidden, precision);
                for seqs in 1..=MAX_SEQUENCES {
                    let h_prev: Vec<&[f32]> = all[..seqs].iter().map(|a| &a.0[..]).collect();
                    let xi: Vec<&[f32]> = all[..seqs].iter().map(|a| &a.1[..]).collect();
                    for isa in Isa::available() {
                        let mut got = vec![(vec![0f32; hidden], vec![0f32; hidden]); seqs];
                        for b in 0..weight.blocks() {
                            let (units, first) = (weight.units(b), b * UNITS);
                            // The block's cells and outputs, sequence after sequence.
                            let mut c: Vec<f32> = all[..seqs]
                                .iter()
                                .flat_map(|a| a.2[first..first + units].to_vec())
                                .collect();
                            let mut h = vec![f32::NAN; seqs * units];
                            weight.step_block_on(isa, b, &h_prev, &xi, &mut c, &mut h);
                            for (s, (gc, gh)) in got.iter_mut().enumerate() {
                                let part = s * units..(s + 1) * units;
                                gc[first..first + units].copy_from_slice(&c[part.clone()]);
                                gh[first..first + units].copy_from_slice(&h[part]);
                            }
                        }
                        for (s, ((c, h), (want_c, want_h))) in got.iter().zip(&want).enumerate() {
                            for (got, want) in c.iter().zip(want_c).chain(h.iter().zip(want_h)) {
                                assert!(
                                    (*got as f64 - want).abs() < 2e-6 * (1.0 + want.abs()),
                                    "{isa} {precision:?} hidden {hidden}, sequence {s} of \
                                     {seqs}: {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
