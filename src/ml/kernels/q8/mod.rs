//! y = x · Wᵀ with 8-bit weights and 16-bit activations: W is quantized once at load in
//! blocks of 32 along `in` (one f32 scale each, as GGML's Q8_0), and each call quantizes
//! its few input rows to 16 bits in the same blocks, so the inner loop is integer
//! multiply-adds (`vpmaddwd`, or `vpdpwssd` with VNNI).
//!
//! Why: a decoding step multiplies 2 rows (guidance) by ~340 M weights. Widening every
//! weight byte to f32 made the step bound by arithmetic, not by memory: 4 conversions and
//! 4 FMAs per 32 weights per row. Integer products do 16 multiply-adds per instruction,
//! so the step approaches the time it takes to read the weights once. Why 16-bit and not
//! 8-bit activations (GGML's choice): at the same speed here, 8-bit activations changed
//! a greedy token at 1 position in 26 on identical inputs; 16-bit ones are as exact as
//! the weights allow.
//!
//! Layout (`layout`): 16 outputs side by side, so one vector instruction multiplies a
//! pair of inputs into all 16 outputs' sums and a block's two scales are applied to 16
//! outputs at once. Kept one output per row, every block cost a conversion, a scale and
//! a horizontal sum per output: the step was bound by those instructions, not by memory.
//!
//! Many rows (a vision transformer's 50–577 tokens, a window's 600 frames of context) take
//! the same kernels with taller tiles: a group's weights are widened once per 6 rows and
//! stay in cache across all rows. Bound by arithmetic there, the integer multiply-adds
//! still do twice an f32 FMA's work per instruction: on the AVX2 path 1.4–1.6× the packed
//! f32 GEMM's rate (ViT-L shapes), where expanding the weights to f32 for that GEMM had
//! cost a pass over them on every call.

mod layout;
#[cfg(target_arch = "x86_64")]
mod x86;

use rayon::prelude::*;

use super::host_matmul::outputs_per_task;
use super::isa::{self, Isa};
use layout::{Interleaved, GROUP, GROUP_BYTES};

/// Values per block (one f32 scale each), for weights and activations alike.
pub const Q8_BLOCK: usize = 32;

/// The largest 8-bit magnitude a value is quantized to (weights, the 8-bit cache).
pub(crate) const I8_MAX: f32 = 127.0;

/// The largest 16-bit magnitude an input row is quantized to.
const I16_MAX: f32 = 32767.0;

/// Rows from which a product is bound by arithmetic, not by reading the weights (a vision
/// transformer's tokens, a window's first pass over its context, a batch of 8 songs with
/// guidance): taller tiles, and the input quantized over all threads. At 16 rows the
/// taller tiles made a batch of 8 songs' pass 8–12 % faster on AVX2 and 1–12 % with
/// VNNI; at 8 rows (4 songs) they helped on AVX2 and cost a little with VNNI.
pub const GEMM_ROWS: usize = 16;

/// A row-major (n, k) matrix in 8-bit blocks: value = q · scale.
pub struct Q8Matrix {
    w: Interleaved,
    n: usize,
    k: usize,
}

/// Values quantized in blocks: value = q · scale of its block.
pub(crate) struct Quantized<T> {
    pub q: Vec<T>,
    pub scales: Vec<f32>,
}

/// Symmetric quantization of whole blocks to integers of at most `max` in magnitude.
/// Each call quantizes a product's input rows (6 per layer and step), so the loops are
/// written to vectorise (it had been ~1 ms of a step, one value at a time).
fn quantize<T: Copy + Default>(values: &[f32], max: f32, cast: impl Fn(i32) -> T) -> Quantized<T> {
    quantize_blocks(values, Q8_BLOCK, max, cast)
}

