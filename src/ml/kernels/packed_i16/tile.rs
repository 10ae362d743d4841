//! The 16-bit GEMM's micro-kernels: M quantized rows times one 16-column panel over the
//! whole depth. Each k-block is summed in i32 registers, then scaled (row scale × column
//! scale) into an f32 tile on the stack, which is added to y once at the end: y's rows lie
//! far apart (a transposed conv's 4096 columns), and touching them after every k-block
//! cost EnCodec's first upsampling 80 %. For AVX2 (`vpmaddwd` + `vpaddd`), AVX-512 VNNI
//! on 256-bit vectors (`vpdpwssd`, both in one) and portable code; all three make the same
//! integer sums.

use super::{KC, NR};
use crate::ml::kernels::isa::{self, Isa};
use crate::ml::kernels::tiled::RowTile;

pub(super) struct Tile<'a> {
    /// M rows of quantized x, `ldx` values apart.
    pub(super) x: &'a [i16],
    pub(super) ldx: usize,
    /// Row r's scale for k-block b at r · blocks + b.
    pub(super) row_scales: &'a [f32],
    /// The panel: `pairs` pairs of NR columns × 2 depths.
    pub(super) w: &'a [i16],
    /// Column c's scale for k-block b at b · NR + c.
    pub(super) col_scales: &'a [f32],
    pub(super) pairs: usize,
    pub(super) blocks: usize,
    pub(super) y: *mut f32,
    pub(super) ldy: usize,
    pub(super) cols: usize,
    pub(super) accumulate: bool,
}

/// The tile's f32 sums so far.
type Out<const M: usize> = [[f32; NR]; M];

impl RowTile for Tile<'_> {
    fn run<const M: usize>(&self, isa: Isa) {
        assert!(
            self.x.len() >= (M - 1) * self.ldx + 2 * self.pairs
                && self.w.len() >= self.pairs * NR * 2
                && self.row_scales.len() >= M * self.blocks
                && self.col_scales.len() >= self.blocks * NR
                && self.blocks == (2 * self.pairs).div_ceil(KC)
        );
        let mut out = [[0f32; NR]; M];
        for b in 0..self.blocks {
            let pairs = b * KC / 2..self.pairs.min((b + 1) * KC / 2);
            match isa {
                // SAFETY: the reads stay inside `x` and `w` (asserted above); the CPU has
                // the features (the path is never above `isa::detect()`, and VNNI is
                // asked of it).
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 if isa::has_vnni() => unsafe { self.block_vnni(pairs, b, &mut out) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 | Isa::Avx512 => unsafe { self.block_avx2(pairs, b, &mut out) },
                _ => self.block_portable(pairs, b, &mut out),
            }
        }
        self.write(&out);
    }
}

