//! One head of a decoding step's attention over an f16 or 8-bit cache, with AVX2 (+F16C)
//! or AVX-512: keys and values are widened to f32 in registers as they are read, so the
//! cache is read once and nothing is written but the head's scores. (The portable path
//! first widens each head into an f32 scratch block and then reads that: three times the
//! memory traffic, and late in a song that traffic is most of a step.) Also the softmax's
//! exponentials, a vector at a time: with f32's scalar `exp` they cost about as much as
//! reading the cache.

use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};

pub use crate::ml::kernels::lanes::Elem;
use crate::ml::kernels::lanes::{Avx2, Avx512, Lanes};

/// Rows of keys (one per head dimension) folded into the scores per pass over them, so
/// the scores are loaded and stored once per four rows instead of once per row.
const KEY_ROWS: usize = 4;

/// Bytes of a cache line.
const LINE: usize = 64;

/// One head's cache, in place: `keys` holds the Dh rows of the transposed keys,
/// `key_stride` apart, each `t` long; `values` holds `t` rows of `dh`, `value_stride`
/// apart.
pub struct CacheHead<'a, E> {
    keys: &'a [E],
    key_stride: usize,
    values: &'a [E],
    value_stride: usize,
    pub t: usize,
    pub dh: usize,
}

impl<'a, E> CacheHead<'a, E> {
    /// The head starting at `keys[ko]` and `values[vo]`, or None unless every row lies
    /// inside its slice (what makes the kernels' reads safe).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        keys: &'a [E],
        ko: usize,
        key_stride: usize,
        values: &'a [E],
        vo: usize,
        value_stride: usize,
        t: usize,
        dh: usize,
    ) -> Option<Self> {
        let head = Self {
            keys: keys.get(ko..)?,
            key_stride,
            values: values.get(vo..)?,
            value_stride,
            t,
            dh,
        };
        let inside = t == 0
            || dh == 0
            || ((dh - 1) * key_stride + t <= head.keys.len()
                && (t - 1) * value_stride + dh <= head.values.len()
                && t <= key_stride
                && dh <= value_stride);
        inside.then_some(head)
    }
}

/// scores (t) = Σ_d q[d] · keys[d] (q already scaled).
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `head` is in bounds; `q.len() == dh`, `scores.len() == t`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn scores_avx2<E: Elem>(q: &[f32], head: &CacheHead<E>, scores: &mut [f32]) {
    scores_with::<Avx2, E>(q, head, scores)
}

/// The same with AVX-512.
///
/// # Safety
/// The CPU has AVX-512 F; as `scores_avx2` otherwise.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
pub unsafe fn scores_avx512<E: Elem>(q: &[f32], head: &CacheHead<E>, scores: &mut [f32]) {
    scores_with::<Avx512, E>(q, head, scores)
}

/// out (dh) = Σ_j p[j] · values[j].
///
/// # Safety
/// As `scores_avx2`, with `p.len() == t` and `out.len() == dh`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn weigh_avx2<E: Elem>(p: &[f32], head: &CacheHead<E>, out: &mut [f32]) {
    weigh_with::<Avx2, E, 8>(p, head, out)
}

/// The same with AVX-512.
///
/// # Safety
/// As `scores_avx512`, with `p.len() == t` and `out.len() == dh`.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
pub unsafe fn weigh_avx512<E: Elem>(p: &[f32], head: &CacheHead<E>, out: &mut [f32]) {
    weigh_with::<Avx512, E, 4>(p, head, out)
}

