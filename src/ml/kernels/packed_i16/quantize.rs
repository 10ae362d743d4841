//! x's rows in 13-bit integers for one product: a scale per k-block of a row (its largest
//! magnitude over `LEVELS`), values rounded to nearest, ties to even (as `vcvtps2dq`
//! does, so every path gives the same integers).

use std::cell::RefCell;

use super::{KC, LEVELS};
use crate::ml::kernels::isa::Isa;

/// Quantized rows, `stride` values apart (k rounded up to a whole pair, the pad zero);
/// row r's scale for k-block b at `scales[r · blocks + b]`.
#[derive(Default)]
pub(super) struct Rows {
    pub(super) values: Vec<i16>,
    pub(super) scales: Vec<f32>,
    pub(super) stride: usize,
}

thread_local! {
    /// Kept from one product to the next: a decode makes thousands.
    static KEPT: RefCell<Rows> = RefCell::default();
}

/// One value at `inv` = 1 / scale.
pub(super) fn level(v: f32, inv: f32) -> i16 {
    (v * inv)
        .round_ties_even()
        .clamp(-LEVELS as f32, LEVELS as f32) as i16
}

/// `rows` rows of x (`ldx` apart, `k` long) quantized, handed to `f`. The buffers are
/// taken out of the thread's while `f` runs, so a product nested in it (a task stolen
/// while this one waits) gets buffers of its own.
pub(super) fn with_rows<R>(
    isa: Isa,
    x: &[f32],
    ldx: usize,
    rows: usize,
    k: usize,
    f: impl FnOnce(&Rows) -> R,
) -> R {
    let mut q = KEPT.with(|kept| std::mem::take(&mut *kept.borrow_mut()));
    q.stride = k.div_ceil(2) * 2;
    q.values.clear();
    q.values.resize(rows * q.stride, 0);
    q.scales.clear();
    let blocks = k.div_ceil(KC);
    q.scales.resize(rows * blocks, 0.0);
    for (r, (out, scales)) in q
        .values
        .chunks_exact_mut(q.stride)
        .zip(q.scales.chunks_exact_mut(blocks))
        .enumerate()
    {
        let x = x[r * ldx..r * ldx + k].chunks(KC);
        for ((x, out), scale) in x.zip(out[..k].chunks_mut(KC)).zip(scales) {
            *scale = block(isa, x, out);
        }
    }
    let result = f(&q);
    KEPT.with(|kept| *kept.borrow_mut() = q);
    result
}

/// One k-block of a row into `out`; returns its scale.
fn block(isa: Isa, x: &[f32], out: &mut [i16]) -> f32 {
    match isa {
        // SAFETY: the CPU has AVX2 (the path is never above `isa::detect()`); the loads
        // and stores stay inside `x` and `out`, which have the same length.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 => unsafe { block_avx2(x, out) },
        _ => block_portable(x, out),
    }
}

fn block_portable(x: &[f32], out: &mut [i16]) -> f32 {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (scale, inv) = scales(max);
    for (o, v) in out.iter_mut().zip(x) {
        *o = level(*v, inv);
    }
    scale
}

/// The scale for values up to `max` and its inverse (zero for zeros).
pub(super) fn scales(max: f32) -> (f32, f32) {
    if max > 0.0 {
        (max / LEVELS as f32, LEVELS as f32 / max)
    } else {
        (0.0, 0.0)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_avx2(x: &[f32], out: &mut [i16]) -> f32 {
    use std::arch::x86_64::*;
    assert_eq!(x.len(), out.len());
    let n = x.len();
    let whole = n - n % 16;
    let sign = _mm256_set1_ps(-0.0);
    let mut maxv = _mm256_setzero_ps();
    let xp = x.as_ptr();
    for i in (0..n - n % 8).step_by(8) {
        maxv = _mm256_max_ps(maxv, _mm256_andnot_ps(sign, _mm256_loadu_ps(xp.add(i))));
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), maxv);
    let max = x[n - n % 8..]
        .iter()
        .chain(&lanes)
        .fold(0f32, |m, v| m.max(v.abs()));
    let (scale, inv) = scales(max);
    let invv = _mm256_set1_ps(inv);
    for i in (0..whole).step_by(16) {
        // Rounded to nearest even by the default MXCSR mode, as `level` does. The values
        // are within ±LEVELS already, so packing's saturation never bites.
        let a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xp.add(i)), invv));
        let b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xp.add(i + 8)), invv));
        // packs interleaves 128-bit halves (a0 b0 a1 b1): put them back in order.
        let packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0b11_01_10_00);
        _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, packed);
    }
    for (o, v) in out[whole..].iter_mut().zip(&x[whole..]) {
        *o = level(*v, inv);
    }
    scale
}