impl Tile<'_> {
    /// The tile added to (or written over) y's M × cols tile, which the caller owns.
    fn write<const M: usize>(&self, out: &Out<M>) {
        for (r, row) in out.iter().enumerate() {
            for (c, v) in row.iter().take(self.cols).enumerate() {
                // SAFETY: inside the M × cols tile of y the caller owns.
                unsafe {
                    let p = self.y.add(r * self.ldy + c);
                    *p = if self.accumulate { *p + v } else { *v };
                }
            }
        }
    }

    /// Row r's scale times column c's, for block b.
    fn scale(&self, r: usize, c: usize, b: usize) -> f32 {
        self.row_scales[r * self.blocks + b] * self.col_scales[b * NR + c]
    }

    fn block_portable<const M: usize>(
        &self,
        pairs: std::ops::Range<usize>,
        b: usize,
        out: &mut Out<M>,
    ) {
        let mut sums = [[0i32; NR]; M];
        for i in pairs {
            let w = &self.w[i * NR * 2..(i + 1) * NR * 2];
            for (r, s) in sums.iter_mut().enumerate() {
                let x = &self.x[r * self.ldx + 2 * i..][..2];
                for (s, w) in s.iter_mut().zip(w.chunks_exact(2)) {
                    *s += x[0] as i32 * w[0] as i32 + x[1] as i32 * w[1] as i32;
                }
            }
        }
        for (r, (o, s)) in out.iter_mut().zip(&sums).enumerate() {
            for (c, (o, s)) in o.iter_mut().zip(s).enumerate() {
                *o += *s as f32 * self.scale(r, c, b);
            }
        }
    }

    /// One pair of x's row r at pair index i, as the 32-bit value a broadcast takes.
    ///
    /// # Safety
    /// r < M and i < pairs (`run`'s assertion covers the read).
    #[cfg(target_arch = "x86_64")]
    unsafe fn pair(&self, r: usize, i: usize) -> i32 {
        (self.x.as_ptr().add(r * self.ldx + 2 * i) as *const i32).read_unaligned()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_avx2<const M: usize>(
        &self,
        pairs: std::ops::Range<usize>,
        b: usize,
        out: &mut Out<M>,
    ) {
        use std::arch::x86_64::*;
        self.block_x86(pairs, b, out, |acc, x, w| {
            _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
        });
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
    unsafe fn block_vnni<const M: usize>(
        &self,
        pairs: std::ops::Range<usize>,
        b: usize,
        out: &mut Out<M>,
    ) {
        use std::arch::x86_64::*;
        self.block_x86(pairs, b, out, |acc, x, w| _mm256_dpwssd_epi32(acc, x, w));
    }

    /// Block b's sums with `dot` (acc + the pair products of x and w, per 32-bit lane),
    /// then scaled into the tile. Inlined into `block_avx2` and `block_vnni`, whose
    /// features it (and `dot`, a closure of theirs) is compiled with.
    ///
    /// # Safety
    /// The CPU has AVX2 and whatever `dot` uses; `pairs` lie inside the tile's.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn block_x86<const M: usize>(
        &self,
        pairs: std::ops::Range<usize>,
        b: usize,
        out: &mut Out<M>,
        dot: impl Fn(
            std::arch::x86_64::__m256i,
            std::arch::x86_64::__m256i,
            std::arch::x86_64::__m256i,
        ) -> std::arch::x86_64::__m256i,
    ) {
        use std::arch::x86_64::*;
        let mut acc = [[_mm256_setzero_si256(); 2]; M];
        let w = self.w.as_ptr() as *const __m256i;
        for i in pairs {
            let (w0, w1) = (
                _mm256_loadu_si256(w.add(2 * i)),
                _mm256_loadu_si256(w.add(2 * i + 1)),
            );
            for (r, a) in acc.iter_mut().enumerate() {
                let x = _mm256_set1_epi32(self.pair(r, i));
                a[0] = dot(a[0], x, w0);
                a[1] = dot(a[1], x, w1);
            }
        }
        self.scale_avx2(&acc, b, out);
    }

    /// Block b's integer sums, scaled, added to the f32 tile.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn scale_avx2<const M: usize>(
        &self,
        acc: &[[std::arch::x86_64::__m256i; 2]; M],
        b: usize,
        out: &mut Out<M>,
    ) {
        use std::arch::x86_64::*;
        let cs = self.col_scales.as_ptr().add(b * NR);
        let cs = [_mm256_loadu_ps(cs), _mm256_loadu_ps(cs.add(8))];
        for (r, (a, o)) in acc.iter().zip(out.iter_mut()).enumerate() {
            let rs = _mm256_set1_ps(self.row_scales[r * self.blocks + b]);
            for (v, (a, cs)) in a.iter().zip(cs).enumerate() {
                let o = o.as_mut_ptr().add(8 * v);
                let sum = _mm256_cvtepi32_ps(*a);
                _mm256_storeu_ps(
                    o,
                    _mm256_fmadd_ps(sum, _mm256_mul_ps(rs, cs), _mm256_loadu_ps(o)),
                );
            }
        }
    }
}
