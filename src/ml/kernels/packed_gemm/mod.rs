//! f32 y = x · Wᵀ on the CPU with W packed once, at load, into column panels: panel p
//! holds columns p·NR … p·NR+NR−1 of Wᵀ, so a micro-kernel reads NR weights per k as
//! whole vectors and multiplies them by one broadcast x value per row. Within a k-block
//! (`KC`) a panel is stored a `SLICE` of columns at a time, k-major in each (`offset`).
//!
//! Why: the vision transformers multiply 50 (CLIP) to 577 (BLIP-large) rows at once. The
//! decoder's row-streaming kernel (`host_matmul`) does one load per multiply-add there,
//! and candle's GEMM packs the weight again on every call. A register tile of MR rows × NR
//! columns does MR·NR/16 multiply-adds per MR + NR/16 loads instead. Blocking along k keeps
//! the panel slice and the rows it meets in the core's L2.

use rayon::prelude::*;

use super::isa::{self, Isa};
use super::tiled::{in_bounds, RowTile, Shared};

mod tile;

use tile::Tile;

/// Columns per panel: four 16-lane vectors.
pub const NR: usize = 64;
/// Rows per micro-kernel call: 6 × 4 accumulators, 4 weight vectors and a broadcast fit
/// the 32 AVX-512 registers. A product of m rows runs m mod MR of them in a narrower,
/// slower tile, so callers that pick m (EnCodec's chunks) pick multiples of it.
pub const MR: usize = 6;
/// Depth of one k-block: NR·KC floats of panel (128 KB) stay in L2 while rows pass.
const KC: usize = 512;
/// Columns stored together in a k-block: one cache line of f32, one AVX-512 vector, and
/// what the AVX2 kernel multiplies in a pass. So each kernel reads every slice it needs
/// as a contiguous run of whole lines. With whole 64-column rows k-major, the AVX2
/// kernel's first pass over a k-block fetched a line every 256 bytes, from L3 or memory
/// for the large weights: EnCodec's first upsampling (84 MB of weights) ran at ~55 % of
/// the FMA peak.
const SLICE: usize = 16;
/// Rows one task takes through a panel (a multiple of MR).
const ROWS_PER_TASK: usize = 16 * MR;

/// Columns a micro-kernel on `isa` multiplies at a time: a panel costs the columns up to
/// the next multiple of this past its last real one. The AVX2 and AVX-512 kernels stop
/// after the last `SLICE` holding a real column; the portable one multiplies all NR.
pub fn columns_per_pass(isa: Isa) -> usize {
    match isa {
        Isa::Avx2 | Isa::Avx512 => SLICE,
        Isa::Portable => NR,
    }
}

pub struct PackedF32 {
    /// ⌈n / NR⌉ panels of k × NR, columns past `n` zero.
    panels: Vec<f32>,
    k: usize,
    n: usize,
}

impl PackedF32 {
    /// Pack a row-major (n, k) weight — as checkpoints store a linear layer's.
    pub fn pack(w: &[f32], n: usize, k: usize) -> Self {
        Self::pack_rows(w, k, n, k)
    }

    /// Pack n rows of length k that start `ld` apart in `w` (row j at w[j·ld]): a
    /// matrix used as Wᵀ, e.g. one head's keys inside a fused qkv.
    pub fn pack_rows(w: &[f32], ld: usize, n: usize, k: usize) -> Self {
        assert!(
            n == 0 || w.len() >= (n - 1) * ld + k,
            "weight rows out of bounds"
        );
        Self::gather(n, k, |j, kk| w[j * ld + kk])
    }

    /// Pack k rows of length n that start `ld` apart, used as W itself (k, n): e.g. one
    /// head's values, which multiply the attention weights.
    pub fn pack_cols(wt: &[f32], ld: usize, k: usize, n: usize) -> Self {
        assert!(
            k == 0 || wt.len() >= (k - 1) * ld + n,
            "weight rows out of bounds"
        );
        Self::gather(n, k, |j, kk| wt[kk * ld + j])
    }

