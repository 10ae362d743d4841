//! The activations on the CPU: exact GELU (transformers' "gelu": the vision and text
//! transformers, MusicGen's decoder), CLIP's quick GELU, and EnCodec's ELU. candle
//! applies GELU element by element through a scalar f64 erf: 7 ms for one BLIP-base
//! layer's 577 × 3072 values, a tenth of the layer, and ~1 ms of every MusicGen step (24
//! layers of 2 × 4096 values). Here they run a vector at a time on AVX2 and AVX-512
//! (`x86.rs`: e^x from the shared vector ops, with FMAs; erf by the same formula as the
//! scalar path), over all threads for large inputs. Elsewhere (GPU, other dtypes),
//! candle's ops.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::isa::{self, Isa};
use crate::ml::nn::linear::with_f32;

#[cfg(target_arch = "x86_64")]
mod x86;

/// Values per parallel task: below this a call stays on the calling thread.
const CHUNK: usize = 16 * 1024;

/// Abramowitz & Stegun 7.1.26: erf(x) = 1 − t·(a1 + t·(a2 + … + t·a5))·e^(−x²) with
/// t = 1 / (1 + p·x), for x ≥ 0, to within 1.5e-7 (below f32's resolution near 1).
const ERF_P: f32 = 0.327_591_1;
const ERF_A: [f32; 5] = [
    0.254_829_6,
    -0.284_496_74,
    1.421_413_7,
    -1.453_152_1,
    1.061_405_4,
];
/// e^r ≈ 1 + c₁r + … + c₅r⁵ for |r| ≤ ln 2 / 2, the coefficients c₁ … c₅: a degree-5
/// minimax fit of e^r's relative error (9e-8; 1.7e-7 evaluated in f32), where the shared
/// `exp` sums Taylor's series to degree 7. ELU needs e^x only for x ≤ 0 and then
/// subtracts 1, so its error is absolute, at most e^x times this: f32's rounding of the
/// result near −1.
const ELU_POLY: [f32; 5] = [
    0.999_999_7,
    0.499_991_5,
    0.166_676_36,
    0.041_897_93,
    0.008_290_31,
];
/// ELU's input is clamped here from below: e^−87 is still a normal f32, and e^x − 1 is
/// −1 in f32 from x = −17 down.
const ELU_FLOOR: f32 = -87.0;

/// The slope of CLIP's quick GELU, x · sigmoid(1.702 x).
const QUICK_GELU_SLOPE: f32 = 1.702;

/// An element-wise activation these kernels compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, x · Φ(x), as transformers' "gelu".
    GeluErf,
    /// x · sigmoid(1.702 x): the GELU approximation OpenAI's CLIP was trained with.
    QuickGelu,
    /// torch's ELU with alpha 1: x, or e^x − 1 below zero (EnCodec's decoder, before
    /// every conv: ~140 M values a 15 s decode).
    Elu,
}

impl Activation {
    /// One value, on any CPU (and the vector paths' tails).
    fn scalar(self, v: f32) -> f32 {
        match self {
            Activation::GeluErf => 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2)),
            Activation::QuickGelu => v / (1.0 + (-QUICK_GELU_SLOPE * v).exp()),
            Activation::Elu => elu(v),
        }
    }

    /// candle's own op for the same function (GPU, dtypes other than f32).
    fn by_candle(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::GeluErf => x.gelu_erf(),
            Activation::QuickGelu => x * candle_nn::ops::sigmoid(&(x * QUICK_GELU_SLOPE as f64)?)?,
            Activation::Elu => x.elu(1.0),
        }
    }

    /// dst = f(src) on a kernel path (tests run every path the CPU has).
    pub fn apply_on(self, isa: Isa, src: &[f32], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "activation of unequal lengths");
        // SAFETY: src and dst are distinct slices of the same length.
        unsafe { self.apply_raw(isa, src.as_ptr(), dst.as_mut_ptr(), src.len()) }
    }

    /// data = f(data) on a kernel path.
    pub fn apply_in_place_on(self, isa: Isa, data: &mut [f32]) {
        let p = data.as_mut_ptr();
        // SAFETY: each value is read before it is written, by the same lane.
        unsafe { self.apply_raw(isa, p, p, data.len()) }
    }

    /// # Safety
    /// `src` is readable and `dst` writable for `len` values; they are the same values or
    /// do not overlap.
    unsafe fn apply_raw(self, isa: Isa, src: *const f32, dst: *mut f32, len: usize) {
        assert!(isa <= isa::detect(), "{isa} asked for on a CPU without it");
        // SAFETY: the CPU has the path (asserted above); the caller vouches for the rest.
        #[cfg(target_arch = "x86_64")]
        match isa {
            Isa::Avx512 => return unsafe { x86::apply_avx512(self, src, dst, len) },
            Isa::Avx2 => return unsafe { x86::apply_avx2(self, src, dst, len) },
            Isa::Portable => {}
        }
        for i in 0..len {
            // SAFETY: i < len, as the caller vouches.
            unsafe { *dst.add(i) = self.scalar(*src.add(i)) };
        }
    }

    /// f(x) for a tensor: on the CPU in f32 by these kernels, elsewhere by candle.
    pub fn forward(self, x: &Tensor) -> candle_core::Result<Tensor> {
        if !x.device().is_cpu() || x.dtype() != DType::F32 {
            return self.by_candle(x);
        }
        let isa = isa::active();
        let y = with_f32(x, |v| {
            let mut y = vec![0f32; v.len()];
            if v.len() <= CHUNK {
                self.apply_on(isa, v, &mut y);
            } else {
                y.par_chunks_mut(CHUNK)
                    .zip(v.par_chunks(CHUNK))
                    .for_each(|(y, v)| self.apply_on(isa, v, y));
            }
            y
        })?;
        Tensor::from_vec(y, x.shape(), x.device())
    }
}

