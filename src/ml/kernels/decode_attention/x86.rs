//! One head of a decoding step's attention over an f32, f16 or 8-bit cache, with AVX2
//! (+F16C) or AVX-512: keys and values are widened to f32 in registers as they are read,
//! so the cache is read once and nothing is written but the head's scores. (The portable path
//! first widens each head into an f32 scratch block and then reads that: three times the
//! memory traffic, and late in a song that traffic is most of a step.) Also the softmax's
//! exponentials, a vector at a time: with f32's scalar `exp` they cost about as much as
//! reading the cache.

use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};

use super::Tiles;
pub use crate::ml::kernels::lanes::Elem;
use crate::ml::kernels::lanes::{Avx2, Avx512, Lanes};

/// Vector accumulators of the key pass: eight chains of FMAs keep both FMA units busy
/// through their latency, with registers left for the operands on AVX2.
const KEY_ACCUMULATORS: usize = 8;

/// How many blocks (a line of every key row) ahead the key pass prefetches.
const PREFETCH_BLOCKS: usize = 2;

/// Bytes of a cache line.
const LINE: usize = 64;

/// Where one head's keys or values lie in a cache buffer: from `data[offset]`, rows
/// `stride` apart; keys maybe in `tiles`.
pub struct Place<'a, E> {
    pub data: &'a [E],
    pub offset: usize,
    pub stride: usize,
    pub tiles: Option<Tiles>,
}

/// One head's cache, in place. The key pass reads it a block at a time: a cache line
/// (`block::<E>()` positions) of each of the Dh key rows, rows `key_row_stride` apart,
/// blocks `key_block_stride` apart (a tile of that many positions, or the next line of
/// each row when the rows lie whole). `values` holds `t` rows of `dh`, `value_stride`
/// apart.
pub struct CacheHead<'a, E> {
    keys: &'a [E],
    key_row_stride: usize,
    key_block_stride: usize,
    values: &'a [E],
    value_stride: usize,
    pub t: usize,
    pub dh: usize,
}

/// Positions of a cache line of `E`: the key pass's block.
pub(super) const fn block<E>() -> usize {
    LINE / std::mem::size_of::<E>()
}

