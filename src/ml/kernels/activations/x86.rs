//! The activations a vector at a time, written once over the shared vector ops for
//! AVX2 and AVX-512; the last few values of a slice by the scalar formula.

use super::{Activation, ERF_A, ERF_P, QUICK_GELU_SLOPE};
use crate::ml::kernels::lanes::{Avx2, Avx512, Lanes};

/// dst = act(src) with AVX2.
///
/// # Safety
/// The CPU has AVX2 and FMA; `src` and `dst` are equally long.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn apply_avx2(act: Activation, src: &[f32], dst: &mut [f32]) {
    apply_with::<Avx2>(act, src, dst)
}

/// The same with AVX-512.
///
/// # Safety
/// The CPU has AVX-512 F; lengths as above.
#[target_feature(enable = "avx2,fma,avx512f")]
pub unsafe fn apply_avx512(act: Activation, src: &[f32], dst: &mut [f32]) {
    apply_with::<Avx512>(act, src, dst)
}

#[inline(always)]
unsafe fn apply_with<L: Lanes>(act: Activation, src: &[f32], dst: &mut [f32]) {
    let whole = src.len() - src.len() % L::N;
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    for i in (0..whole).step_by(L::N) {
        let x = L::load(s.add(i));
        let y = match act {
            Activation::GeluErf => gelu::<L>(x),
            Activation::QuickGelu => quick_gelu::<L>(x),
        };
        L::store(d.add(i), y);
    }
    for (d, s) in dst[whole..].iter_mut().zip(&src[whole..]) {
        *d = act.scalar(*s);
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

/// x / (1 + e^(−1.702 x)).
#[inline(always)]
unsafe fn quick_gelu<L: Lanes>(x: L::V) -> L::V {
    let e = L::exp(L::mul(x, L::splat(-QUICK_GELU_SLOPE)));
    L::div(x, L::add(L::splat(1.0), e))
}
