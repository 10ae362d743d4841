//! One head of a decoding step's attention over an f16 cache, with AVX2 (+F16C) or
//! AVX-512: keys and values are widened to f32 in registers as they are read, so the
//! cache is read once and nothing is written but the head's scores. (The portable path
//! first widens each head into an f32 scratch block and then reads that: three times the
//! memory traffic, and late in a song that traffic is most of a step.)

use std::arch::x86_64::*;

use half::f16;

/// Rows of keys (one per head dimension) folded into the scores per pass over them, so
/// the scores are loaded and stored once per four rows instead of once per row.
const KEY_ROWS: usize = 4;

/// Vector registers per output chunk when weighting the values.
const VALUE_REGS: usize = 4;

/// The vector operations the head needs, for one register width.
trait Lanes {
    type V: Copy;
    /// f32 values per register.
    const N: usize;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    /// `N` f16 values widened to f32.
    unsafe fn load_f16(p: *const f16) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// a · b + c
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
}

struct Avx2;

impl Lanes for Avx2 {
    type V = __m256;
    const N: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const f16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
}

struct Avx512;

impl Lanes for Avx512 {
    type V = __m512;
    const N: usize = 16;
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const f16) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
}

/// One head's cache, in place: `keys` holds the Dh rows of the transposed keys,
/// `key_stride` apart, each `t` long; `values` holds `t` rows of `dh`, `value_stride`
/// apart.
pub struct F16Head<'a> {
    pub keys: &'a [f16],
    pub key_stride: usize,
    pub values: &'a [f16],
    pub value_stride: usize,
    pub t: usize,
    pub dh: usize,
}

impl F16Head<'_> {
    /// Whether every row lies inside its slice (what makes the kernels' reads safe).
    pub fn in_bounds(&self) -> bool {
        let (t, dh) = (self.t, self.dh);
        t == 0
            || dh == 0
            || ((dh - 1) * self.key_stride + t <= self.keys.len()
                && (t - 1) * self.value_stride + dh <= self.values.len()
                && t <= self.key_stride
                && dh <= self.value_stride)
    }
}

/// scores (t) = Σ_d q[d] · keys[d] (q already scaled).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `head` is in bounds; `q.len() == dh`, `scores.len() == t`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn scores_avx2(q: &[f32], head: &F16Head, scores: &mut [f32]) {
    scores_with::<Avx2>(q, head, scores)
}

/// The same with AVX-512.
///
/// # Safety
/// The CPU has AVX-512 F; as `scores_avx2` otherwise.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
pub unsafe fn scores_avx512(q: &[f32], head: &F16Head, scores: &mut [f32]) {
    scores_with::<Avx512>(q, head, scores)
}

/// out (dh) = Σ_j p[j] · values[j].
///
/// # Safety
/// As `scores_avx2`, with `p.len() == t` and `out.len() == dh`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn weigh_avx2(p: &[f32], head: &F16Head, out: &mut [f32]) {
    weigh_with::<Avx2>(p, head, out)
}

/// The same with AVX-512.
///
/// # Safety
/// As `scores_avx512`, with `p.len() == t` and `out.len() == dh`.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
pub unsafe fn weigh_avx512(p: &[f32], head: &F16Head, out: &mut [f32]) {
    weigh_with::<Avx512>(p, head, out)
}

#[inline(always)]
unsafe fn scores_with<L: Lanes>(q: &[f32], head: &F16Head, scores: &mut [f32]) {
    let (t, dh, ks) = (head.t, head.dh, head.key_stride);
    debug_assert!(head.in_bounds() && q.len() == dh && scores.len() == t);
    scores.fill(0.0);
    let whole = t - t % L::N;
    let keys = head.keys.as_ptr();
    let s = scores.as_mut_ptr();
    let mut d = 0;
    while d < dh {
        let rows = (dh - d).min(KEY_ROWS);
        let qv: [L::V; KEY_ROWS] = std::array::from_fn(|r| L::splat(q[(d + r).min(dh - 1)]));
        let row: [*const f16; KEY_ROWS] =
            std::array::from_fn(|r| keys.add((d + r.min(rows - 1)) * ks));
        let mut i = 0;
        while i < whole {
            let mut acc = L::load(s.add(i));
            for r in 0..rows {
                acc = L::fma(qv[r], L::load_f16(row[r].add(i)), acc);
            }
            L::store(s.add(i), acc);
            i += L::N;
        }
        for i in whole..t {
            for r in 0..rows {
                *s.add(i) += q[d + r] * (*row[r].add(i)).to_f32();
            }
        }
        d += rows;
    }
}

#[inline(always)]
unsafe fn weigh_with<L: Lanes>(p: &[f32], head: &F16Head, out: &mut [f32]) {
    let (t, dh, vs) = (head.t, head.dh, head.value_stride);
    debug_assert!(head.in_bounds() && p.len() == t && out.len() == dh);
    let values = head.values.as_ptr();
    let o = out.as_mut_ptr();
    let mut c = 0;
    // Columns in chunks of up to VALUE_REGS registers held across all t rows.
    while c + L::N <= dh {
        let regs = ((dh - c) / L::N).min(VALUE_REGS);
        let mut acc = [L::zero(); VALUE_REGS];
        for (j, pj) in p.iter().enumerate() {
            let pj = L::splat(*pj);
            let row = values.add(j * vs + c);
            for (u, a) in acc.iter_mut().enumerate().take(regs) {
                *a = L::fma(pj, L::load_f16(row.add(u * L::N)), *a);
            }
        }
        for (u, a) in acc.iter().enumerate().take(regs) {
            L::store(o.add(c + u * L::N), *a);
        }
        c += regs * L::N;
    }
    for (col, dst) in out.iter_mut().enumerate().skip(c) {
        *dst = p
            .iter()
            .enumerate()
            .map(|(j, pj)| pj * (*values.add(j * vs + col)).to_f32())
            .sum();
    }
}
