//! CPU matrix products for the decoder's projections: y = x · Wᵀ with W kept row-major
//! (out, in) as in the checkpoint, in f32, f16 or bf16 (8-bit weights: `q8`).
//!
//! Why not candle's matmul: a decoding step multiplies 2 rows (guidance) by ~300 M weights,
//! so the cost is reading the weights once from memory. candle's GEMM picks a tiny
//! compute kernel for 2 rows and widens bf16 weights to f32 on every call. Here each weight
//! row is streamed once, converted in registers, and dotted with every input row; rows of
//! W are split across threads.

use half::{bf16, f16};
use rayon::prelude::*;

pub enum HostWeight {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
}

impl HostWeight {
    /// Bytes read per product.
    pub fn bytes(&self) -> usize {
        match self {
            HostWeight::F32(v) => 4 * v.len(),
            HostWeight::F16(v) => 2 * v.len(),
            HostWeight::BF16(v) => 2 * v.len(),
        }
    }
}

/// A weight element type the kernels can widen to f32, eight at a time.
pub trait Lanes: Copy + Send + Sync {
    fn to_f32(self) -> f32;
    /// Eight consecutive values at `p` as f32.
    ///
    /// # Safety
    /// `p` must point at eight readable values.
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
use std::arch::x86_64::*;

impl Lanes for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    unsafe fn load8(p: *const Self) -> __m256 {
        _mm256_loadu_ps(p)
    }
}

impl Lanes for f16 {
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    unsafe fn load8(p: *const Self) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
}

impl Lanes for bf16 {
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    unsafe fn load8(p: *const Self) -> __m256 {
        // bf16 is the top half of an f32.
        let wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
        _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16))
    }
}

/// Σ w[i]·x[i] over the shorter of the two.
#[inline]
pub fn dot<T: Lanes>(w: &[T], x: &[f32]) -> f32 {
    let n = w.len().min(x.len());
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    let (done, mut sum) = {
        let done = n - n % 32;
        // SAFETY: every load reads 8 values at an offset < done ≤ n from both slices.
        unsafe {
            let (wp, xp) = (w.as_ptr(), x.as_ptr());
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            while i < done {
                for (j, a) in acc.iter_mut().enumerate() {
                    let o = i + 8 * j;
                    *a = _mm256_fmadd_ps(T::load8(wp.add(o)), _mm256_loadu_ps(xp.add(o)), *a);
                }
                i += 32;
            }
            let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            (done, hsum(v))
        }
    };
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    )))]
    let (done, mut sum) = (0, 0f32);
    for i in done..n {
        sum += w[i].to_f32() * x[i];
    }
    sum
}

/// Σ w·x for four input rows at once: each weight load feeds four FMAs, so the kernel is
/// bound by arithmetic rather than loads when a layer sees several tokens (a ViT's patches,
/// a prompt's words).
#[inline]
fn dot4<T: Lanes>(w: &[T], x: [&[f32]; 4]) -> [f32; 4] {
    let n = x.iter().fold(w.len(), |n, r| n.min(r.len()));
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    let (done, mut sums) = {
        let done = n - n % 16;
        // SAFETY: every load reads 8 values at an offset < done ≤ n from each slice.
        unsafe {
            let wp = w.as_ptr();
            let xp = x.map(|r| r.as_ptr());
            let mut acc = [[_mm256_setzero_ps(); 2]; 4];
            let mut i = 0;
            while i < done {
                let w0 = T::load8(wp.add(i));
                let w1 = T::load8(wp.add(i + 8));
                for (a, p) in acc.iter_mut().zip(xp) {
                    a[0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(p.add(i)), a[0]);
                    a[1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(p.add(i + 8)), a[1]);
                }
                i += 16;
            }
            (done, acc.map(|a| hsum(_mm256_add_ps(a[0], a[1]))))
        }
    };
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    )))]
    let (done, mut sums) = (0, [0f32; 4]);
    for i in done..n {
        let wi = w[i].to_f32();
        for (s, r) in sums.iter_mut().zip(x) {
            *s += wi * r[i];
        }
    }
    sums
}

