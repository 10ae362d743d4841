//! One head of a decoding step's attention, on the path chosen for it: the portable loops
//! over f32 rows, or the vector kernels over an f32, f16 or 8-bit cache (`x86.rs`); and the
//! softmax's exponentials, vectorised on AVX2 and AVX-512 whatever the cache's dtype.

use super::isa::Isa;
#[cfg(target_arch = "x86_64")]
use super::x86::{self, CacheHead, Elem, Place};
use super::Heads;
#[cfg(target_arch = "x86_64")]
use super::Values;
#[cfg(target_arch = "x86_64")]
use half::f16;

// The cache's key tiles are the vector key pass's blocks.
#[cfg(target_arch = "x86_64")]
const _: () = assert!(super::cpu_cache::KEY_TILE_BYTES == x86::block::<u8>());

/// How one head is computed: over f32 rows gathered (and widened) into scratch, or, on
/// AVX2 or AVX-512, by the vector kernels, which widen an f16 or 8-bit cache in
/// registers.
pub(super) enum Path<'a> {
    Portable,
    #[cfg(target_arch = "x86_64")]
    F32(Isa, CacheHead<'a, f32>),
    #[cfg(target_arch = "x86_64")]
    F16(Isa, CacheHead<'a, f16>),
    #[cfg(target_arch = "x86_64")]
    I8(Isa, CacheHead<'a, i8>),
}

impl<'a> Path<'a> {
    pub(super) fn choose(
        isa: Isa,
        keys: &'a Heads,
        values: &'a Heads,
        b: usize,
        h: usize,
        t: usize,
        dh: usize,
    ) -> Self {
        #[cfg(target_arch = "x86_64")]
        if isa >= Isa::Avx2 {
            match (&keys.data, &values.data) {
                (Values::F32(k), Values::F32(v)) => {
                    let (k, v) = (place(keys, b, h, k), place(values, b, h, v));
                    if let Some(head) = CacheHead::new(k, v, t, dh) {
                        return Path::F32(isa, head);
                    }
                }
                (Values::F16(k), Values::F16(v)) => {
                    let (k, v) = (place(keys, b, h, k), place(values, b, h, v));
                    if let Some(head) = CacheHead::new(k, v, t, dh) {
                        return Path::F16(isa, head);
                    }
                }
                (Values::I8(k), Values::I8(v)) => {
                    let (k, v) = (place(keys, b, h, k), place(values, b, h, v));
                    if let Some(head) = CacheHead::new(k, v, t, dh) {
                        return Path::I8(isa, head);
                    }
                }
                _ => {}
            }
        }
        let _ = (isa, keys, values, b, h, t, dh);
        Path::Portable
    }

    /// scores (t) = keys (Dh, t)ᵀ · q, q already scaled.
    pub(super) fn scores(
        &self,
        keys: &Heads,
        b: usize,
        h: usize,
        q: &[f32],
        scores: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        let (dh, t) = (q.len(), scores.len());
        match self {
            // SAFETY: the CPU has the path (asserted against `detect` by the caller), the
            // head is in bounds (checked in `choose`) and the lengths are the head's.
            #[cfg(target_arch = "x86_64")]
            Path::F32(isa, head) => unsafe { scores_on(*isa, q, head, scores) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Path::F16(isa, head) => unsafe { scores_on(*isa, q, head, scores) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Path::I8(isa, head) => unsafe { scores_on(*isa, q, head, scores) },
            Path::Portable => {
                let kt = keys.rows(b, h, dh, t, scratch);
                for (qd, keys_d) in q.iter().zip(kt.chunks_exact(t)) {
                    for (s, k) in scores.iter_mut().zip(keys_d) {
                        *s += qd * k;
                    }
                }
            }
        }
    }

    /// out (dh) = Σ_j p[j] · values[j].
    pub(super) fn weigh(
        &self,
        values: &Heads,
        b: usize,
        h: usize,
        p: &[f32],
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        let (t, dh) = (p.len(), out.len());
        match self {
            // SAFETY: as in `scores`.
            #[cfg(target_arch = "x86_64")]
            Path::F32(isa, head) => unsafe { weigh_on(*isa, p, head, out) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Path::F16(isa, head) => unsafe { weigh_on(*isa, p, head, out) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Path::I8(isa, head) => unsafe { weigh_on(*isa, p, head, out) },
            Path::Portable => {
                let rows = values.rows(b, h, t, dh, scratch);
                for (p, value) in p.iter().zip(rows.chunks_exact(dh)) {
                    for (o, x) in out.iter_mut().zip(value) {
                        *o += p * x;
                    }
                }
            }
        }
    }
}

/// Where head (b, h) of `heads` lies in its buffer `data`.
#[cfg(target_arch = "x86_64")]
fn place<'a, E>(heads: &Heads, b: usize, h: usize, data: &'a [E]) -> Place<'a, E> {
    Place {
        data,
        offset: heads.start(b, h),
        stride: heads.st,
        tiles: heads.tiles,
    }
}

/// The scores kernel of `isa` (AVX2 or AVX-512) for a cache of `E`.
///
/// # Safety
/// The CPU has the path; the head is in bounds (made by `CacheHead::new`).
#[cfg(target_arch = "x86_64")]
unsafe fn scores_on<E: Elem>(isa: Isa, q: &[f32], head: &CacheHead<E>, scores: &mut [f32]) {
    assert!(head.dh == q.len() && head.t == scores.len());
    match isa {
        Isa::Avx512 => x86::scores_avx512(q, head, scores),
        _ => x86::scores_avx2(q, head, scores),
    }
}

/// The values kernel of `isa` for a cache of `E`.
///
/// # Safety
/// As `scores_on`.
#[cfg(target_arch = "x86_64")]
unsafe fn weigh_on<E: Elem>(isa: Isa, p: &[f32], head: &CacheHead<E>, out: &mut [f32]) {
    assert!(head.dh == out.len() && head.t == p.len());
    match isa {
        Isa::Avx512 => x86::weigh_avx512(p, head, out),
        _ => x86::weigh_avx2(p, head, out),
    }
}

/// Softmax's numerators in place, scores ← e^(score − max score), and their sum.
/// The path must be one the CPU has (`isa::detect`).
pub(crate) fn exp_weights(isa: Isa, scores: &mut [f32]) -> f32 {
    // SAFETY: the CPU has the path (asserted against `detect` by the caller).
    #[cfg(target_arch = "x86_64")]
    match isa {
        Isa::Avx512 => return unsafe { x86::exp_weights_avx512(scores) },
        Isa::Avx2 => return unsafe { x86::exp_weights_avx2(scores) },
        Isa::Portable => {}
    }
    let _ = isa;
    let max = scores.iter().fold(f32::NEG_INFINITY, |a, s| a.max(*s));
    let mut total = 0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        total += *s;
    }
    total
}