/// The same in blocks of `block` values (`values.len()` a multiple of it).
pub(crate) fn quantize_blocks<T: Copy + Default>(
    values: &[f32],
    block: usize,
    max: f32,
    cast: impl Fn(i32) -> T,
) -> Quantized<T> {
    let mut q = vec![T::default(); values.len()];
    let mut scales = vec![0f32; values.len() / block];
    quantize_into(values, block, max, &cast, &mut q, &mut scales);
    Quantized { q, scales }
}

/// `quantize_blocks` into given buffers (`q` as long as `values`, one scale per block).
fn quantize_into<T: Copy>(
    values: &[f32],
    block: usize,
    max: f32,
    cast: &impl Fn(i32) -> T,
    q: &mut [T],
    scales: &mut [f32],
) {
    /// Lanes of the running maximum: one 256-bit register.
    const LANES: usize = 8;
    /// The largest f32 below ½.
    const BELOW_HALF: f32 = 0.499_999_97;
    let blocks = values.chunks_exact(block).zip(q.chunks_exact_mut(block));
    for ((block, out), scale) in blocks.zip(scales.iter_mut()) {
        let mut tops = [0f32; LANES];
        let parts = block.chunks_exact(LANES);
        for v in parts.remainder() {
            tops[0] = tops[0].max(v.abs());
        }
        for part in parts {
            for (t, v) in tops.iter_mut().zip(part) {
                *t = t.max(v.abs());
            }
        }
        let top = tops.iter().fold(0f32, |m, t| m.max(*t));
        *scale = top / max;
        let inv = if *scale > 0.0 { 1.0 / *scale } else { 0.0 };
        for (o, v) in out.iter_mut().zip(block) {
            // `round` as trunc(x ± (½ − ½ulp)), the same value for every f32, and `clamp`
            // without its check that −max ≤ max: written so, the loop vectorises.
            let x = v * inv;
            let r = (x + BELOW_HALF.copysign(x)).trunc();
            let r = if r < -max {
                -max
            } else if r > max {
                max
            } else if r.is_nan() {
                0.0
            } else {
                r
            };
            // SAFETY: `r` is whole and within ±max (at most 32767): it fits an i32.
            // Rust's saturating conversion kept this loop scalar.
            *o = cast(unsafe { r.to_int_unchecked::<i32>() });
        }
    }
}

#[inline(always)]
pub(crate) fn to_i8(v: i32) -> i8 {
    v as i8
}

#[inline(always)]
fn to_i16(v: i32) -> i16 {
    v as i16
}

/// The rows a path takes at once when there are many (`GEMM_ROWS` or more): each group's
/// weights are widened once per tile. 5 to 8 rows measured alike on the 256-bit kernel
/// (at 8 its sums spill); 6 keeps every sum in a register on both kernels.
fn tile_rows(isa: Isa) -> usize {
    match isa {
        Isa::Portable => 4,
        Isa::Avx2 | Isa::Avx512 => 6,
    }
}

/// One group's 16 outputs for up to `R` rows: what each kernel path computes.
type GroupOut<const R: usize> = [[f32; GROUP]; R];

/// The rows a path takes at once: as many as its vector registers hold without spilling.
fn rows_at_once(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 if isa::has_vnni() => 4,
        // The 256-bit kernel (AVX2, or AVX-512 without VNNI) has 16 registers.
        Isa::Avx512 | Isa::Avx2 => 2,
        Isa::Portable => 4,
    }
}

impl Q8Matrix {
    /// Quantize a row-major (n, k) f32 matrix; None unless k is a whole number of blocks.
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Option<Self> {
        if !k.is_multiple_of(Q8_BLOCK) || w.len() != n * k {
            return None;
        }
        let Quantized { q, scales } = quantize(w, I8_MAX, to_i8);
        let w = Interleaved::from_rows(&q, &scales, n, k);
        Some(Self { w, n, k })
    }

    /// Bytes read per product (weights and scales): what bounds a decoding step.
    pub fn bytes(&self) -> usize {
        self.w.bytes()
    }

