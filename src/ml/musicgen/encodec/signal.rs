//! The CPU building blocks of EnCodec decoding: a time-major signal, padding (with the
//! ELU that always precedes a conv fused into the same copy), a vectorisable ELU, and a
//! packed weight for strided matrix products.
//!
//! Why time-major (frames, channels): the k taps of a stride-1 conv at frame t read rows
//! t..t+k, which are contiguous in memory, so the whole conv is one GEMM over an
//! overlapping view of the input (K = k·channels) — no im2col copy, which for 15 s of
//! audio would be hundreds of MB per layer.

use rayon::prelude::*;

use crate::ml::kernels::packed_gemm::PackedF32;

/// A (frames, channels) signal stored row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub frames: usize,
    pub channels: usize,
    pub data: Vec<f32>,
}

impl Signal {
    pub fn new(frames: usize, channels: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), frames * channels, "signal size");
        Self {
            frames,
            channels,
            data,
        }
    }

    /// Every frame set to `row` (a bias, before products are accumulated onto it).
    pub fn filled(frames: usize, row: &[f32]) -> Self {
        let mut data = Vec::with_capacity(frames * row.len());
        for _ in 0..frames {
            data.extend_from_slice(row);
        }
        Self::new(frames, row.len(), data)
    }

    pub fn row(&self, t: usize) -> &[f32] {
        &self.data[t * self.channels..(t + 1) * self.channels]
    }
}

/// How convolutions pad their input: EnCodec's `pad_mode` ("constant" pads with zeros).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    Reflect,
    #[serde(alias = "constant")]
    Zero,
}

/// Chunk size for parallel element-wise passes (big enough to amortise rayon).
pub const PAR_CHUNK: usize = 1 << 16;

/// `x.exp()` to ~1e-7 relative, written so LLVM vectorises it (std's `exp` is a libm call
/// per element, which made the ELUs a large share of decoding).
#[inline(always)]
fn exp_approx(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    // x − n·ln2 in two parts so the reduction stays exact.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// torch's ELU with alpha 1.
#[inline(always)]
fn elu1(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        exp_approx(v) - 1.0
    }
}

/// The logistic function, through the vectorisable exp.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_approx(-x))
}

/// tanh(x) = 2·σ(2x) − 1 (absolute error ~1e-7, which is what matters here).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    2.0 * sigmoid(2.0 * x) - 1.0
}

/// ELU in place over a whole buffer, in parallel.
pub fn elu_in_place(data: &mut [f32]) {
    data.par_chunks_mut(PAR_CHUNK).for_each(|chunk| {
        for v in chunk {
            *v = elu1(*v);
        }
    });
}

/// Pad along time (`left`/`right` frames) as torch's `F.pad` does, applying the ELU on
/// the way when `elu` is set. Reflection needs the input longer than the padding;
/// shorter inputs are zero-extended first and the extension cut off again afterwards,
/// exactly as transformers' EnCodec does.
pub fn pad(x: &Signal, left: usize, right: usize, mode: PadMode, elu: bool) -> Signal {
    let len = x.frames;
    // Source frame of every output frame; None is a zero frame.
    let sources: Vec<Option<usize>> = match mode {
        PadMode::Zero => std::iter::repeat_n(None, left)
            .chain((0..len).map(Some))
            .chain(std::iter::repeat_n(None, right))
            .collect(),
        PadMode::Reflect => {
            let max_pad = left.max(right);
            let extra = if len <= max_pad { max_pad - len + 1 } else { 0 };
            let n = len + extra;
            let real = |i: usize| (i < len).then_some(i);
            let mut s: Vec<Option<usize>> = (0..left)
                .map(|i| real(left - i))
                .chain((0..n).map(real))
                .chain((0..right).map(|i| real(n - 2 - i)))
                .collect();
            s.truncate(s.len() - extra);
            s
        }
    };
    let c = x.channels;
    let mut data = vec![0f32; sources.len() * c];
    data.par_chunks_mut(c * (PAR_CHUNK / c.max(1)).max(1))
        .enumerate()
        .for_each(|(block, out)| {
            let first = block * (PAR_CHUNK / c.max(1)).max(1);
            for (i, row) in out.chunks_exact_mut(c).enumerate() {
                if let Some(src) = sources[first + i] {
                    let src = x.row(src);
                    if elu {
                        for (o, v) in row.iter_mut().zip(src) {
                            *o = elu1(*v);
                        }
                    } else {
                        row.copy_from_slice(src);
                    }
                }
            }
        });
    Signal::new(sources.len(), c, data)
}