    /// Panels of Wᵀ with `at(j, kk)` = W[j][kk]; columns past `n` stay zero. A panel per
    /// task: 8-bit weights are expanded this way for every prompt's first pass.
    pub fn gather(n: usize, k: usize, at: impl Fn(usize, usize) -> f32 + Sync) -> Self {
        let mut panels = vec![0f32; n.div_ceil(NR) * k * NR];
        panels
            .par_chunks_mut(k * NR)
            .enumerate()
            .for_each(|(p, panel)| {
                let cols = (n - p * NR).min(NR);
                for c in 0..cols {
                    for kk in 0..k {
                        panel[offset(k, kk, c)] = at(p * NR + c, kk);
                    }
                }
            });
        Self { panels, k, n }
    }

    /// Bytes read per product (padding included).
    pub fn bytes(&self) -> usize {
        4 * self.panels.len()
    }

    /// y (rows, n) = x (rows, k) · Wᵀ, over all threads, on the active kernel path.
    pub fn matmul_t(&self, x: &[f32], rows: usize) -> Vec<f32> {
        self.matmul_t_on(isa::active(), x, rows)
    }

    /// The same on a given path (tests run every path the CPU has).
    pub fn matmul_t_on(&self, isa: Isa, x: &[f32], rows: usize) -> Vec<f32> {
        assert!(isa <= isa::detect(), "{isa} asked for on a CPU without it");
        let (k, n) = (self.k, self.n);
        assert_eq!(x.len(), rows * k, "input is not (rows, k)");
        let mut y = vec![0f32; rows * n];
        self.par_blocks(isa, x, k, rows, &mut y, n, false);
        y
    }

    /// y[r·ldy + c] += Σ x[r·ldx + i] · W[c][i] for r < rows, c < n, over all threads.
    /// Rows of x may overlap (ldx < k: a convolution's windows over a time-major signal)
    /// and rows of y may lie apart (ldy > n: one phase of a transposed convolution).
    pub fn matmul_t_acc(&self, x: &[f32], ldx: usize, rows: usize, y: &mut [f32], ldy: usize) {
        self.par_blocks(isa::active(), x, ldx, rows, y, ldy, true);
    }

    /// Every (row range, panel) tile of the product, one task each, over all threads;
    /// added to y when `accumulate`, else written over it.
    #[allow(clippy::too_many_arguments)]
    fn par_blocks(
        &self,
        isa: Isa,
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
        let n = self.n;
        let out = Shared::new(y);
        let row_tasks = rows.div_ceil(ROWS_PER_TASK);
        (0..n.div_ceil(NR) * row_tasks)
            .into_par_iter()
            .for_each(|task| {
                let (p, rt) = (task / row_tasks, task % row_tasks);
                let rows = rt * ROWS_PER_TASK..rows.min((rt + 1) * ROWS_PER_TASK);
                // SAFETY: bounds asserted above; tasks write disjoint (row range, panel)
                // tiles of `y`, which is borrowed mutably for the call.
                unsafe { self.block(isa, x, ldx, rows, p, out.get(), ldy, accumulate) };
            });
    }

    /// y[r·ldy + c] = Σ x[r·ldx + i] · W[c][i] for r < rows, c < n, on this thread: for
    /// callers that already run one task per thread (attention heads).
    pub fn matmul_t_into(&self, x: &[f32], ldx: usize, rows: usize, y: &mut [f32], ldy: usize) {
        self.on_this_thread(x, ldx, rows, y, ldy, false);
    }

    /// `matmul_t_acc` on this thread: for callers that split the rows into tasks
    /// themselves (EnCodec's convolutions, a time chunk per task).
    pub fn matmul_t_acc_into(&self, x: &[f32], ldx: usize, rows: usize, y: &mut [f32], ldy: usize) {
        self.on_this_thread(x, ldx, rows, y, ldy, true);
    }

    fn on_this_thread(
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
        for p in 0..self.n.div_ceil(NR) {
            // SAFETY: bounds asserted above; `y` is borrowed mutably for the call.
            unsafe { self.block(isa, x, ldx, 0..rows, p, y.as_mut_ptr(), ldy, accumulate) };
        }
    }

