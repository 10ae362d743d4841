//! The packed GEMM's micro-kernels: M rows of x times a k-block of one 64-column panel,
//! in registers, for AVX-512, AVX2 and portable code.

use super::{NR, SLICE};
use crate::ml::kernels::isa::Isa;
use crate::ml::kernels::tiled::RowTile;

/// One micro-kernel call: M rows of x (from `x`, stride `ldx`) times a k-block of one
/// panel (`kc` rows of each `SLICE` of columns, slice after slice), written to `cols`
/// columns of y, or added to them when `accumulate`.
pub(super) struct Tile<'a> {
    pub(super) x: &'a [f32],
    pub(super) ldx: usize,
    pub(super) w: &'a [f32],
    pub(super) kc: usize,
    pub(super) y: *mut f32,
    pub(super) ldy: usize,
    pub(super) cols: usize,
    pub(super) accumulate: bool,
}

impl RowTile for Tile<'_> {
    fn run<const M: usize>(&self, isa: Isa) {
        assert!(self.x.len() >= (M - 1) * self.ldx + self.kc && self.w.len() >= self.kc * NR);
        match isa {
            // SAFETY: the reads stay inside `x` and `w` (asserted above); the writes stay
            // in the M × cols tile of y the caller owns; the CPU has the features (the
            // path is never above `isa::detect()`).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { self.run_avx512::<M>() },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { self.run_avx2::<M>() },
            _ => self.run_portable::<M>(),
        }
    }
}

impl Tile<'_> {
    /// M rows × the panel's first V vectors of 16 columns (those holding real columns:
    /// a narrow product multiplies no zero vectors), in V·M accumulators.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512<const M: usize>(&self) {
        match self.cols.div_ceil(SLICE) {
            1 => self.run_avx512_vectors::<M, 1>(),
            2 => self.run_avx512_vectors::<M, 2>(),
            3 => self.run_avx512_vectors::<M, 3>(),
            _ => self.run_avx512_vectors::<M, 4>(),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512_vectors<const M: usize, const V: usize>(&self) {
        use std::arch::x86_64::*;
        let mut acc = [[_mm512_setzero_ps(); V]; M];
        let (x, w) = (self.x.as_ptr(), self.w.as_ptr());
        let slice = self.kc * SLICE;
        for kk in 0..self.kc {
            let wp = w.add(kk * SLICE);
            let mut wv = [_mm512_setzero_ps(); V];
            for (v, wv) in wv.iter_mut().enumerate() {
                *wv = _mm512_loadu_ps(wp.add(v * slice));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(*x.add(r * self.ldx + kk));
                for (a, wv) in row.iter_mut().zip(wv) {
                    *a = _mm512_fmadd_ps(b, wv, *a);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, a) in row.iter().enumerate() {
                let lanes = self.cols.saturating_sub(v * 16).min(16);
                if lanes == 0 {
                    break;
                }
                let mask: __mmask16 = if lanes == 16 { !0 } else { (1u16 << lanes) - 1 };
                let p = self.y.add(r * self.ldy + v * 16);
                let sum = if self.accumulate {
                    _mm512_add_ps(*a, _mm512_maskz_loadu_ps(mask, p))
                } else {
                    *a
                };
                _mm512_mask_storeu_ps(p, mask, sum);
            }
        }
    }

    /// AVX2 has 16 vector registers, not 32: the panel goes in four slices of 16 columns,
    /// each an M × 16 tile in 2·M accumulators (6 × 2 + 2 weights + 1 broadcast = 15).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2<const M: usize>(&self) {
        use std::arch::x86_64::*;
        let (x, w) = (self.x.as_ptr(), self.w.as_ptr());
        for slice in 0..NR / SLICE {
            let c0 = slice * SLICE;
            if c0 >= self.cols {
                break;
            }
            let mut acc = [[_mm256_setzero_ps(); 2]; M];
            let ws = w.add(slice * self.kc * SLICE);
            for kk in 0..self.kc {
                let wp = ws.add(kk * SLICE);
                let (w0, w1) = (_mm256_loadu_ps(wp), _mm256_loadu_ps(wp.add(8)));
                for (r, row) in acc.iter_mut().enumerate() {
                    let b = _mm256_broadcast_ss(&*x.add(r * self.ldx + kk));
                    row[0] = _mm256_fmadd_ps(b, w0, row[0]);
                    row[1] = _mm256_fmadd_ps(b, w1, row[1]);
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (v, a) in row.iter().enumerate() {
                    let c = c0 + v * 8;
                    let lanes = self.cols.saturating_sub(c).min(8);
                    if lanes == 0 {
                        break;
                    }
                    let p = self.y.add(r * self.ldy + c);
                    if lanes == 8 {
                        // Whole vectors (nearly every tile): the sum with what y holds
                        // in one add; a scalar loop here cost a fifth of short-k
                        // products (EnCodec's convolutions always accumulate).
                        let sum = if self.accumulate {
                            _mm256_add_ps(*a, _mm256_loadu_ps(p))
                        } else {
                            *a
                        };
                        _mm256_storeu_ps(p, sum);
                        continue;
                    }
                    let mut sum = [0f32; 8];
                    _mm256_storeu_ps(sum.as_mut_ptr(), *a);
                    for (i, s) in sum.iter().take(lanes).enumerate() {
                        *p.add(i) = if self.accumulate { *p.add(i) + s } else { *s };
                    }
                }
            }
        }
    }

    /// Portable version: the same tile in plain arrays, which the compiler vectorises
    /// for whatever the target has.
    fn run_portable<const M: usize>(&self) {
        let mut acc = [[0f32; NR]; M];
        for kk in 0..self.kc {
            for (s, ws) in self.w.chunks_exact(self.kc * SLICE).enumerate() {
                let wv = &ws[kk * SLICE..(kk + 1) * SLICE];
                for (r, row) in acc.iter_mut().enumerate() {
                    let b = self.x[r * self.ldx + kk];
                    for (a, w) in row[s * SLICE..(s + 1) * SLICE].iter_mut().zip(wv) {
                        *a += b * w;
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (c, a) in row.iter().take(self.cols).enumerate() {
                // SAFETY: inside the M × cols tile of y the caller owns.
                unsafe {
                    let p = self.y.add(r * self.ldy + c);
                    *p = if self.accumulate { *p + a } else { *a };
                }
            }
        }
    }
}
