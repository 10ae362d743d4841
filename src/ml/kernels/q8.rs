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

use rayon::prelude::*;

use super::host_matmul::{outputs_per_task, rows_first};
use super::isa::{self, Isa};
use super::packed_gemm::PackedF32;

/// Values per block (one f32 scale each), for weights and activations alike.
pub const Q8_BLOCK: usize = 32;

/// Rows from which a product is bound by arithmetic, not by reading the weights (a
/// window's first pass takes its whole context at once).
pub const GEMM_ROWS: usize = 32;

/// A row-major (n, k) matrix in 8-bit blocks: value = q · scale.
pub struct Q8Matrix {
    q: Vec<i8>,
    scales: Vec<f32>,
    n: usize,
    k: usize,
}

/// Values quantized in blocks: value = q · scale of its block.
struct Quantized<T> {
    q: Vec<T>,
    scales: Vec<f32>,
}

/// Symmetric quantization of whole blocks to integers of at most `max` in magnitude.
fn quantize<T: Copy + Default>(values: &[f32], max: f32, cast: fn(f32) -> T) -> Quantized<T> {
    let mut q = vec![T::default(); values.len()];
    let scales = values
        .chunks_exact(Q8_BLOCK)
        .zip(q.chunks_exact_mut(Q8_BLOCK))
        .map(|(block, out)| {
            let top = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = top / max;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            for (o, v) in out.iter_mut().zip(block) {
                *o = cast((v * inv).round().clamp(-max, max));
            }
            scale
        })
        .collect();
    Quantized { q, scales }
}

fn to_i8(v: f32) -> i8 {
    v as i8
}

fn to_i16(v: f32) -> i16 {
    v as i16
}

impl Q8Matrix {
    /// Quantize a row-major (n, k) f32 matrix; None unless k is a whole number of blocks.
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Option<Self> {
        if !k.is_multiple_of(Q8_BLOCK) || w.len() != n * k {
            return None;
        }
        let Quantized { q, scales } = quantize(w, 127.0, to_i8);
        Some(Self { q, scales, n, k })
    }

    /// Bytes read per product (weights and scales): what bounds a decoding step.
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * self.scales.len()
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
        if rows >= GEMM_ROWS {
            // Compute-bound: expand the weights once and let the packed GEMM's register
            // tiles do the work (600 frames of context: 14.3 → see the README).
            let blocks = k / Q8_BLOCK;
            let w = PackedF32::gather(n, k, |j, i| {
                self.q[j * k + i] as f32 * self.scales[j * blocks + i / Q8_BLOCK]
            });
            return w.matmul_t_on(isa, x, rows);
        }
        let xq = quantize(x, 32767.0, to_i16);
        let blocks = k / Q8_BLOCK;
        // Computed as (n, rows), weight row by weight row, so threads write disjoint
        // contiguous chunks; transposed at the end.
        let mut yt = vec![0f32; n * rows];
        if rows == 0 || n == 0 {
            return yt;
        }
        let per_task = outputs_per_task(n);
        yt.par_chunks_mut(per_task * rows)
            .enumerate()
            .for_each(|(task, chunk)| {
                for (i, out) in chunk.chunks_exact_mut(rows).enumerate() {
                    let j = task * per_task + i;
                    let w = Block {
                        q: &self.q[j * k..(j + 1) * k],
                        scales: &self.scales[j * blocks..(j + 1) * blocks],
                    };
                    let mut r = 0;
                    while r < rows {
                        let m = (rows - r).min(4);
                        let x = |i: usize| Block {
                            q: &xq.q[(r + i) * k..(r + i + 1) * k],
                            scales: &xq.scales[(r + i) * blocks..(r + i + 1) * blocks],
                        };
                        let dst = &mut out[r..r + m];
                        match m {
                            4 => dst.copy_from_slice(&dot(isa, &w, [x(0), x(1), x(2), x(3)])),
                            3 => dst.copy_from_slice(&dot(isa, &w, [x(0), x(1), x(2)])),
                            2 => dst.copy_from_slice(&dot(isa, &w, [x(0), x(1)])),
                            _ => dst.copy_from_slice(&dot(isa, &w, [x(0)])),
                        }
                        r += m;
                    }
                }
            });
        rows_first(yt, rows, n)
    }
}

/// One row in blocks: `q.len() == 32 · scales.len()`.
struct Block<'a, T> {
    q: &'a [T],
    scales: &'a [f32],
}