    /// Rows `rows` of x times panel `p`, into y (stride `ldy`), k-block by k-block;
    /// added to what y holds when `accumulate`, else written over it.
    ///
    /// # Safety
    /// `y` must be valid for writes at r·ldy + p·NR + c for every r in `rows` and
    /// c < the panel's columns, and nobody else may touch those elements meanwhile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn block(
        &self,
        isa: Isa,
        x: &[f32],
        ldx: usize,
        rows: std::ops::Range<usize>,
        p: usize,
        y: *mut f32,
        ldy: usize,
        accumulate: bool,
    ) {
        let k = self.k;
        let panel = &self.panels[p * k * NR..(p + 1) * k * NR];
        let cols = NR.min(self.n - p * NR);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let mut r = rows.start;
            while r < rows.end {
                let m = MR.min(rows.end - r);
                let tile = Tile {
                    x: &x[r * ldx + k0..],
                    ldx,
                    w: &panel[k0 * NR..(k0 + kc) * NR],
                    kc,
                    // SAFETY: inside the region the caller vouches for.
                    y: unsafe { y.add(r * ldy + p * NR) },
                    ldy,
                    cols,
                    accumulate: accumulate || k0 > 0,
                };
                tile.run_rows(m, isa);
                r += m;
            }
        }
    }
}

/// Where W[c][kk] lies in its panel (c < NR its column there) for depth k: in its
/// k-block, after the slices of lower columns, kk's row of `SLICE`.
fn offset(k: usize, kk: usize, c: usize) -> usize {
    let k0 = kk - kk % KC;
    let kc = KC.min(k - k0);
    k0 * NR + (c / SLICE) * kc * SLICE + (kk - k0) * SLICE + c % SLICE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::kernels::host_matmul::tests::data;

    #[test]
    fn accumulates_over_overlapping_rows_into_strided_outputs() {
        // A convolution's shape: rows of x `ldx` apart but k long (they overlap), rows of
        // y `ldy` apart (a transposed convolution's phase), added to what y held.
        for (rows, k, n, ldx, ldy) in [
            (1, 4, 3, 1, 3),
            (13, 96, 70, 32, 75),
            (200, 600, 64, 64, 129),
        ] {
            let x = data((rows - 1) * ldx + k, 3);
            let w = data(n * k, 4);
            let before = data((rows - 1) * ldy + n, 5);
            // Every kernel path the CPU has (each adds its tiles to y in its own way).
            for isa in Isa::available() {
                let mut y = before.clone();
                PackedF32::pack(&w, n, k).par_blocks(isa, &x, ldx, rows, &mut y, ldy, true);
                for (i, (got, was)) in y.iter().zip(&before).enumerate() {
                    let (r, c) = (i / ldy, i % ldy);
                    let want = match c < n {
                        true => was + (0..k).map(|j| x[r * ldx + j] * w[c * k + j]).sum::<f32>(),
                        false => *was,
                    };
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{isa} ({rows},{k},{n}) at ({r},{c}): {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn matches_the_naive_product_at_every_edge() {
        // Row counts around MR and the task size, columns around NR and every count of
        // 16-column vectors in a last panel (1–4: AVX-512 multiplies only those), depths
        // across KC.
        for (rows, k, n) in [
            (1, 3, 1),
            (3, 40, 40),
            (8, 100, 96),
            (2, 7, 65),
            (5, 513, 64),
            (6, 512, 63),
            (7, 1100, 130),
            (50, 768, 129),
            (97, 64, 200),
        ] {
            let (x, w) = (data(rows * k, 1), data(n * k, 2));
            let packed = PackedF32::pack(&w, n, k);
            let y = packed.matmul_t(&x, rows);
            for isa in Isa::available() {
                let other = packed.matmul_t_on(isa, &x, rows);
                for (a, b) in other.iter().zip(&y) {
                    assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{isa}: {a} vs {b}");
                }
            }
            // The same product from Wᵀ (k, n) packed as columns, on one thread.
            let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
            let mut y2 = vec![0f32; rows * n];
            PackedF32::pack_cols(&wt, n, k, n).matmul_t_into(&x, k, rows, &mut y2, n);
            assert_eq!(
                y, y2,
                "({rows},{k},{n}): packing by rows and by columns differ"
            );
            for r in 0..rows {
                for c in 0..n {
                    let want: f64 = (0..k)
                        .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                        .sum();
                    let got = y[r * n + c] as f64;
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "({rows},{k},{n}) at ({r},{c}): {got} vs {want}"
                    );
                }
            }
        }
    }
}
