//! The MLP activations on the CPU: exact GELU (transformers' "gelu": the vision and text
//! transformers, MusicGen's decoder) and CLIP's quick GELU. candle applies them element
//! by element through a scalar f64 erf: 7 ms for one BLIP-base layer's 577 × 3072
//! values, a tenth of the layer, and ~1 ms of every MusicGen step (24 layers of 2 × 4096
//! values). Here they run a vector at a time on AVX2 and AVX-512 (`x86.rs`: e^x from the
//! shared vector ops, erf by the same formula as the scalar path), over all threads for
//! large inputs. Elsewhere (GPU, other dtypes), candle's ops.

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
/// The slope of CLIP's quick GELU, x · sigmoid(1.702 x).
const QUICK_GELU_SLOPE: f32 = 1.702;

/// An element-wise activation these kernels compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, x · Φ(x), as transformers' "gelu".
    GeluErf,
    /// x · sigmoid(1.702 x): the GELU approximation OpenAI's CLIP was trained with.
    QuickGelu,
}

impl Activation {
    /// One value, on any CPU (and the vector paths' tails).
    fn scalar(self, v: f32) -> f32 {
        match self {
            Activation::GeluErf => 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2)),
            Activation::QuickGelu => v / (1.0 + (-QUICK_GELU_SLOPE * v).exp()),
        }
    }

    /// candle's own op for the same function (GPU, dtypes other than f32).
    fn by_candle(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::GeluErf => x.gelu_erf(),
            Activation::QuickGelu => x * candle_nn::ops::sigmoid(&(x * QUICK_GELU_SLOPE as f64)?)?,
        }
    }

    /// dst = f(src) on a kernel path (tests run every path the CPU has).
    pub fn apply_on(self, isa: Isa, src: &[f32], dst: &mut [f32]) {
        assert!(isa <= isa::detect(), "{isa} asked for on a CPU without it");
        assert_eq!(src.len(), dst.len(), "activation of unequal lengths");
        // SAFETY: the CPU has the path (asserted above); the lengths are equal.
        #[cfg(target_arch = "x86_64")]
        match isa {
            Isa::Avx512 => return unsafe { x86::apply_avx512(self, src, dst) },
            Isa::Avx2 => return unsafe { x86::apply_avx2(self, src, dst) },
            Isa::Portable => {}
        }
        for (d, s) in dst.iter_mut().zip(src) {
            *d = self.scalar(*s);
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
            for act in [Activation::GeluErf, Activation::QuickGelu] {
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
