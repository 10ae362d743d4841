//! The vector operations the element-wise kernels need (a decoding step's attention, the
//! activations), for AVX2 (8 f32 lanes) and AVX-512 (16), so each kernel is written once
//! for both widths.

use std::arch::x86_64::*;

use half::f16;

/// Below this, e^x is under f32's smallest normal value: `exp` returns 0 there (what a
/// masked score, −1e9 or −∞, must weigh).
const EXP_MIN: f32 = -87.0;
/// Above this, e^x overflows f32.
const EXP_MAX: f32 = 88.0;
/// ln 2 split in two so that n · LN2_HI is exact for |n| < 2⁹ (Cody and Waite's
/// reduction): x − n·ln 2 then keeps f32's precision.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1/k! for k = 7 down to 2: e^r = 1 + r + r²/2! + … + r⁷/7! is within 1e-8 (relative)
/// for |r| ≤ ln 2 / 2, below f32's rounding.
const EXP_TAYLOR: [f32; 6] = [
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    1.0 / 2.0,
];

/// A stored element the kernels widen to f32 as they read it (an attention cache's f16 or
/// 8-bit values, whose scales the caller applies; an LSTM's f16 or f32 weights).
pub trait Elem: Copy {
    /// `L::N` elements from `p`, as f32.
    ///
    /// # Safety
    /// `L`'s instructions are available and `L::N` elements are readable at `p`.
    unsafe fn widen<L: Lanes>(p: *const Self) -> L::V;
    fn to_f32(self) -> f32;
}

impl Elem for f32 {
    #[inline(always)]
    unsafe fn widen<L: Lanes>(p: *const f32) -> L::V {
        L::load(p)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Elem for f16 {
    #[inline(always)]
    unsafe fn widen<L: Lanes>(p: *const f16) -> L::V {
        L::load_f16(p)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

impl Elem for i8 {
    #[inline(always)]
    unsafe fn widen<L: Lanes>(p: *const i8) -> L::V {
        L::load_i8(p)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
}

pub(crate) trait Lanes {
    type V: Copy;
    /// f32 values per register.
    const N: usize;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    /// `N` f16 values widened to f32.
    unsafe fn load_f16(p: *const f16) -> Self::V;
    /// `N` i8 values widened to f32.
    unsafe fn load_i8(p: *const i8) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// A store past the caches, to `p` aligned to a whole vector. Weakly ordered: the
    /// writer fences (`_mm_sfence`) before another thread may read what it wrote.
    unsafe fn stream(p: *mut f32, v: Self::V);
    /// a · b + c
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// c − a · b
    unsafe fn fnma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// a / b, rounded as f32 division is.
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// |x|
    unsafe fn abs(x: Self::V) -> Self::V;
    /// |m| with the sign of `s`.
    unsafe fn copy_sign(m: Self::V, s: Self::V) -> Self::V;
    /// Each lane rounded to the nearest integer.
    unsafe fn round(x: Self::V) -> Self::V;
    /// p · 2ⁿ for whole n within [−126, 127].
    unsafe fn scale2(p: Self::V, n: Self::V) -> Self::V;
    /// `v` where `x` ≥ `floor`, else 0.
    unsafe fn zero_below(x: Self::V, floor: f32, v: Self::V) -> Self::V;

    /// e^x per lane, within 4 ulp (the test checks against f32's `exp`); 0 below
    /// `EXP_MIN`. x = n·ln 2 + r with |r| ≤ ln 2 / 2, so e^x = 2ⁿ · e^r, e^r by Taylor.
    #[inline(always)]
    unsafe fn exp(x: Self::V) -> Self::V {
        let clamped = Self::min(Self::max(x, Self::splat(EXP_MIN)), Self::splat(EXP_MAX));
        let n = Self::round(Self::mul(clamped, Self::splat(std::f32::consts::LOG2_E)));
        let r = Self::fnma(n, Self::splat(LN2_HI), clamped);
        let r = Self::fnma(n, Self::splat(LN2_LO), r);
        let mut p = Self::splat(EXP_TAYLOR[0]);
        for c in &EXP_TAYLOR[1..] {
            p = Self::fma(p, r, Self::splat(*c));
        }
        let one = Self::splat(1.0);
        p = Self::fma(p, r, one);
        p = Self::fma(p, r, one);
        Self::zero_below(x, EXP_MIN, Self::scale2(p, n))
    }
    /// The lanes as an array (for the horizontal max and sum, once per head).
    unsafe fn lanes(v: Self::V) -> [f32; 16];
}

pub(crate) struct Avx2;

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
    unsafe fn load_i8(p: *const i8) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: __m256) {
        _mm256_stream_ps(p, v)
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        _mm256_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        _mm256_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m256, b: __m256) -> __m256 {
        _mm256_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        _mm256_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fnma(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fnmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn div(a: __m256, b: __m256) -> __m256 {
        _mm256_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn abs(x: __m256) -> __m256 {
        _mm256_andnot_ps(_mm256_set1_ps(-0.0), x)
    }
    #[inline(always)]
    unsafe fn copy_sign(m: __m256, s: __m256) -> __m256 {
        let sign = _mm256_set1_ps(-0.0);
        _mm256_or_ps(_mm256_andnot_ps(sign, m), _mm256_and_ps(sign, s))
    }
    #[inline(always)]
    unsafe fn round(x: __m256) -> __m256 {
        _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x)
    }
    #[inline(always)]
    unsafe fn scale2(p: __m256, n: __m256) -> __m256 {
        // 2ⁿ built in the exponent field.
        let bias = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
        _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(bias)))
    }
    #[inline(always)]
    unsafe fn zero_below(x: __m256, floor: f32, v: __m256) -> __m256 {
        _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_set1_ps(floor)))
    }
    #[inline(always)]
    unsafe fn lanes(v: __m256) -> [f32; 16] {
        let mut out = [0f32; 16];
        _mm256_storeu_ps(out.as_mut_ptr(), v);
        out
    }
}

pub(crate) struct Avx512;

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
    unsafe fn load_i8(p: *const i8) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i)))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: __m512) {
        _mm512_stream_ps(p, v)
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        _mm512_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        _mm512_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        _mm512_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fnma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fnmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn div(a: __m512, b: __m512) -> __m512 {
        _mm512_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn abs(x: __m512) -> __m512 {
        _mm512_abs_ps(x)
    }
    #[inline(always)]
    unsafe fn copy_sign(m: __m512, s: __m512) -> __m512 {
        // Integer logic: AVX-512 F has no float and/or (that is DQ).
        let sign = _mm512_set1_epi32(i32::MIN);
        let (m, s) = (_mm512_castps_si512(m), _mm512_castps_si512(s));
        _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_andnot_si512(sign, m),
            _mm512_and_si512(sign, s),
        ))
    }
    #[inline(always)]
    unsafe fn round(x: __m512) -> __m512 {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x)
    }
    #[inline(always)]
    unsafe fn scale2(p: __m512, n: __m512) -> __m512 {
        _mm512_scalef_ps(p, n)
    }
    #[inline(always)]
    unsafe fn zero_below(x: __m512, floor: f32, v: __m512) -> __m512 {
        _mm512_maskz_mov_ps(
            _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_set1_ps(floor)),
            v,
        )
    }
    #[inline(always)]
    unsafe fn lanes(v: __m512) -> [f32; 16] {
        let mut out = [0f32; 16];
        _mm512_storeu_ps(out.as_mut_ptr(), v);
        out
    }
}