    /// y (rows, n) = x (rows, k) · Wᵀ on the active kernel path, over all threads.
    pub fn matmul_t(&self, x: &[f32], rows: usize) -> Vec<f32> {
        self.matmul_t_on(isa::active(), x, rows)
    }

    /// The same on a given path (tests run every path the CPU has).
    pub fn matmul_t_on(&self, isa: Isa, x: &[f32], rows: usize) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        assert_eq!(x.len(), rows * k, "input is not (rows, k)");
        assert!(isa <= isa::detect(), "{isa} asked for on a CPU without it");
        if rows == 0 || n == 0 {
            return vec![0f32; rows * n];
        }
        let many = rows >= GEMM_ROWS;
        let xq = match many {
            true => quantize_par(x, k),
            false => quantize(x, I16_MAX, to_i16),
        };
        let blocks = k / Q8_BLOCK;
        // Many rows: each group's weights are widened once per tile of rows instead of
        // once per row pair, so the tile is as tall as the registers allow.
        let step = match many {
            true => tile_rows(isa),
            false => rows_at_once(isa),
        };
        // Computed group by group as (group, row, 16 outputs), so threads write disjoint
        // contiguous chunks; laid out row by row at the end.
        let groups = self.w.groups();
        let mut yt = vec![0f32; groups * rows * GROUP];
        let per_task = outputs_per_task(n).div_ceil(GROUP);
        yt.par_chunks_mut(per_task * rows * GROUP)
            .with_max_len(1) // see `outputs_per_task`
            .enumerate()
            .for_each(|(task, chunk)| {
                for (i, out) in chunk.chunks_exact_mut(rows * GROUP).enumerate() {
                    let (wq, ws) = self.w.group(task * per_task + i);
                    let mut r = 0;
                    while r < rows {
                        let m = (rows - r).min(step);
                        let x = |i: usize| Row {
                            q: &xq.q[(r + i) * k..(r + i + 1) * k],
                            scales: &xq.scales[(r + i) * blocks..(r + i + 1) * blocks],
                        };
                        let dst = &mut out[r * GROUP..(r + m) * GROUP];
                        match m {
                            // At most `tile_rows` (6) rows at once.
                            6 => put(
                                dst,
                                group_dot(isa, wq, ws, [x(0), x(1), x(2), x(3), x(4), x(5)]),
                            ),
                            5 => put(dst, group_dot(isa, wq, ws, [x(0), x(1), x(2), x(3), x(4)])),
                            4 => put(dst, group_dot(isa, wq, ws, [x(0), x(1), x(2), x(3)])),
                            3 => put(dst, group_dot(isa, wq, ws, [x(0), x(1), x(2)])),
                            2 => put(dst, group_dot(isa, wq, ws, [x(0), x(1)])),
                            _ => put(dst, group_dot(isa, wq, ws, [x(0)])),
                        }
                        r += m;
                    }
                }
            });
        let mut y = vec![0f32; rows * n];
        let row = |(r, out): (usize, &mut [f32])| {
            for (g, part) in out.chunks_mut(GROUP).enumerate() {
                let at = (g * rows + r) * GROUP;
                part.copy_from_slice(&yt[at..at + part.len()]);
            }
        };
        match many {
            // Hundreds of rows: the copy (a fifth of a small product) on every core.
            true => y.par_chunks_mut(n).enumerate().for_each(row),
            false => y.chunks_mut(n).enumerate().for_each(row),
        }
        y
    }
}

/// Many rows (`GEMM_ROWS` or more) to 16 bits as `quantize`, a slice of rows per task.
fn quantize_par(x: &[f32], k: usize) -> Quantized<i16> {
    const ROWS_PER_TASK: usize = 16;
    let mut q = vec![0i16; x.len()];
    let mut scales = vec![0f32; x.len() / Q8_BLOCK];
    let per_task = ROWS_PER_TASK * k;
    x.par_chunks(per_task)
        .zip(q.par_chunks_mut(per_task))
        .zip(scales.par_chunks_mut(per_task / Q8_BLOCK))
        .for_each(|((x, q), s)| quantize_into(x, Q8_BLOCK, I16_MAX, &to_i16, q, s));
    Quantized { q, scales }
}