/// Consecutive weight rows (`out.len() / rows` outputs) against every input row, into
/// `out` laid out (output, row). Weight rows go in tiles that stay in L2 while each group
/// of four input rows (in L1) passes over them.
fn block<T: Lanes>(w: &[T], xs: &[f32], in_dim: usize, rows: usize, out: &mut [f32]) {
    const TILE: usize = 64;
    let n_rows = out.len() / rows;
    let x = |m: usize| &xs[m * in_dim..(m + 1) * in_dim];
    let wr = |n: usize| &w[n * in_dim..(n + 1) * in_dim];
    for t0 in (0..n_rows).step_by(TILE) {
        let t1 = (t0 + TILE).min(n_rows);
        let mut m = 0;
        while m + 4 <= rows {
            let group = [x(m), x(m + 1), x(m + 2), x(m + 3)];
            for n in t0..t1 {
                out[n * rows + m..n * rows + m + 4].copy_from_slice(&dot4(wr(n), group));
            }
            m += 4;
        }
        for mm in m..rows {
            for n in t0..t1 {
                out[n * rows + mm] = dot(wr(n), x(mm));
            }
        }
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
#[inline]
unsafe fn hsum(v: __m256) -> f32 {
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), v);
    lanes.iter().sum()
}

/// y (rows, out) = xs (rows, in) · Wᵀ, W (out, in).
pub fn matmul_t(
    w: &HostWeight,
    xs: &[f32],
    rows: usize,
    in_dim: usize,
    out_dim: usize,
) -> Vec<f32> {
    // Computed as (out, rows) — one weight row at a time — then transposed, so threads
    // write disjoint contiguous chunks.
    let mut yt = vec![0f32; out_dim * rows];
    let per_task = outputs_per_task(out_dim);
    yt.par_chunks_mut(per_task * rows)
        .with_max_len(1) // see `outputs_per_task`
        .enumerate()
        .for_each(|(task, chunk)| {
            let n0 = task * per_task;
            let span = n0 * in_dim..(n0 + chunk.len() / rows) * in_dim;
            match w {
                HostWeight::F32(v) => block(&v[span], xs, in_dim, rows, chunk),
                HostWeight::F16(v) => block(&v[span], xs, in_dim, rows, chunk),
                HostWeight::BF16(v) => block(&v[span], xs, in_dim, rows, chunk),
            }
        });
    rows_first(yt, rows, out_dim)
}

/// How many outputs (weight rows) one task of a row-streaming product takes: four tasks
/// per thread, so a slow thread does not hold the others up, and never a sliver. Callers
/// make every task its own job (`with_max_len(1)`): rayon's adaptive split had handed out
/// pairs of tasks, and at the end of a product one thread still had a quarter of it while
/// the other waited (a whole song's step 20.2 → 19.2 ms on two cores).
pub(crate) fn outputs_per_task(outputs: usize) -> usize {
    (outputs / (4 * rayon::current_num_threads().max(1))).max(16)
}

/// A product computed output by output, (out, rows), laid out row by row, (rows, out).
pub(crate) fn rows_first(yt: Vec<f32>, rows: usize, outputs: usize) -> Vec<f32> {
    if rows == 1 {
        return yt;
    }
    let mut y = vec![0f32; rows * outputs];
    for (n, col) in yt.chunks_exact(rows).enumerate() {
        for (m, v) in col.iter().enumerate() {
            y[m * outputs + n] = *v;
        }
    }
    y
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn naive(w: &[f32], xs: &[f32], rows: usize, k: usize, n: usize) -> Vec<f32> {
        let mut y = vec![0f32; rows * n];
        for m in 0..rows {
            for j in 0..n {
                y[m * n + j] = (0..k).map(|i| xs[m * k + i] * w[j * k + i]).sum();
            }
        }
        y
    }

    /// Deterministic values in [-1, 1) for kernel tests.
    pub(crate) fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    fn max_rel(a: &[f32], b: &[f32]) -> f32 {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
            / scale
    }

    #[test]
    fn every_storage_matches_the_naive_product() {
        // Odd sizes on purpose: a tail after the SIMD chunks and after the spans.
        for (rows, k, n) in [
            (1, 64, 7),
            (2, 320, 33),
            (3, 96, 130),
            (9, 200, 17),
            (4, 7, 5),
        ] {
            let w = data(n * k, 1);
            let xs = data(rows * k, 2);
            let want = naive(&w, &xs, rows, k, n);
            let f32w = HostWeight::F32(w.clone());
            assert!(max_rel(&matmul_t(&f32w, &xs, rows, k, n), &want) < 1e-5);
            let f16w = HostWeight::F16(w.iter().map(|&v| f16::from_f32(v)).collect());
            assert!(max_rel(&matmul_t(&f16w, &xs, rows, k, n), &want) < 2e-3);
            let bf16w = HostWeight::BF16(w.iter().map(|&v| bf16::from_f32(v)).collect());
            assert!(max_rel(&matmul_t(&bf16w, &xs, rows, k, n), &want) < 1e-2);
        }
    }
}
