//! The x86 kernels over one group of the interleaved layout (`layout`): per block, 16
//! integer multiply-adds of a broadcast input pair into 16 outputs' sums, then one
//! conversion and one scaling per row for all 16 outputs.
//!
//! Integer sums stay far inside i32: a block adds 32 products of |w| ≤ 127 and
//! |x| ≤ 32767, at most 1.3 · 10⁸.

use std::arch::x86_64::*;

use super::layout::{GROUP, GROUP_BYTES};
use super::{GroupOut, Q8_BLOCK};

/// How far ahead of the current pair to prefetch weights, in bytes.
const PREFETCH_AHEAD: usize = 2048;

/// Bytes of one input pair's weights for the group: 16 outputs × 2.
const PAIR_BYTES: usize = 2 * GROUP;

/// Inputs 2p and 2p+1 of a row, as one i32 to broadcast.
#[inline(always)]
unsafe fn pair(x: *const i16, at: usize) -> i32 {
    (x.add(at) as *const i32).read_unaligned()
}

/// Ask for the weights `PREFETCH_AHEAD` bytes on, one cache line per two pairs: the
/// hardware prefetcher alone left the loop waiting on memory.
#[inline(always)]
unsafe fn prefetch(w: *const i8, p: usize) {
    if p.is_multiple_of(2) {
        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(p * PAIR_BYTES + PREFETCH_AHEAD));
    }
}

/// `vpdpwssd` on 512-bit vectors: one instruction per input pair and row for all 16
/// outputs. Four partial sums per row take turns so consecutive pairs do not wait on
/// each other's latency.
///
/// # Safety
/// AVX-512 F/BW/VNNI; `wq` readable for `blocks` group blocks (512 bytes each), `ws` for
/// 16 · blocks floats, each `xq` for 32 · blocks i16 and each `xs` for `blocks` floats.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn group_vnni<const R: usize>(
    wq: *const i8,
    ws: *const f32,
    blocks: usize,
    xq: [*const i16; R],
    xs: [*const f32; R],
) -> GroupOut<R> {
    // Partial sums per row: with four rows or more, the rows' chains already hide the
    // instruction's latency, and four each would not fit the registers.
    let parts = if R >= 4 { 1 } else { 4 };
    let mut acc = [_mm512_setzero_ps(); R];
    for b in 0..blocks {
        let w = wq.add(b * GROUP_BYTES);
        let x0 = b * Q8_BLOCK;
        let mut s = [[_mm512_setzero_si512(); 4]; R];
        for p in 0..Q8_BLOCK / 2 {
            prefetch(w, p);
            let wv = _mm512_cvtepi8_epi16(_mm256_loadu_si256(w.add(p * PAIR_BYTES).cast()));
            for r in 0..R {
                let xv = _mm512_set1_epi32(pair(xq[r], x0 + 2 * p));
                let part = p % parts;
                s[r][part] = _mm512_dpwssd_epi32(s[r][part], wv, xv);
            }
        }
        let scales = _mm512_loadu_ps(ws.add(b * GROUP));
        for r in 0..R {
            let [s0, s1, s2, s3] = s[r];
            let ints = _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3));
            let scale = _mm512_mul_ps(scales, _mm512_set1_ps(*xs[r].add(b)));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ints), scale, acc[r]);
        }
    }
    let mut out = [[0f32; GROUP]; R];
    for (o, a) in out.iter_mut().zip(acc) {
        _mm512_storeu_ps(o.as_mut_ptr(), a);
    }
    out
}

/// `vpmaddwd` on 256-bit vectors, the group as two halves of 8 outputs. Takes at most two
/// rows at once: more would spill its 16 registers.
///
/// # Safety
/// AVX2 and FMA; reads as `group_vnni`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn group_avx2<const R: usize>(
    wq: *const i8,
    ws: *const f32,
    blocks: usize,
    xq: [*const i16; R],
    xs: [*const f32; R],
) -> GroupOut<R> {
    const HALF: usize = GROUP / 2;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for b in 0..blocks {
        let w = wq.add(b * GROUP_BYTES);
        let x0 = b * Q8_BLOCK;
        let mut s = [[_mm256_setzero_si256(); 2]; R];
        for p in 0..Q8_BLOCK / 2 {
            prefetch(w, p);
            let at = w.add(p * PAIR_BYTES);
            let lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(at.cast()));
            let hi = _mm256_cvtepi8_epi16(_mm_loadu_si128(at.add(GROUP).cast()));
            for r in 0..R {
                let xv = _mm256_set1_epi32(pair(xq[r], x0 + 2 * p));
                s[r][0] = _mm256_add_epi32(s[r][0], _mm256_madd_epi16(lo, xv));
                s[r][1] = _mm256_add_epi32(s[r][1], _mm256_madd_epi16(hi, xv));
            }
        }
        let scales = [
            _mm256_loadu_ps(ws.add(b * GROUP)),
            _mm256_loadu_ps(ws.add(b * GROUP + HALF)),
        ];
        for r in 0..R {
            let xscale = _mm256_set1_ps(*xs[r].add(b));
            for h in 0..2 {
                let scale = _mm256_mul_ps(scales[h], xscale);
                acc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[r][h]), scale, acc[r][h]);
            }
        }
    }
    let mut out = [[0f32; GROUP]; R];
    for (o, a) in out.iter_mut().zip(acc) {
        _mm256_storeu_ps(o.as_mut_ptr(), a[0]);
        _mm256_storeu_ps(o.as_mut_ptr().add(HALF), a[1]);
    }
    out
}
