//! The activations a vector at a time, written once over the shared vector ops for
//! AVX2 and AVX-512; the last few values of a slice by the scalar formula.

use super::{Activation, ELU_FLOOR, ELU_POLY, ERF_A, ERF_P, QUICK_GELU_SLOPE};
use crate::ml::kernels::lanes::{Avx2, Avx512, Lanes};

/// dst = act(src) with AVX2, `len` values.
///
/// # Safety
/// The CPU has AVX2 and FMA; `src` is readable and `dst` writable for `len` values, the
/// same values or apart.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn apply_avx2(act: Activation, src: *const f32, dst: *mut f32, len: usize) {
    apply_with::<Avx2>(act, src, dst, len)
}

/// The same with AVX-512.
///
/// # Safety
/// The CPU has AVX-512 F; pointers as above.
#[target_feature(enable = "avx2,fma,avx512f")]
pub unsafe fn apply_avx512(act: Activation, src: *const f32, dst: *mut f32, len: usize) {
    apply_with::<Avx512>(act, src, dst, len)
}

#[inline(always)]
unsafe fn apply_with<L: Lanes>(act: Activation, s: *const f32, d: *mut f32, len: usize) {
    let whole = len - len % L::N;
    for i in (0..whole).step_by(L::N) {
        let x = L::load(s.add(i));
        let y = match act {
            Activation::GeluErf => gelu::<L>(x),
            Activation::QuickGelu => quick_gelu::<L>(x),
            Activation::Elu => elu::<L>(x),
        };
        L::store(d.add(i), y);
    }
    for i in whole..len {
        *d.add(i) = act.scalar(*s.add(i));
    }
}

/// 0.5 · x · (1 + erf(x / √2)), erf as the scalar `erf`.
#[inline(always)]
unsafe fn gelu<L: Lanes>(x: L::V) -> L::V {
    let one = L::splat(1.0);
    let z = L::abs(L::mul(x, L::splat(std::f32::consts::FRAC_1_SQRT_2)));
    let t = L::div(one, L::fma(L::splat(ERF_P), z, one));
    let mut poly = L::zero();
    for a in ERF_A.iter().rev() {
        poly = L::fma(poly, t, L::splat(*a));
    }
    poly = L::mul(poly, t);
    let gauss = L::exp(L::sub(L::zero(), L::mul(z, z)));
    let erf = L::copy_sign(L::fnma(poly, gauss, one), x);
    L::mul(L::mul(L::splat(0.5), x), L::add(one, erf))
}

/// x above zero, else e^x − 1, by an e^x of its own. Its argument t = min(x, 0) is
/// never positive and never below `ELU_FLOOR`, so it needs neither `exp`'s clamps nor its
/// mask; ln 2 is one constant (n times its rounding, 2e-9 · |n|, stays under 1e-9 once
/// scaled by 2ⁿ); and the polynomial is `ELU_POLY`, not degree-7 Taylor. That is 16
/// operations a vector where ELU through `exp` took 22, over ~140 M values a 15 s decode
/// (5 ms less of one on the AVX2 path). e^x − 1 ≥ x, so the max picks x exactly where
/// x > 0 (there t = 0 and e^t − 1 = 0).
#[inline(always)]
unsafe fn elu<L: Lanes>(x: L::V) -> L::V {
    let t = L::max(L::min(x, L::zero()), L::splat(ELU_FLOOR));
    let n = L::round(L::mul(t, L::splat(std::f32::consts::LOG2_E)));
    let r = L::fnma(n, L::splat(std::f32::consts::LN_2), t);
    let one = L::splat(1.0);
    let mut p = L::splat(ELU_POLY[4]);
    for c in ELU_POLY[..4].iter().rev() {
        p = L::fma(p, r, L::splat(*c));
    }
    let p = L::fma(p, r, one);
    L::max(x, L::sub(L::scale2(p, n), one))
}

/// x / (1 + e^(−1.702 x)).
#[inline(always)]
unsafe fn quick_gelu<L: Lanes>(x: L::V) -> L::V {
    let e = L::exp(L::mul(x, L::splat(-QUICK_GELU_SLOPE)));
    L::div(x, L::add(L::splat(1.0), e))
}
