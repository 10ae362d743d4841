//! One frame of an LSTM layer's recurrence on the CPU: gates = W_hh · h + xi (the input
//! projection and biases, made for every frame at once by the caller), then the cell and
//! the new hidden state, for one block of `UNITS` hidden units at a time.
//!
//! Why a kernel of its own: every frame reads all of W_hh (16 MB in f32 for EnCodec's
//! 1024 units), one frame after another, so the recurrence is bound by that read from L3.
//! The four gates of a block's units lie side by side for every input, so a broadcast h
//! value multiplies whole vectors of gate sums (no horizontal sums, explicit FMAs), and
//! the cell's sigmoids and tanhs run a vector of units at a time. W_hh may be kept in f16
//! (`RecurrentPrecision::F16`): half the bytes to read, widened in registers.

use half::f16;

use super::isa::{self, Isa};

#[cfg(target_arch = "x86_64")]
mod x86;

/// Hidden units per block: their 4 gates are 64 sums, four AVX-512 vectors (eight AVX2).
pub const UNITS: usize = 16;
/// Gate sums per block.
const GATES: usize = 4 * UNITS;

/// How W_hh is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecurrentPrecision {
    /// As trained: the recurrence as torch computes it (to f32 rounding).
    F32,
    /// Rounded to f16 (2⁻¹¹ relative) at load: half the bytes every frame reads.
    F16,
}

/// W_hh (4H, H) regrouped: per block of UNITS units, per input k, the GATES weights
/// [gate q of unit u at q·UNITS + u] (torch's gate order i, f, g, o); units past H are
/// zero.
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
                    w[(block * hidden + k) * GATES + q * UNITS + u] =
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

    /// Block `block`'s units for one frame on the active kernel path: `h_prev` the
    /// previous hidden state (H), `xi` this frame's input projection plus biases (4H,
    /// torch's gate order), `c` and `h_out` the block's cells (updated) and new hidden
    /// values.
    pub fn step_block(
        &self,
        block: usize,
        h_prev: &[f32],
        xi: &[f32],
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
        h_prev: &[f32],
        xi: &[f32],
        c: &mut [f32],
        h_out: &mut [f32],
    ) {
        let hidden = self.hidden;
        assert!(isa <= isa::detect(), "{isa} asked for on a CPU without it");
        assert!(block < self.blocks(), "block out of range");
        let units = (hidden - block * UNITS).min(UNITS);
        assert!(
            h_prev.len() == hidden && xi.len() == 4 * hidden,
            "frame sizes"
        );
        assert!(c.len() == units && h_out.len() == units, "block sizes");
        let at = block * hidden * GATES..(block + 1) * hidden * GATES;
        let first = block * UNITS;
        match &self.w {
            Storage::F32(w) => Block::new(&w[at], h_prev, xi, first).step(isa, c, h_out),
            Storage::F16(w) => Block::new(&w[at], h_prev, xi, first).step(isa, c, h_out),
        }
    }
}

/// One block's inputs for one frame.
struct Block<'a, E> {
    /// The block's weights: hidden rows of GATES.
    w: &'a [E],
    h_prev: &'a [f32],
    xi: &'a [f32],
    /// The block's first unit.
    first: usize,
}

impl<'a, E: Stored> Block<'a, E> {
    fn new(w: &'a [E], h_prev: &'a [f32], xi: &'a [f32], first: usize) -> Self {
        assert_eq!(w.len(), h_prev.len() * GATES, "block weights");
        Self {
            w,
            h_prev,
            xi,
            first,
        }
    }

    /// The gate sums, then the cells and hidden values of the block's `c.len()` units.
    fn step(&self, isa: Isa, c: &mut [f32], h_out: &mut [f32]) {
        // SAFETY: the CPU has the path (the caller asserted it); the weights hold
        // hidden · GATES values (asserted in `new`); c and h_out are equally long and
        // at most UNITS (asserted by the caller).
        #[cfg(target_arch = "x86_64")]
        match isa {
            Isa::Avx512 => return unsafe { x86::step_avx512(self, c, h_out) },
            Isa::Avx2 => return unsafe { x86::step_avx2(self, c, h_out) },
            Isa::Portable => {}
        }
        let _ = isa;
        let mut g = [0f32; GATES];
        for (row, &hk) in self.w.chunks_exact(GATES).zip(self.h_prev) {
            for (acc, wv) in g.iter_mut().zip(row) {
                *acc += hk * (*wv).into();
            }
        }
        self.cell(&g, c, h_out);
    }

    /// The cells and hidden values of the block's `c.len()` units from its gate sums,
    /// a unit at a time (the portable path, and a partial last block).
    fn cell(&self, g: &[f32; GATES], c: &mut [f32], h_out: &mut [f32]) {
        let hidden = self.h_prev.len();
        for (u, (c, h)) in c.iter_mut().zip(h_out).enumerate() {
            let j = self.first + u;
            let gate = |q: usize| g[q * UNITS + u] + self.xi[q * hidden + j];
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
        for (hidden, scale) in [(16, 1.0f32), (20, 1.0), (33, 1.0), (48, 8.0)] {
            let w_hh: Vec<f32> = data(4 * hidden * hidden, 1)
                .iter()
                .map(|v| v * scale)
                .collect();
            let h_prev = data(hidden, 2);
            let xi = data(4 * hidden, 3);
            let c0 = data(hidden, 4);
            for precision in [RecurrentPrecision::F32, RecurrentPrecision::F16] {
                let round = |v: f32| match precision {
                    RecurrentPrecision::F32 => v,
                    RecurrentPrecision::F16 => f16::from_f32(v).to_f32(),
                };
                // torch's cell, in f64, over the weights as stored.
                let (mut want_c, mut want_h) = (Vec::new(), Vec::new());
                let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
                for (j, c_prev) in c0.iter().enumerate() {
                    let gate = |q: usize| {
                        let r = q * hidden + j;
                        xi[r] as f64
                            + (0..hidden)
                                .map(|k| round(w_hh[r * hidden + k]) as f64 * h_prev[k] as f64)
                                .sum::<f64>()
                    };
                    let c = sig(gate(1)) * *c_prev as f64 + sig(gate(0)) * gate(2).tanh();
                    want_c.push(c);
                    want_h.push(sig(gate(3)) * c.tanh());
                }
                let weight = RecurrentWeight::new(&w_hh, hidden, precision);
                for isa in Isa::available() {
                    let (mut c, mut h) = (c0.clone(), vec![0f32; hidden]);
                    for b in 0..weight.blocks() {
                        let units = b * UNITS..((b + 1) * UNITS).min(hidden);
                        let (c, h) = (&mut c[units.clone()], &mut h[units]);
                        weight.step_block_on(isa, b, &h_prev, &xi, c, h);
                    }
                    for (got, want) in c.iter().zip(&want_c).chain(h.iter().zip(&want_h)) {
                        assert!(
                            (*got as f64 - want).abs() < 2e-6 * (1.0 + want.abs()),
                            "{isa} {precision:?} hidden {hidden}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