#[inline(always)]
unsafe fn scores_with<L: Lanes, E: Elem>(q: &[f32], head: &CacheHead<E>, scores: &mut [f32]) {
    let (t, dh, ks) = (head.t, head.dh, head.key_stride);
    debug_assert!(q.len() == dh && scores.len() == t);
    scores.fill(0.0);
    let whole = t - t % L::N;
    let keys = head.keys.as_ptr();
    let s = scores.as_mut_ptr();
    let mut d = 0;
    while d < dh {
        let rows = (dh - d).min(KEY_ROWS);
        let qv: [L::V; KEY_ROWS] = std::array::from_fn(|r| L::splat(q[(d + r).min(dh - 1)]));
        let row: [*const E; KEY_ROWS] =
            std::array::from_fn(|r| keys.add((d + r.min(rows - 1)) * ks));
        // The rows of the next pass, a pass ahead: each row is short (a song's length
        // in f16), too short for the hardware to see it as a stream in time.
        let ahead = if d + 2 * KEY_ROWS <= dh {
            KEY_ROWS * ks
        } else {
            0
        };
        let mut i = 0;
        while i < whole {
            let mut acc = L::load(s.add(i));
            // One prefetch per cache line of each row, not per vector: with 8-bit keys a
            // vector covers 8 of a line's 64 positions.
            let fetch = ahead > 0 && (i * std::mem::size_of::<E>()).is_multiple_of(LINE);
            for r in 0..rows {
                if fetch {
                    _mm_prefetch::<_MM_HINT_T0>(row[r].add(ahead + i) as *const i8);
                }
                acc = L::fma(qv[r], E::widen::<L>(row[r].add(i)), acc);
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

/// Accumulators held across all rows of the values: `REGS` registers of columns at a
/// time (8 on AVX2, 4 on AVX-512: a 64-wide head in one pass over the values either way,
/// with room left for the operands), then single registers, then single columns.
#[inline(always)]
unsafe fn weigh_with<L: Lanes, E: Elem, const REGS: usize>(
    p: &[f32],
    head: &CacheHead<E>,
    out: &mut [f32],
) {
    let (t, dh) = (head.t, head.dh);
    debug_assert!(p.len() == t && out.len() == dh);
    let mut c = 0;
    while c + REGS * L::N <= dh {
        weigh_columns::<L, E, REGS>(p, head, c, out);
        c += REGS * L::N;
    }
    while c + L::N <= dh {
        weigh_columns::<L, E, 1>(p, head, c, out);
        c += L::N;
    }
    let (values, vs) = (head.values.as_ptr(), head.value_stride);
    for (col, dst) in out.iter_mut().enumerate().skip(c) {
        *dst = p
            .iter()
            .enumerate()
            .map(|(j, pj)| pj * (*values.add(j * vs + col)).to_f32())
            .sum();
    }
}

/// out[c .. c + R·N] = Σ_j p[j] · values[j][c .. c + R·N].
#[inline(always)]
unsafe fn weigh_columns<L: Lanes, E: Elem, const R: usize>(
    p: &[f32],
    head: &CacheHead<E>,
    c: usize,
    out: &mut [f32],
) {
    let (values, vs) = (head.values.as_ptr().add(c), head.value_stride);
    let mut acc = [L::zero(); R];
    for (j, pj) in p.iter().enumerate() {
        let pj = L::splat(*pj);
        let row = values.add(j * vs);
        for (u, a) in acc.iter_mut().enumerate() {
            *a = L::fma(pj, E::widen::<L>(row.add(u * L::N)), *a);
        }
    }
    for (u, a) in acc.iter().enumerate() {
        L::store(out.as_mut_ptr().add(c + u * L::N), *a);
    }
}

/// scores ← e^(score − max score), returning their sum: softmax's numerators and
/// denominator (the caller divides the weighted values once instead of every weight).
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_weights_avx2(scores: &mut [f32]) -> f32 {
    exp_weights_with::<Avx2>(scores)
}

/// The same with AVX-512.
///
/// # Safety
/// The CPU has AVX-512 F.
#[target_feature(enable = "avx2,fma,avx512f")]
pub unsafe fn exp_weights_avx512(scores: &mut [f32]) -> f32 {
    exp_weights_with::<Avx512>(scores)
}

#[inline(always)]
unsafe fn exp_weights_with<L: Lanes>(scores: &mut [f32]) -> f32 {
    let whole = scores.len() - scores.len() % L::N;
    let (body, tail) = scores.split_at_mut(whole);
    let s = body.as_mut_ptr();
    let mut top = L::splat(f32::NEG_INFINITY);
    for i in (0..whole).step_by(L::N) {
        top = L::max(top, L::load(s.add(i)));
    }
    let max = L::lanes(top)[..L::N]
        .iter()
        .chain(tail.iter())
        .fold(f32::NEG_INFINITY, |a, x| a.max(*x));
    let shift = L::splat(max);
    let mut sum = L::zero();
    for i in (0..whole).step_by(L::N) {
        let e = L::exp(L::sub(L::load(s.add(i)), shift));
        L::store(s.add(i), e);
        sum = L::add(sum, e);
    }
    let mut total: f32 = L::lanes(sum)[..L::N].iter().sum();
    for x in tail {
        *x = (*x - max).exp();
        total += *x;
    }
    total
}
