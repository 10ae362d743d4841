//! The CPU building blocks of EnCodec decoding: a time-major signal, padding staged a
//! chunk at a time (with the ELU that always precedes a conv fused into the same copy),
//! how signals are cut into chunks, and a packed weight for strided matrix products.
//!
//! Why time-major (frames, channels): the k taps of a stride-1 conv at frame t read rows
//! t..t+k, which are contiguous in memory, so the whole conv is one GEMM over an
//! overlapping view of the input (K = k·channels) — no im2col copy, which for 15 s of
//! audio would be hundreds of MB per layer.

use std::ops::Range;

use crate::ml::kernels::activations::Activation;
use crate::ml::kernels::isa;
use crate::ml::kernels::packed_gemm::{PackedF32, MR};
use crate::ml::kernels::packed_i16::PackedI16;

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

/// ELU in place (one chunk's worth: callers parallelise over chunks), on the kernel path
/// this CPU runs.
pub fn elu_in_place(data: &mut [f32]) {
    Activation::Elu.apply_in_place_on(isa::active(), data);
}

/// A signal of `len` frames padded along time (`left`/`right` frames) as torch's `F.pad`
/// does. Reflection needs the input longer than the padding; shorter inputs are
/// zero-extended first and the extension cut off again afterwards, exactly as
/// transformers' EnCodec does.
#[derive(Debug, Clone, Copy)]
pub struct Padding {
    pub len: usize,
    pub left: usize,
    pub right: usize,
    pub mode: PadMode,
}

impl Padding {
    pub fn padded_len(&self) -> usize {
        self.left + self.len + self.right
    }

    /// The input frame at padded frame `i`; None is a zero frame.
    pub fn source(&self, i: usize) -> Option<usize> {
        let (len, left) = (self.len, self.left);
        let real = |j: usize| (j < len).then_some(j);
        match self.mode {
            PadMode::Zero => i.checked_sub(left).and_then(real),
            PadMode::Reflect => {
                let extra = (self.left.max(self.right) + 1).saturating_sub(len);
                let n = len + extra;
                if i < left {
                    real(left - i)
                } else if i < left + n {
                    real(i - left)
                } else {
                    real((2 * n + left).checked_sub(i + 2)?)
                }
            }
        }
    }

    /// Padded frames `frames` of `x` into `dst` (resized to fit), through the ELU when
    /// `elu` is set: the one copy a chunk of a convolution makes of its input.
    pub fn stage(&self, x: &Signal, frames: Range<usize>, elu: bool, dst: &mut Vec<f32>) {
        let c = x.channels;
        let isa = isa::active();
        // Every row is written below, so a reused buffer is not zeroed first.
        dst.resize(frames.len() * c, 0.0);
        dst.truncate(frames.len() * c);
        for (i, row) in frames.zip(dst.chunks_exact_mut(c.max(1))) {
            match self.source(i) {
                Some(src) if elu => Activation::Elu.apply_on(isa, x.row(src), row),
                Some(src) => row.copy_from_slice(x.row(src)),
                None => row.fill(0.0),
            }
        }
    }
}

/// The whole padded signal (tests compare the chunked layers against it).
#[cfg(test)]
pub fn pad(x: &Signal, left: usize, right: usize, mode: PadMode, elu: bool) -> Signal {
    let p = Padding {
        len: x.frames,
        left,
        right,
        mode,
    };
    let mut data = Vec::new();
    p.stage(x, 0..p.padded_len(), elu, &mut data);
    Signal::new(p.padded_len(), x.channels, data)
}

/// Floats a chunk of a convolution touches (its staged input, its output and any
/// buffer between): half a core's L2, so they stay there while the weights stream past,
/// instead of whole padded copies of the signal (up to 120 MB for 15 s of audio) going
/// through memory.
pub const CHUNK_FLOATS: usize = 1 << 17;

/// Fewest frames per chunk: every chunk reads all of its layer's weights, so a chunk must
/// be tall enough to pay for that.
pub const MIN_CHUNK_FRAMES: usize = 64;

/// Weight floats a chunk's frame pays for, at most: a layer whose weights outgrow the
/// core's L2 reads them from L3 or memory once per chunk, so its chunks grow with its
/// weights. Of musicgen's EnCodec this makes the first two upsamplings' chunks taller
/// (64 → 240 windows for the second's three 2.6 MB matrices; alone on one thread it went
/// from 66 to 95 GFLOP/s on the AVX2 path); the first's are cut to one per thread.
pub const WEIGHT_FLOATS_PER_FRAME: usize = 1 << 13;

/// A layer's output of more floats than this (16 MB) is stored past the caches: the next
/// layer reads it from memory anyway (a core's L2 is 1 MB, and the shared L3 holds the
/// weights too), and a store that misses the caches first reads the line it overwrites.
/// On the AVX2 path this halved the output transforms of EnCodec's two last
/// upsamplings (61 and 123 MB: 6.9 → 3.9 and 15.3 → 7.6 ms of thread time) and made the
/// decode ~5 ms faster.
pub const STREAMED_SIGNAL_FLOATS: usize = 1 << 22;

