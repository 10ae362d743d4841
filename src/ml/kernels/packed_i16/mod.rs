//! y = x · Wᵀ on the CPU in 16-bit integers: W quantized once, at load, x on every call,
//! each with a scale per k-block (`KC` depths) of a column of W or a row of x; the
//! products summed exactly in i32 over a k-block, then scaled into y in f32. Values keep
//! 13 bits (±`LEVELS`), so a k-block's sum cannot overflow i32.
//!
//! Why: EnCodec's decoder is bound by its multiply-adds (the f32 GEMM tiles run at ~87 %
//! of two cores' FMA peak), and `vpmaddwd` multiplies sixteen pairs of 16-bit values into
//! eight sums per instruction, where an f32 FMA does eight. With its accumulating add,
//! an AVX2 tile does ~1.5× the f32 tile's multiply-adds a cycle on Zen 4 (88 against 58
//! GMAC/s on one core, operands in L1); with VNNI (`vpdpwssd`: product and add in one
//! instruction) about 2×. Beware: built for a CPU with AVX-512 VNNI (`target-cpu=native`
//! on Zen 4), the compiler fuses the AVX2 tile's product and add into `vpdpwssd` too, so
//! `SNAPSONG_KERNEL=avx2` there is not an AVX2 CPU's speed: build with
//! `-C target-cpu=x86-64-v3` to measure that. 13 bits keep each value to
//! 1/8190 of the largest in its block of its row (or column): a product of uniform data
//! stays ~75 dB above its error (the tests), EnCodec's waveform ~60 dB after fifteen
//! layers (`scripts/bench/musicgen`'s `encodec_snr_db_vs_f32`).
//!
//! Layout: panels of `NR` columns, k-pair-major: for each pair of depths (2p, 2p + 1),
//! the panel's columns one after another, each as its two depths side by side. So one
//! 32-bit broadcast of x's pair multiplies a whole vector of columns.

use rayon::prelude::*;

use super::isa::{self, Isa};
use super::tiled::{in_bounds, RowTile, Shared};

mod quantize;
mod tile;

use tile::Tile;

/// Columns per panel: two vectors of eight i32 sums, the AVX2 tile's width.
const NR: usize = 16;
/// Rows per micro-kernel call (6 × 2 accumulators + 2 weight vectors + 1 broadcast fit
/// AVX2's 16 registers); callers that pick the row count pick multiples of it.
const MR: usize = 6;
/// Largest quantized magnitude: 13-bit values.
const LEVELS: i32 = 4095;
/// Depth of one k-block, which has scales of its own and is summed in i32 before it is
/// scaled into y: a block's sum is at most KC · LEVELS² = 2 146 435 200 < 2³¹. Scaling
/// a 6 × 16 tile into y every 64 pairs costs ~4 % of its multiply-adds.
const KC: usize = 128;
/// Rows one task takes through a panel, in the parallel product.
const ROWS_PER_TASK: usize = 16 * MR;

pub struct PackedI16 {
    /// ⌈n / NR⌉ panels of ⌈k / 2⌉ pairs × NR columns × 2 depths; padding zero.
    panels: Vec<i16>,
    /// Per panel, per k-block, each column's scale (zero past `n`): W[c][i] ≈ scale · q.
    scales: Vec<f32>,
    k: usize,
    n: usize,
}

impl PackedI16 {
    /// Quantize Wᵀ given as k rows of length n, `ld` apart (W itself as (k, n)). A panel
    /// per task, read a row of its 16 columns at a time (64 contiguous bytes): EnCodec's
    /// weights are ~100 M values, quantized at every load.
    pub fn pack_cols(wt: &[f32], ld: usize, k: usize, n: usize) -> Self {
        assert!(
            k == 0 || wt.len() >= (k - 1) * ld + n,
            "weight rows out of bounds"
        );
        let (panels_n, blocks, pairs) = (n.div_ceil(NR), k.div_ceil(KC), k.div_ceil(2));
        let mut scales = vec![0f32; panels_n * blocks * NR];
        let mut panels = vec![0i16; panels_n * pairs * NR * 2];
        panels
            .par_chunks_mut(pairs * NR * 2)
            .zip(scales.par_chunks_mut(blocks * NR))
            .enumerate()
            .for_each(|(p, (panel, scales))| {
                let cols = p * NR..n.min((p + 1) * NR);
                for (b, scales) in scales.chunks_exact_mut(NR).enumerate() {
                    let depths = b * KC..k.min((b + 1) * KC);
                    let mut inv = [0f32; NR];
                    for i in depths.clone() {
                        let row = &wt[i * ld + cols.start..i * ld + cols.end];
                        for (s, v) in scales.iter_mut().zip(row) {
                            *s = s.max(v.abs());
                        }
                    }
                    for (s, inv) in scales.iter_mut().zip(&mut inv) {
                        (*s, *inv) = quantize::scales(*s);
                    }
                    for i in depths {
                        let row = &wt[i * ld + cols.start..i * ld + cols.end];
                        for (c, (v, inv)) in row.iter().zip(&inv).enumerate() {
                            panel[(i / 2) * NR * 2 + c * 2 + i % 2] = quantize::level(*v, *inv);
                        }
                    }
                }
            });
        Self {
            panels,
            scales,
            k,
            n,
        }
    }