/// Σ over blocks of (w · x in integers) · scale_w · scale_x, for each x row.
fn dot<const R: usize>(isa: Isa, w: &Block<i8>, x: [Block<i16>; R]) -> [f32; R] {
    let blocks = w.scales.len();
    assert!(w.q.len() == blocks * Q8_BLOCK);
    assert!(x
        .iter()
        .all(|x| x.q.len() == w.q.len() && x.scales.len() == blocks));
    #[cfg(target_arch = "x86_64")]
    {
        let xq = x.each_ref().map(|x| x.q.as_ptr());
        let xs = x.each_ref().map(|x| x.scales.as_ptr());
        let (wq, ws) = (w.q.as_ptr(), w.scales.as_ptr());
        match isa {
            // SAFETY: the CPU has the features (asserted by the caller against `detect`),
            // and every read stays inside the slices whose lengths are asserted above.
            Isa::Avx512 if isa::has_vnni() => unsafe {
                return x86::dot_vnni(wq, ws, blocks, xq, xs);
            },
            Isa::Avx512 | Isa::Avx2 => unsafe {
                return x86::dot_avx2(wq, ws, blocks, xq, xs);
            },
            Isa::Portable => {}
        }
    }
    let _ = isa;
    let mut sums = [0f32; R];
    for b in 0..blocks {
        let wb = &w.q[b * Q8_BLOCK..(b + 1) * Q8_BLOCK];
        for (s, x) in sums.iter_mut().zip(&x) {
            let xb = &x.q[b * Q8_BLOCK..(b + 1) * Q8_BLOCK];
            let int: i32 = wb.iter().zip(xb).map(|(a, b)| *a as i32 * *b as i32).sum();
            *s += int as f32 * (w.scales[b] * x.scales[b]);
        }
    }
    sums
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Q8_BLOCK;

    /// How far ahead of the current block to prefetch weights, in bytes.
    const PREFETCH_AHEAD: usize = 2048;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// A block's 32 weights widened to two vectors of 16 i16.
    #[inline(always)]
    unsafe fn widen(wq: *const i8, b: usize) -> (__m256i, __m256i) {
        let p = wq.add(b * Q8_BLOCK);
        (
            _mm256_cvtepi8_epi16(_mm_loadu_si128(p as *const __m128i)),
            _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(16) as *const __m128i)),
        )
    }

    /// A row's block as two vectors of 16 i16.
    #[inline(always)]
    unsafe fn row(xq: *const i16, b: usize) -> (__m256i, __m256i) {
        let p = xq.add(b * Q8_BLOCK);
        (
            _mm256_loadu_si256(p as *const __m256i),
            _mm256_loadu_si256(p.add(16) as *const __m256i),
        )
    }

    /// `vpmaddwd`: 16 products of i16 pairs summed in pairs into 8 i32 (|w| ≤ 127 and
    /// |x| ≤ 32767, so a block's sum stays far below 2³¹).
    ///
    /// # Safety
    /// AVX2 and FMA; `wq` readable for 32·blocks bytes, each `xq` for 32·blocks i16, `ws`
    /// and each `xs` for `blocks` floats.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2<const R: usize>(
        wq: *const i8,
        ws: *const f32,
        blocks: usize,
        xq: [*const i16; R],
        xs: [*const f32; R],
    ) -> [f32; R] {
        blocks_loop(wq, blocks, xs, ws, |b, r| {
            let (w0, w1) = widen(wq, b);
            let (x0, x1) = row(xq[r], b);
            _mm256_add_epi32(_mm256_madd_epi16(w0, x0), _mm256_madd_epi16(w1, x1))
        })
    }

    /// Σ over blocks of `ints(b, r)` (eight i32 partial sums of block b against row r)
    /// times the two scales. Four accumulators per row take turns, so consecutive blocks
    /// do not wait on each other's FMA (its latency, not memory, bounded one accumulator).
    #[inline(always)]
    unsafe fn blocks_loop<const R: usize>(
        wq: *const i8,
        blocks: usize,
        xs: [*const f32; R],
        ws: *const f32,
        ints: impl Fn(usize, usize) -> __m256i,
    ) -> [f32; R] {
        const U: usize = 4;
        let mut acc = [[_mm256_setzero_ps(); U]; R];
        let mut b = 0;
        while b < blocks {
            // The next rows' bytes, well ahead: the hardware prefetcher alone left the
            // loop waiting on memory.
            let ahead = wq.wrapping_add(b * Q8_BLOCK + PREFETCH_AHEAD);
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
            for (u, lane) in (b..(b + U).min(blocks)).enumerate() {
                let sw = *ws.add(lane);
                for r in 0..R {
                    let scale = _mm256_set1_ps(sw * *xs[r].add(lane));
                    let v = _mm256_cvtepi32_ps(ints(lane, r));
                    acc[r][u] = _mm256_fmadd_ps(v, scale, acc[r][u]);
                }
            }
            b += U;
        }
        acc.map(|a| {
            hsum(_mm256_add_ps(
                _mm256_add_ps(a[0], a[1]),
                _mm256_add_ps(a[2], a[3]),
            ))
        })
    }

    /// The same with `vpdpwssd`, which adds the second half's products in the same step.
    ///
    /// # Safety
    /// AVX-512 VNNI and VL; reads as `dot_avx2`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
    pub unsafe fn dot_vnni<const R: usize>(
        wq: *const i8,
        ws: *const f32,
        blocks: usize,
        xq: [*const i16; R],
        xs: [*const f32; R],
    ) -> [f32; R] {
        blocks_loop(wq, blocks, xs, ws, |b, r| {
            let (w0, w1) = widen(wq, b);
            let (x0, x1) = row(xq[r], b);
            _mm256_dpwssd_epi32(_mm256_madd_epi16(w0, x0), w1, x1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::kernels::host_matmul::tests::data;

    #[test]
    fn every_path_matches_the_plain_product() {
        // Rows around the 4-row groups, outputs around the task size, one and many blocks;
        // from GEMM_ROWS rows on, the expanded weights through the packed GEMM.
        for (rows, k, n) in [
            (1, 32, 1),
            (2, 64, 33),
            (3, 96, 130),
            (5, 1024, 17),
            (9, 320, 70),
            (GEMM_ROWS - 1, 64, 65),
            (GEMM_ROWS, 64, 65),
            (70, 160, 130),
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
        assert!(Q8Matrix::quantize(&[0.0; 40], 2, 20).is_none());
    }
}