/// Copy a group's sums, row after row, into `dst`.
fn put<const R: usize>(dst: &mut [f32], sums: GroupOut<R>) {
    for (d, s) in dst.chunks_exact_mut(GROUP).zip(&sums) {
        d.copy_from_slice(s);
    }
}

/// One activation row in blocks: `q.len() == 32 · scales.len()`.
struct Row<'a> {
    q: &'a [i16],
    scales: &'a [f32],
}

/// For each row: Σ over blocks of (the group's 16 weight rows · x in integers) times the
/// two scales. `wq`, `ws`: one group of the interleaved layout.
fn group_dot<const R: usize>(isa: Isa, wq: &[i8], ws: &[f32], x: [Row; R]) -> GroupOut<R> {
    let blocks = ws.len() / GROUP;
    assert!(wq.len() == blocks * GROUP_BYTES && ws.len() == blocks * GROUP);
    assert!(x
        .iter()
        .all(|x| x.q.len() == blocks * Q8_BLOCK && x.scales.len() == blocks));
    #[cfg(target_arch = "x86_64")]
    {
        let xq = x.each_ref().map(|x| x.q.as_ptr());
        let xs = x.each_ref().map(|x| x.scales.as_ptr());
        let (wq, ws) = (wq.as_ptr(), ws.as_ptr());
        match isa {
            // SAFETY: the CPU has the features (asserted by the caller against `detect`),
            // and every read stays inside the slices whose lengths are asserted above.
            Isa::Avx512 if isa::has_vnni() => unsafe {
                return x86::group_vnni(wq, ws, blocks, xq, xs);
            },
            Isa::Avx512 | Isa::Avx2 => unsafe {
                return x86::group_avx2(wq, ws, blocks, xq, xs);
            },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    let mut sums = [[0f32; GROUP]; R];
    for b in 0..blocks {
        let wb = &wq[b * GROUP_BYTES..(b + 1) * GROUP_BYTES];
        for (s, x) in sums.iter_mut().zip(&x) {
            let xb = &x.q[b * Q8_BLOCK..(b + 1) * Q8_BLOCK];
            for (lane, s) in s.iter_mut().enumerate() {
                let int: i32 = (0..Q8_BLOCK)
                    .map(|i| wb[layout::offset_in_block(lane, i)] as i32 * xb[i] as i32)
                    .sum();
                *s += int as f32 * (ws[b * GROUP + lane] * x.scales[b]);
            }
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::kernels::host_matmul::tests::data;

    #[test]
    fn quantizing_rounds_halves_away_and_clamps_as_the_definition() {
        // Halves that round away from zero, values just below them, a zero block, huge
        // and tiny magnitudes, a NaN: the vectorised loop against the definition.
        let mut values = data(32 * 40, 12);
        values[..32].fill(0.0);
        for (i, v) in values[32..64].iter_mut().enumerate() {
            *v = (i as f32 - 16.0) * 0.5;
        }
        values[64] = 127.0; // the block's top: 0.5 steps land exactly on halves
        for (i, v) in values[65..96].iter_mut().enumerate() {
            *v = i as f32 + 0.499_999_97;
        }
        values[96] = 3e38;
        values[128] = 1e-38;
        values[160] = f32::NAN;
        for (max, got) in [
            (127.0, quantize(&values, 127.0, |v| v)),
            (32767.0, quantize(&values, 32767.0, |v| v)),
        ] {
            for (b, block) in values.chunks_exact(Q8_BLOCK).enumerate() {
                let top = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                let scale = top / max;
                assert_eq!(got.scales[b], scale, "block {b}");
                let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
                for (i, v) in block.iter().enumerate() {
                    let want = (v * inv).round().clamp(-max, max) as i32;
                    assert_eq!(got.q[b * Q8_BLOCK + i], want, "block {b} [{i}] = {v}");
                }
            }
        }
        let q = quantize(&values, 127.0, to_i8);
        assert!(q.q[..32].iter().all(|q| *q == 0) && q.scales[0] == 0.0);
        assert_eq!((q.q[64], q.q[160]), (127, 0), "the top, and a NaN");
    }

    #[test]
    fn every_path_matches_the_plain_product() {
        // Rows around each path's row steps, outputs around a group and the task size,
        // one and many blocks; from GEMM_ROWS rows on, taller tiles (6 rows) and the
        // parallel quantization (16 rows a task), with remainders of both.
        for (rows, k, n) in [
            (1, 32, 1),
            (2, 64, 33),
            (3, 96, 130),
            (5, 1024, 17),
            (9, 320, 70),
            (4, 64, 16),
            (GEMM_ROWS - 1, 64, 65),
            (GEMM_ROWS, 64, 65),
            (70, 160, 130),
            (GEMM_ROWS + 5, 1024, 40),
            (100, 96, 17),
        ] {
            let (x, w) = (data(rows * k, 3), data(n * k, 4));
            let m = Q8Matrix::quantize(&w, n, k).expect("whole blocks");
            let scale = (0..rows * n)
                .map(|i| {
                    let (r, c) = (i / n, i % n);
                    (0..k)
                        .map(|j| (x[r * k + j] * w[c * k + j]).abs())
                        .sum::<f32>()
                })
                .fold(0f32, f32::max);
            let mut first: Option<Vec<f32>> = None;
            for isa in Isa::available() {
                let y = m.matmul_t_on(isa, &x, rows);
                assert_eq!(y.len(), rows * n);
                for r in 0..rows {
                    for c in 0..n {
                        let want: f32 = (0..k).map(|j| x[r * k + j] * w[c * k + j]).sum();
                        let got = y[r * n + c];
                        assert!(
                            (got - want).abs() <= 0.02 * scale,
                            "{isa} ({rows},{k},{n}) at ({r},{c}): {got} vs {want}"
                        );
                    }
                }
                // Integer sums are exact: the paths differ only in float summation order.
                match &first {
                    None => first = Some(y),
                    Some(f) => {
                        for (a, b) in y.iter().zip(f) {
                            assert!((a - b).abs() <= 1e-4 * scale, "{isa}: {a} vs {b}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn zero_rows_and_extreme_values_are_safe() {
        let w = vec![0f32; 64];
        let m = Q8Matrix::quantize(&w, 2, 32).expect("whole blocks");
        assert_eq!(m.matmul_t(&[], 0), Vec::<f32>::new());
        // All-zero blocks have scale 0 and give 0, not NaN; huge values do not overflow.
        let x: Vec<f32> = (0..32)
            .map(|i| if i % 2 == 0 { 1e30 } else { -1e30 })
            .collect();
        assert!(m.matmul_t(&x, 1).iter().all(|v| *v == 0.0));
        let big = Q8Matrix::quantize(&x, 1, 32).expect("whole blocks");
        for isa in Isa::available() {
            let y = big.matmul_t_on(isa, &[1.0; 32], 1);
            assert!(y[0].is_finite() && y[0].abs() < 1e29, "{isa}: {}", y[0]);
        }
        // The largest block sum (every product at its extreme) does not overflow i32.
        let ones = Q8Matrix::quantize(&[1.0; 32 * 16], 16, 32).expect("whole blocks");
        for isa in Isa::available() {
            let y = ones.matmul_t_on(isa, &[-1.0; 32 * 3], 3);
            assert!(y.iter().all(|v| (*v + 32.0).abs() < 1e-3), "{isa}: {y:?}");
        }
        assert!(Q8Matrix::quantize(&[0.0; 40], 2, 20).is_none());
    }
}