    /// y[r·ldy + c] (+)= Σ x[r·ldx + i] · W[c][i] for r < rows, c < n, on this thread:
    /// added to y when `accumulate`, else written over it. Rows of x may overlap.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_t_here(
        &self,
        x: &[f32],
        ldx: usize,
        rows: usize,
        y: &mut [f32],
        ldy: usize,
        accumulate: bool,
    ) {
        if !in_bounds((self.k, self.n), x, ldx, rows, y, ldy) {
            return;
        }
        let isa = isa::active();
        quantize::with_rows(isa, x, ldx, rows, self.k, |q| {
            for p in 0..self.n.div_ceil(NR) {
                // SAFETY: bounds asserted above; `y` is borrowed mutably for the call.
                unsafe { self.block(isa, q, 0..rows, p, y.as_mut_ptr(), ldy, accumulate) };
            }
        });
    }

    /// The same over all threads: a (row range, panel) tile per task.
    pub fn matmul_t_par(
        &self,
        x: &[f32],
        ldx: usize,
        rows: usize,
        y: &mut [f32],
        ldy: usize,
        accumulate: bool,
    ) {
        self.matmul_t_par_on(isa::active(), x, ldx, rows, y, ldy, accumulate);
    }

    /// `matmul_t_par` on a given path (tests run every path the CPU has).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_t_par_on(
        &self,
        isa: Isa,
        x: &[f32],
        ldx: usize,
        rows: usize,
        y: &mut [f32],
        ldy: usize,
        accumulate: bool,
    ) {
        assert!(isa <= isa::detect(), "{isa} asked for on a CPU without it");
        if !in_bounds((self.k, self.n), x, ldx, rows, y, ldy) {
            return;
        }
        quantize::with_rows(isa, x, ldx, rows, self.k, |q| {
            let out = Shared::new(y);
            let row_tasks = rows.div_ceil(ROWS_PER_TASK);
            (0..self.n.div_ceil(NR) * row_tasks)
                .into_par_iter()
                .with_max_len(1)
                .for_each(|task| {
                    let (p, rt) = (task / row_tasks, task % row_tasks);
                    let rows = rt * ROWS_PER_TASK..rows.min((rt + 1) * ROWS_PER_TASK);
                    // SAFETY: bounds asserted above; tasks write disjoint (row range,
                    // panel) tiles of `y`, which is borrowed mutably for the call.
                    unsafe { self.block(isa, q, rows, p, out.get(), ldy, accumulate) };
                });
        });
    }

    /// Quantized rows `rows` times panel `p`, into y (stride `ldy`), MR rows at a time.
    ///
    /// # Safety
    /// `y` must be valid for writes at r·ldy + p·NR + c for every r in `rows` and
    /// c < the panel's columns, and nobody else may touch those elements meanwhile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn block(
        &self,
        isa: Isa,
        q: &quantize::Rows,
        rows: std::ops::Range<usize>,
        p: usize,
        y: *mut f32,
        ldy: usize,
        accumulate: bool,
    ) {
        let (pairs, blocks) = (self.k.div_ceil(2), self.k.div_ceil(KC));
        let mut r = rows.start;
        while r < rows.end {
            let m = MR.min(rows.end - r);
            let tile = Tile {
                x: &q.values[r * q.stride..],
                ldx: q.stride,
                row_scales: &q.scales[r * blocks..],
                w: &self.panels[p * pairs * NR * 2..(p + 1) * pairs * NR * 2],
                col_scales: &self.scales[p * blocks * NR..(p + 1) * blocks * NR],
                pairs,
                blocks,
                // SAFETY: inside the region the caller vouches for.
                y: unsafe { y.add(r * ldy + p * NR) },
                ldy,
                cols: NR.min(self.n - p * NR),
                accumulate,
            };
            tile.run_rows(m, isa);
            r += m;
        }
    }
}

#[cfg(test)]
mod tests;