/// Frames per chunk for a layer of `len` frames whose chunk touches `floats_per_frame`
/// per frame and whose weights hold `weight_floats`; never so tall that a thread is left
/// without a chunk. A whole number of GEMM tiles (MR product rows of `frames_per_row`
/// frames each): each chunk but the last then fills every tile.
pub fn chunk_frames(
    floats_per_frame: usize,
    weight_floats: usize,
    len: usize,
    frames_per_row: usize,
) -> usize {
    (CHUNK_FLOATS / floats_per_frame.max(1))
        .max(MIN_CHUNK_FRAMES)
        .max(weight_floats / WEIGHT_FLOATS_PER_FRAME)
        .min(len.div_ceil(rayon::current_num_threads()))
        .next_multiple_of((MR * frames_per_row).max(1))
        .min(len)
        .max(1)
}

/// Every row of `out` (rows of `row.len()`) set to `row`: a chunk's output starts as
/// its bias.
pub fn fill_rows(out: &mut [f32], row: &[f32]) {
    for dst in out.chunks_exact_mut(row.len()) {
        dst.copy_from_slice(row);
    }
}

/// Chunk boundaries of `len` rows, `chunk` at a time: (0, chunk, 2·chunk, …, len).
pub fn chunk_bounds(len: usize, chunk: usize) -> Vec<usize> {
    let mut b: Vec<usize> = (0..len).step_by(chunk.max(1)).collect();
    b.push(len);
    b
}

/// `data` (rows of `width`) cut at the row boundaries `bounds` (ascending, first 0,
/// last the row count): one mutable slice per chunk, for parallel chunks.
pub fn split_rows<'a>(
    mut data: &'a mut [f32],
    width: usize,
    bounds: &[usize],
) -> Vec<&'a mut [f32]> {
    let mut parts = Vec::with_capacity(bounds.len().saturating_sub(1));
    for pair in bounds.windows(2) {
        let (head, tail) = data.split_at_mut((pair[1] - pair[0]) * width);
        parts.push(head);
        data = tail;
    }
    parts
}

/// How the decoder's products multiply: in f32 as trained, or in 16-bit integers
/// (`kernels::packed_i16`: 13 bits a value, ~1.5× the multiply-adds a cycle on AVX2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductPrecision {
    F32,
    Int16,
}

/// Smallest depth and width of a product that runs in 16 bits: EnCodec's last residual
/// block (64 channels: depths 64 and 32) took 52 ms in 16 bits against 45 in f32.
const INT16_MIN_DEPTH: usize = 128;
const INT16_MIN_COLUMNS: usize = 64;

/// The right-hand side of a product, a row-major (k, n) matrix, packed once at load: for
/// the packed f32 GEMM (`kernels::packed_gemm`: AVX-512 or AVX2 register tiles chosen at
/// run time; the `gemm` crate it replaced ran only its AVX2 kernel and repacked every
/// call) or quantized for the 16-bit one.
pub enum Weight {
    F32(PackedF32),
    Int16(PackedI16),
}

impl Weight {
    /// At `precision`, but in f32 where the product is too small for 16 bits to pay: each
    /// call quantizes its rows of x (a cost per k values, shared by n columns) and scales
    /// every sum into y (a cost per output, shared by k depths).
    pub fn with(rhs: &[f32], k: usize, n: usize, precision: ProductPrecision) -> Self {
        assert_eq!(rhs.len(), k * n, "weight is not (k, n)");
        match precision {
            ProductPrecision::Int16 if k >= INT16_MIN_DEPTH && n >= INT16_MIN_COLUMNS => {
                Self::Int16(PackedI16::pack_cols(rhs, n, k, n))
            }
            _ => Self::F32(PackedF32::pack_cols(rhs, n, k, n)),
        }
    }

    /// `dst[i] += lhs[i] · rhs` for i in 0..m, where row i of lhs is
    /// `lhs[i·lhs_stride ..][..k]` (rows may overlap: that is the conv trick) and row i
    /// of dst is `dst[i·dst_stride ..][..n]`, over all threads. Bounds are checked by the
    /// product.
    pub fn acc(
        &self,
        dst: &mut [f32],
        dst_stride: usize,
        lhs: &[f32],
        lhs_stride: usize,
        m: usize,
    ) {
        match self {
            Self::F32(w) => w.matmul_t_acc(lhs, lhs_stride, m, dst, dst_stride),
            Self::Int16(w) => w.matmul_t_par(lhs, lhs_stride, m, dst, dst_stride, true),
        }
    }

    /// `dst[i] = lhs[i] · rhs`, overwriting dst's rows (n wide, `dst_stride` apart), on
    /// this thread.
    pub fn set_here(
        &self,
        dst: &mut [f32],
        dst_stride: usize,
        lhs: &[f32],
        lhs_stride: usize,
        m: usize,
    ) {
        match self {
            Self::F32(w) => w.matmul_t_into(lhs, lhs_stride, m, dst, dst_stride),
            Self::Int16(w) => w.matmul_t_here(lhs, lhs_stride, m, dst, dst_stride, false),
        }
    }

    /// `acc` on this thread (callers run one time chunk per task).
    pub fn acc_here(
        &self,
        dst: &mut [f32],
        dst_stride: usize,
        lhs: &[f32],
        lhs_stride: usize,
        m: usize,
    ) {
        match self {
            Self::F32(w) => w.matmul_t_acc_into(lhs, lhs_stride, m, dst, dst_stride),
            Self::Int16(w) => w.matmul_t_here(lhs, lhs_stride, m, dst, dst_stride, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        Weight::with(&w, 2, 1, ProductPrecision::F32).acc(&mut y, 1, &x, 1, 3);
        assert_eq!(y, vec![12.5, 23.5, 34.5]);
    }
}