impl<'a, E> CacheHead<'a, E> {
    /// The head at `keys` and `values` with `t` positions of `dh`, or None unless the key
    /// rows are readable to the end of `t`'s last block and the value rows to `t` (what
    /// makes the kernels' reads safe), or the keys are in tiles of other than a block.
    pub fn new(keys: Place<'a, E>, values: Place<'a, E>, t: usize, dh: usize) -> Option<Self> {
        let key_block_stride = match keys.tiles {
            None => block::<E>(),
            Some(Tiles { positions, stride }) if positions == block::<E>() => stride,
            Some(_) => return None,
        };
        let head = Self {
            keys: keys.data.get(keys.offset..)?,
            key_row_stride: keys.stride,
            key_block_stride,
            values: values.data.get(values.offset..)?,
            value_stride: values.stride,
            t,
            dh,
        };
        if t == 0 || dh == 0 {
            return Some(head);
        }
        // Rows do not overlap within what counts; past `t` a block's reads are dropped.
        let apart = match keys.tiles {
            None => t <= keys.stride,
            Some(_) => keys.stride >= block::<E>() && (dh - 1) * keys.stride < key_block_stride,
        };
        let last = t.next_multiple_of(block::<E>()) - 1;
        let last_key =
            (last / block::<E>()) * key_block_stride + (dh - 1) * keys.stride + last % block::<E>();
        let inside = apart
            && values.tiles.is_none()
            && last_key < head.keys.len()
            && (t - 1) * values.stride + dh <= head.values.len()
            && dh <= values.stride;
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

/// The key pass goes a block at a time (`CacheHead`): `per_line` vectors of positions
/// held in accumulators across all Dh rows, so each line is read (and prefetched) once
/// and each score stored once. The positions after the last whole block take a block
/// of fewer vectors, into a buffer of which only those positions are kept.
#[inline(always)]
unsafe fn scores_with<L: Lanes, E: Elem>(q: &[f32], head: &CacheHead<E>, scores: &mut [f32]) {
    let t = head.t;
    debug_assert!(q.len() == head.dh && scores.len() == t);
    let per_line = (block::<E>() / L::N).clamp(1, KEY_ACCUMULATORS);
    let positions = per_line * L::N;
    let (keys, s) = (head.keys.as_ptr(), scores.as_mut_ptr());
    let ahead = PREFETCH_BLOCKS * head.key_block_stride;
    let whole = t / positions;
    for b in 0..whole {
        let (at, out) = (keys.add(b * head.key_block_stride), s.add(b * positions));
        match per_line {
            8 => key_block::<L, E, 8>(q, head, at, Some(ahead), out),
            4 => key_block::<L, E, 4>(q, head, at, Some(ahead), out),
            2 => key_block::<L, E, 2>(q, head, at, Some(ahead), out),
            _ => key_block::<L, E, 1>(q, head, at, Some(ahead), out),
        }
    }
    let done = whole * positions;
    if done == t {
        return;
    }
    // At most a block of the smallest element's positions.
    let mut last = [0f32; block::<i8>()];
    let (at, out) = (keys.add(whole * head.key_block_stride), last.as_mut_ptr());
    match (t - done).div_ceil(L::N) {
        1 => key_block::<L, E, 1>(q, head, at, None, out),
        2 => key_block::<L, E, 2>(q, head, at, None, out),
        3 => key_block::<L, E, 3>(q, head, at, None, out),
        4 => key_block::<L, E, 4>(q, head, at, None, out),
        5 => key_block::<L, E, 5>(q, head, at, None, out),
        6 => key_block::<L, E, 6>(q, head, at, None, out),
        7 => key_block::<L, E, 7>(q, head, at, None, out),
        _ => key_block::<L, E, 8>(q, head, at, None, out),
    }
    scores[done..].copy_from_slice(&last[..t - done]);
}

/// out[u·N ..][..N] = Σ_d q[d] · keys[d][u·N ..] for `V` vectors of a block at `at`,
/// each row `d` at `at + d · key_row_stride`. With fewer vectors than accumulators, rows
/// go in `KEY_ACCUMULATORS / V` sets interleaved by d and summed at the end: FMA's
/// latency wants eight chains. `ahead`: how far ahead to prefetch each row, once.
#[inline(always)]
unsafe fn key_block<L: Lanes, E: Elem, const V: usize>(
    q: &[f32],
    head: &CacheHead<E>,
    at: *const E,
    ahead: Option<usize>,
    out: *mut f32,
) {
    let sets = (KEY_ACCUMULATORS / V).max(1);
    let (rs, dh) = (head.key_row_stride, head.dh);
    let mut acc = [L::zero(); KEY_ACCUMULATORS];
    let mut d = 0;
    while d + sets <= dh {
        for set in 0..sets {
            let (qd, row) = key_row::<L, E>(q, at, rs, d + set, ahead);
            for u in 0..V {
                let a = &mut acc[set * V + u];
                *a = L::fma(qd, E::widen::<L>(row.add(u * L::N)), *a);
            }
        }
        d += sets;
    }
    // The rows after the last whole set, into the first.
    for d in d..dh {
        let (qd, row) = key_row::<L, E>(q, at, rs, d, ahead);
        for (u, a) in acc.iter_mut().take(V).enumerate() {
            *a = L::fma(qd, E::widen::<L>(row.add(u * L::N)), *a);
        }
    }
    for u in 0..V {
        let mut sum = acc[u];
        for set in 1..sets {
            sum = L::add(sum, acc[set * V + u]);
        }
        L::store(out.add(u * L::N), sum);
    }
}

/// Row `d` of a key block at `at` (rows `rs` apart) and q[d] in every lane; the row
/// prefetched `ahead`. (A function, not a closure: a closure would not inherit the
/// caller's target features unless inlined.)
#[inline(always)]
unsafe fn key_row<L: Lanes, E>(
    q: &[f32],
    at: *const E,
    rs: usize,
    d: usize,
    ahead: Option<usize>,
) -> (L::V, *const E) {
    let row = at.add(d * rs);
    if let Some(ahead) = ahead {
        // Past the cache's end a prefetch is harmless.
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(ahead) as *const i8);
    }
    (L::splat(q[d]), row)
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