/// 1.5 · 2²³: adding it to a float of magnitude below 2²² rounds it to an integer, which
/// then sits in the low bits of the sum's mantissa. So n = round(x·log2 e) and 2ⁿ need no
/// `round()` and `as i32` (Rust's saturating float-to-int cast compiles to a lane at a
/// time), and a loop of `elu` vectorises on any CPU.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// torch's ELU with alpha 1, one value (the portable path and the vector paths' tails),
/// by the vector paths' formula (`x86::elu`).
#[inline(always)]
fn elu(v: f32) -> f32 {
    let t = v.clamp(ELU_FLOOR, 0.0);
    let shifted = t * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = t - n * std::f32::consts::LN_2;
    let p = ELU_POLY[..4]
        .iter()
        .rev()
        .fold(ELU_POLY[4], |p, c| p * r + c)
        * r
        + 1.0;
    // 2ⁿ: n (within −126..=0 after the clamp) + 127 in the exponent field.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
    let below = p * f32::from_bits(n_bits.wrapping_add(127) << 23) - 1.0;
    v.max(below)
}

/// Exact GELU, x · Φ(x), as transformers' "gelu".
pub fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    Activation::GeluErf.forward(x)
}

/// x · sigmoid(1.702 x): the GELU approximation OpenAI's CLIP was trained with.
pub fn quick_gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    Activation::QuickGelu.forward(x)
}

/// erf by `ERF_A`, odd in x.
fn erf(x: f32) -> f32 {
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + ERF_P * x);
    let poly = ERF_A.iter().rev().fold(0f32, |acc, a| acc * t + a) * t;
    s * (1.0 - poly * (-x * x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn match_candles_own_ops() -> candle_core::Result<()> {
        let x = Tensor::arange(-4000i64, 4000, &Device::Cpu)?.to_dtype(DType::F32)?;
        let x = (x / 500.0)?;
        let diff = |a: Tensor, b: Tensor| -> candle_core::Result<f32> {
            (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
        };
        assert!(diff(gelu_erf(&x)?, x.gelu_erf()?)? < 1e-6);
        let quick = (&x * candle_nn::ops::sigmoid(&(&x * 1.702)?)?)?;
        assert!(diff(quick_gelu(&x)?, quick)? < 1e-6);
        Ok(())
    }

    #[test]
    fn elu_is_within_f32_rounding_of_the_definition() {
        // Every path against e^x − 1 in f64, from where it is −1 in f32 to above zero.
        let src: Vec<f32> = (0..20_000).map(|i| -100.0 + i as f32 * 0.0061).collect();
        for isa in Isa::available() {
            let mut got = vec![f32::NAN; src.len()];
            Activation::Elu.apply_on(isa, &src, &mut got);
            for (x, g) in src.iter().zip(&got) {
                let want = if *x > 0.0 {
                    *x as f64
                } else {
                    (*x as f64).exp_m1()
                };
                let err = (*g as f64 - want).abs();
                assert!(
                    err < 2e-7 * want.abs().max(1.0),
                    "{isa}: elu({x}) = {g}, not {want}"
                );
            }
        }
        assert_eq!(elu(-200.0), -1.0);
        assert_eq!(elu(2.5), 2.5);
        assert_eq!(elu(0.0), 0.0);
    }

    #[test]
    fn elu_in_place_matches_elu_into_a_copy() {
        let src: Vec<f32> = (0..37).map(|i| (i as f32 - 20.0) * 0.31).collect();
        for isa in Isa::available() {
            let mut copy = vec![0f32; src.len()];
            Activation::Elu.apply_on(isa, &src, &mut copy);
            let mut data = src.clone();
            Activation::Elu.apply_in_place_on(isa, &mut data);
            assert_eq!(data, copy, "{isa}");
        }
    }

    #[test]
    fn every_path_agrees_with_the_scalar_formula_at_every_edge() {
        // Lengths around both vector widths; values across erf's range and past e^x's
        // (|x| > 13 makes e^(−x²/2) underflow), signed zeros, and large magnitudes.
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 33, 100] {
            let src: Vec<f32> = (0..len)
                .map(|i| match i % 7 {
                    3 => -0.0,
                    5 => 40.0 * (i as f32 - 50.0),
                    _ => (i as f32 - 50.0) * 0.173,
                })
                .collect();
            for act in [Activation::GeluErf, Activation::QuickGelu, Activation::Elu] {
                let mut want = vec![0f32; len];
                act.apply_on(Isa::Portable, &src, &mut want);
                for isa in Isa::available() {
                    let mut got = vec![f32::NAN; len];
                    act.apply_on(isa, &src, &mut got);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        let tol = 1e-6 * w.abs().max(1.0);
                        assert!(
                            (g - w).abs() <= tol,
                            "{act:?} on {isa}, len {len} [{i}] = {}: {g} vs {w}",
                            src[i]
                        );
                    }
                }
            }
        }
    }
}