/// The right-hand side of a product, a row-major (k, n) matrix, packed once at load for
/// the packed GEMM (`kernels::packed_gemm`: AVX-512 or AVX2 register tiles chosen at run
/// time; the `gemm` crate it replaced ran only its AVX2 kernel and repacked every call).
pub struct Weight(PackedF32);

impl Weight {
    pub fn new(rhs: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(rhs.len(), k * n, "weight is not (k, n)");
        Self(PackedF32::pack_cols(rhs, n, k, n))
    }

    /// `dst[i] += lhs[i] · rhs` for i in 0..m, where row i of lhs is
    /// `lhs[i·lhs_stride ..][..k]` (rows may overlap: that is the conv trick) and row i
    /// of dst is `dst[i·dst_stride ..][..n]`. Bounds are checked by the product.
    pub fn acc(
        &self,
        dst: &mut [f32],
        dst_stride: usize,
        lhs: &[f32],
        lhs_stride: usize,
        m: usize,
    ) {
        self.0.matmul_t_acc(lhs, lhs_stride, m, dst, dst_stride);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_approx_matches_std() {
        let mut worst = 0f32;
        let mut x = -30.0f32;
        while x < 10.0 {
            let rel = (exp_approx(x) - x.exp()).abs() / x.exp();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(elu1(-200.0), -1.0);
        assert_eq!(elu1(2.5), 2.5);
        for x in [-20.0f32, -3.0, -0.5, -1e-3, 0.0, 1e-3, 0.7, 4.0, 20.0] {
            assert!((tanh(x) - x.tanh()).abs() < 3e-7, "tanh({x})");
            assert!(
                (sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 3e-7,
                "sigmoid({x})"
            );
        }
    }

    #[test]
    fn reflect_pad_matches_torch() {
        // torch: F.pad(tensor([[0,1,2,3]]), (2, 3), mode="reflect") = [2,1,0,1,2,3,2,1,0]
        let x = Signal::new(4, 1, vec![0.0, 1.0, 2.0, 3.0]);
        let p = pad(&x, 2, 3, PadMode::Reflect, false);
        assert_eq!(p.data, vec![2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0, 0.0]);
        // Shorter than the padding: transformers zero-extends to 4 ([5,6,0,0]), reflects
        // by 3 on both sides, then drops the 2 extension frames from the end.
        let x = Signal::new(2, 1, vec![5.0, 6.0]);
        let p = pad(&x, 3, 3, PadMode::Reflect, false);
        assert_eq!(p.data, vec![0.0, 0.0, 6.0, 5.0, 6.0, 0.0, 0.0, 0.0]);
        let z = pad(&x, 1, 2, PadMode::Zero, true);
        assert_eq!(z.frames, 5);
        assert_eq!(z.data[1], 5.0);
        assert_eq!(z.data[4], 0.0);
    }

    #[test]
    fn gemm_over_overlapping_rows() {
        // A 2-tap "conv" over 1-channel frames [1,2,3,4] with taps (10, 1): rows overlap.
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let w = [10.0f32, 1.0];
        let mut y = vec![0.5f32; 3];
        Weight::new(&w, 2, 1).acc(&mut y, 1, &x, 1, 3);
        assert_eq!(y, vec![12.5, 23.5, 34.5]);
    }
}
