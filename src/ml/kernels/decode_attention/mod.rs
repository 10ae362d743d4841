//! Attention for one new token per sequence (a decoding step) on the CPU: for each batch
//! row and head, softmax(q·kᵀ · scale + mask) · v over the cached keys and values, read
//! in place from the cache's buffers whatever their strides, in f32, f16 or 8 bits with
//! a scale per position (`cpu_cache`, the decoder's cache on the CPU: a smaller cache is
//! less to read late in a song, when the cache outweighs 8-bit weights). Keys come
//! transposed, (B, H, Dh, T): a block of positions' scores is then a sum over Dh of a·x,
//! vectors along T held in registers, instead of T short dot products with a horizontal
//! sum each (those made attention the largest cost late in a 30 s song). An f16 or 8-bit
//! cache (and an f32 one) on AVX2 or AVX-512 is read by vector kernels that widen it in
//! registers (`x86.rs`); the portable path widens each head into an f32 scratch block
//! first.
//!
//! Why not candle's ops: for one query row its matmul costs more in set-up than in
//! arithmetic — it packs both operands, and reads /proc/cpuinfo to count cores on every
//! call — and a decoding step makes 48 of them per head pair. Here all heads run in one
//! parallel loop and nothing is copied.

use candle_core::{CpuStorage, Device, Storage, Tensor};
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use super::isa::{self, Isa};

mod cpu_cache;
mod head;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use cpu_cache::{CpuKvCache, KvElement};

pub(crate) use head::exp_weights;
use head::Path;

/// Multiply-adds (per q·k or p·v pass) below which a task is not split further.
const MIN_TASK_WORK: usize = 1 << 15;

/// A cache buffer's values.
enum Values<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    /// Integers of an 8-bit cache, read with their `Scales`.
    I8(&'a [i8]),
}

/// The per-position scales of an 8-bit cache: head (b, h)'s start at `b·sb + h·sh`, one
/// per position.
struct Scales<'a> {
    data: &'a [f32],
    sb: usize,
    sh: usize,
}

/// (B, H, T, Dh) values on the CPU, read in place: the head at (b, h) starts at
/// `offset + b·sb + h·sh`, its rows `st` apart; or keys (B, H, Dh, T), rows along T,
/// and those maybe in `tiles`.
struct Heads<'a> {
    data: Values<'a>,
    offset: usize,
    sb: usize,
    sh: usize,
    st: usize,
    /// For keys kept in tiles of positions; None when each row lies whole.
    tiles: Option<Tiles>,
    /// Each position's scale, for 8-bit values; None for floats.
    scales: Option<Scales<'a>>,
}

/// Keys (Dh rows along T) kept in tiles of `positions`: a tile holds those positions of
/// every row (rows `st` apart within it), tiles `stride` apart. The key pass then reads
/// a head as one stream through memory, not as Dh streams at once.
#[derive(Debug, Clone, Copy)]
struct Tiles {
    positions: usize,
    stride: usize,
}

impl Heads<'_> {
    /// The first `n` rows of `len` values of head (b, h) as one packed f32 block: borrowed
    /// when they lie so in f32, else gathered (and widened from f16 or 8 bits, scales not
    /// applied) into `scratch`.
    fn rows<'s>(
        &'s self,
        b: usize,
        h: usize,
        n: usize,
        len: usize,
        scratch: &'s mut Vec<f32>,
    ) -> &'s [f32] {
        let start = self.start(b, h);
        let packed = self.st == len && self.tiles.is_none();
        if let (Values::F32(v), true) = (&self.data, packed) {
            return &v[start..start + n * len];
        }
        scratch.resize(n * len, 0.0);
        match &self.data {
            // The whole head at once: one conversion call, not one per row.
            Values::F16(v) if packed => v[start..start + n * len].convert_to_f32_slice(scratch),
            data => {
                for (j, row) in scratch.chunks_exact_mut(len).enumerate() {
                    // A row whole, or a tile's part of it at a time.
                    let mut c = 0;
                    while c < len {
                        let (at, run) = match self.tiles {
                            Some(t) => {
                                let (tile, within) = (c / t.positions, c % t.positions);
                                let at = start + tile * t.stride + j * self.st + within;
                                (at, (t.positions - within).min(len - c))
                            }
                            None => (start + j * self.st + c, len - c),
                        };
                        let dst = &mut row[c..c + run];
                        match data {
                            Values::F32(v) => dst.copy_from_slice(&v[at..at + run]),
                            Values::F16(v) => v[at..at + run].convert_to_f32_slice(dst),
                            Values::I8(v) => {
                                for (d, q) in dst.iter_mut().zip(&v[at..at + run]) {
                                    *d = *q as f32;
                                }
                            }
                        }
                        c += run;
                    }
                }
            }
        }
        scratch
    }

    /// Where head (b, h) starts in the buffer.
    fn start(&self, b: usize, h: usize) -> usize {
        self.offset + b * self.sb + h * self.sh
    }

    /// Head (b, h)'s scales from its first position, for an 8-bit cache.
    fn head_scales(&self, b: usize, h: usize) -> Option<&[f32]> {
        self.scales
            .as_ref()
            .and_then(|s| s.data.get(b * s.sb + h * s.sh..))
    }
}

/// Run `f` on `x`'s values as `Heads`, or return None when `x` is not a (B, H, T, Dh) f32
/// or f16 CPU tensor with unit stride along Dh.
fn with_heads<R>(x: &Tensor, f: impl FnOnce(Heads) -> R) -> Option<R> {
    let (storage, layout) = x.storage_and_layout();
    let data = match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Values::F32(v),
        Storage::Cpu(CpuStorage::F16(v)) => Values::F16(v),
        _ => return None,
    };
    match layout.stride() {
        [sb, sh, st, 1] if x.rank() == 4 => Some(f(Heads {
            data,
            offset: layout.start_offset(),
            sb: *sb,
            sh: *sh,
            st: *st,
            tiles: None,
            scales: None,
        })),
        _ => None,
    }
}

/// Keys (B, H, Dh, T) again, in a buffer whose rows run on, zeros, to the end of a cache
/// line of positions: the vector key pass reads each row to the end of its last line
/// and takes a head only where that is inside the buffer (the last head of a tensor
/// that ends at T would take the portable path). For keys made once and read often: a
/// song's text.
pub fn padded_keys(kt: &Tensor) -> candle_core::Result<Tensor> {
    let (b, heads, dh, t) = kt.dims4()?;
    let line = cpu_cache::KEY_TILE_BYTES / kt.dtype().size_in_bytes();
    let pad = t.next_multiple_of(line.max(1)) - t;
    if pad == 0 || !kt.device().is_cpu() {
        return Ok(kt.clone());
    }
    let zeros = Tensor::zeros((b, heads, dh, pad), kt.dtype(), kt.device())?;
    Tensor::cat(&[kt, &zeros], 3)?.narrow(3, 0, t)
}

/// Context (B, 1, H·Dh) for queries `q` (B, 1, H·Dh) over keys `kt` (B, H, Dh, T) and
/// values `v` (B, H, T, Dh), with an optional additive mask (B, 1, 1, T). None when the
/// tensors are not f32 (q) and f32 or f16 (kt, v) CPU ones of those shapes (the caller
/// then uses candle's ops).
pub fn attend_one(
    q: &Tensor,
    kt: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f32,
) -> candle_core::Result<Option<Tensor>> {
    attend_one_on(isa::active(), q, kt, v, mask, scale)
}

/// The same on a given kernel path (tests run every path the CPU has).
pub fn attend_one_on(
    isa: Isa,
    q: &Tensor,
    kt: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f32,
) -> candle_core::Result<Option<Tensor>> {
    assert!(isa <= isa::detect(), "{isa} asked for on a CPU without it");
    let (b, s, d) = q.dims3()?;
    let (kb, heads, dh, t) = kt.dims4()?;
    if s != 1 || !q.device().is_cpu() || kb != b || heads * dh != d || v.dims() != [b, heads, t, dh]
    {
        return Ok(None);
    }
    let mask: Option<Vec<f32>> = match mask {
        Some(m) if m.dims() == [b, 1, 1, t] => Some(m.flatten_all()?.to_vec1()?),
        Some(_) => return Ok(None),
        None => None,
    };
    let q = scaled_queries(q, scale)?;
    let ctx = with_heads(kt, |keys| {
        with_heads(v, |values| {
            attend_heads(isa, &q, mask.as_deref(), (b, heads, dh, t), &keys, &values)
        })
    });
    match ctx.flatten() {
        Some(ctx) => Ok(Some(Tensor::from_vec(ctx, (b, 1, d), &Device::Cpu)?)),
        None => Ok(None),
    }
}

/// The queries' values in f32, times `scale`: once per call, not per head inside the
/// parallel loop.
fn scaled_queries(q: &Tensor, scale: f32) -> candle_core::Result<Vec<f32>> {
    let mut q = as_f32(q)?;
    q.iter_mut().for_each(|x| *x *= scale);
    Ok(q)
}

/// A tensor's values as f32, in order.
fn as_f32(x: &Tensor) -> candle_core::Result<Vec<f32>> {
    x.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()
}

/// Context (B · H · Dh) for scaled queries `q` (B · H · Dh) over `t` positions of
/// `keys` (Dh rows of `t` per head) and `values` (`t` rows of Dh), with an optional
/// additive mask (B · T); 8-bit caches' scales applied per position.
fn attend_heads(
    isa: Isa,
    q: &[f32],
    mask: Option<&[f32]>,
    (b, heads, dh, t): (usize, usize, usize, usize),
    keys: &Heads,
    values: &Heads,
) -> Vec<f32> {
    let mut ctx = vec![0f32; b * heads * dh];
    ctx.par_chunks_mut(dh)
        .with_min_len(heads_per_task(b * heads, t, dh))
        .enumerate()
        .for_each(|(i, out)| {
            let (bi, h) = (i / heads, i % heads);
            let qh = &q[i * dh..(i + 1) * dh];
            let mask = mask.map(|m| &m[bi * t..(bi + 1) * t]);
            attend_head(isa, qh, mask, (keys, values), (bi, h, t), out);
        });
    ctx
}

/// Heads a task of the parallel loop over `count` heads of `t` positions takes.
fn heads_per_task(count: usize, t: usize, dh: usize) -> usize {
    // Early in a song a head is a few hundred multiply-adds: give each task enough heads
    // to be worth handing to another thread. But every thread gets some: a step's cache
    // and the text's keys and values come from memory, and one thread alone waits on
    // every miss (the text's, 12 positions, cost a 30 s song's step ~1 ms that way).
    let threads = rayon::current_num_threads().max(1);
    let most = count.div_ceil(threads).max(1);
    (MIN_TASK_WORK / (t * dh).max(1)).clamp(1, most)
}

/// Head (b, h)'s context `out` (Dh) over its first `t` positions, for its scaled query
/// `qh` and its row of the additive mask.
fn attend_head(
    isa: Isa,
    qh: &[f32],
    mask: Option<&[f32]>,
    (keys, values): (&Heads, &Heads),
    (b, h, t): (usize, usize, usize),
    out: &mut [f32],
) {
    let dh = out.len();
    let path = Path::choose(isa, keys, values, b, h, t, dh);
    let mut scratch = Vec::new();
    let mut scores = vec![0f32; t];
    path.scores(keys, b, h, qh, &mut scores, &mut scratch);
    if let Some(ks) = keys.head_scales(b, h) {
        scores.iter_mut().zip(ks).for_each(|(s, k)| *s *= k);
    }
    if let Some(m) = mask {
        scores.iter_mut().zip(m).for_each(|(s, m)| *s += m);
    }
    let total = exp_weights(isa, &mut scores);
    // An 8-bit value row is its integers times its scale: the scale joins the weight,
    // after the sum that normalises the weights.
    if let Some(vs) = values.head_scales(b, h) {
        scores.iter_mut().zip(vs).for_each(|(p, v)| *p *= v);
    }
    path.weigh(values, b, h, &scores, out, &mut scratch);
    let inv = 1.0 / total;
    out.iter_mut().for_each(|o| *o *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::kernels::host_matmul::tests::data;
    use candle_core::D;

    pub(super) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .expect("diff")
    }

    #[test]
    fn matches_candles_attention_on_a_strided_cache() {
        let (b, heads, t, dh, max) = (2, 3, 5, 20, 9);
        let dev = Device::Cpu;
        // Cache buffers longer than what is filled, narrowed as the decoder's cache does.
        let kbuf =
            Tensor::from_vec(data(b * heads * max * dh, 5), (b, heads, max, dh), &dev).expect("k");
        let vbuf =
            Tensor::from_vec(data(b * heads * max * dh, 6), (b, heads, max, dh), &dev).expect("v");
        let (k, v) = (
            kbuf.narrow(2, 0, t).expect("k"),
            vbuf.narrow(2, 0, t).expect("v"),
        );
        // Keys as the decoder caches them: transposed, (B, H, Dh, max), narrowed along T.
        let ktbuf = kbuf
            .transpose(2, 3)
            .and_then(|x| x.contiguous())
            .expect("kt");
        let kt = ktbuf.narrow(3, 0, t).expect("kt");
        let q = Tensor::from_vec(data(b * heads * dh, 7), (b, 1, heads * dh), &dev).expect("q");
        let mask_vals: Vec<f32> = (0..b * t)
            .map(|i| if i % t == 3 { -1e9 } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(mask_vals, (b, 1, 1, t), &dev).expect("mask");
        let scale = 0.125f32;
        let got = attend_one(&q, &kt, &v, Some(&mask), scale)
            .expect("runs")
            .expect("takes this layout");
        let qh = q
            .reshape((b, 1, heads, dh))
            .and_then(|x| x.transpose(1, 2))
            .expect("heads");
        let scores = (qh.matmul(&k.t().expect("t")).expect("qk") * scale as f64)
            .and_then(|s| s.broadcast_add(&mask))
            .expect("scores");
        let probs = candle_nn::ops::softmax(&scores, D::Minus1).expect("softmax");
        let want = probs
            .matmul(&v.contiguous().expect("v"))
            .and_then(|y| y.transpose(1, 2))
            .and_then(|y| y.reshape((b, 1, heads * dh)))
            .expect("ctx");
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-5, "max |Δ| {diff}");

        // The same cache held in f16: within f16's rounding of keys and values.
        let half = |x: &Tensor| x.to_dtype(candle_core::DType::F16).expect("f16");
        let (kt16, v16) = (
            half(&ktbuf).narrow(3, 0, t).expect("kt"),
            half(&vbuf).narrow(2, 0, t).expect("v"),
        );
        for isa in Isa::available() {
            let got16 = attend_one_on(isa, &q, &kt16, &v16, Some(&mask), scale)
                .expect("runs")
                .expect("takes f16");
            let diff16 = max_abs_diff(&got16, &want);
            assert!(diff16 < 2e-3, "{isa}: f16 max |Δ| {diff16}");
        }
    }

    #[test]
    fn every_path_agrees_on_f32_and_f16_caches_at_every_edge() {
        use candle_core::DType;
        let dev = Device::Cpu;
        // Lengths around the vector widths (8, 16) and the key pass's blocks (a line: 16
        // positions of f32, 32 of f16), tails of several vectors and of part of one;
        // head sizes with and without a partial register, past the registers held per
        // chunk, and not a multiple of the key pass's interleaved row sets (2 or 4).
        for (t, dh, heads) in [
            (1usize, 64, 2),
            (7, 8, 1),
            (8, 3, 1),
            (17, 20, 3),
            (40, 64, 2),
            (70, 6, 1),
            (96, 7, 2),
            (131, 80, 1),
        ] {
            // A buffer the vector key pass reads to the end of each line, and one it may
            // not (the last head's last row ends at `t`): that head falls back.
            for (dtype, max, vector) in [
                (DType::F32, t.next_multiple_of(16) + 3, true),
                (DType::F16, t.next_multiple_of(32) + 3, true),
                (DType::F16, t, false),
            ] {
                let b = 2;
                let cast = |x: Tensor| x.to_dtype(dtype).expect("cast");
                let kbuf = cast(
                    Tensor::from_vec(data(b * heads * dh * max, 8), (b, heads, dh, max), &dev)
                        .expect("kt"),
                );
                let vbuf = cast(
                    Tensor::from_vec(data(b * heads * max * dh, 9), (b, heads, max, dh), &dev)
                        .expect("v"),
                );
                let (kt, v) = (
                    kbuf.narrow(3, 0, t).expect("kt"),
                    vbuf.narrow(2, 0, t).expect("v"),
                );
                let q = Tensor::from_vec(data(b * heads * dh, 10), (b, 1, heads * dh), &dev)
                    .expect("q");
                let plain = attend_one_on(Isa::Portable, &q, &kt, &v, None, 0.3)
                    .expect("runs")
                    .expect("takes the cache");
                for isa in Isa::available() {
                    let got = attend_one_on(isa, &q, &kt, &v, None, 0.3)
                        .expect("runs")
                        .expect("takes the cache");
                    let diff = max_abs_diff(&got, &plain);
                    assert!(
                        diff < 1e-5,
                        "{isa} {dtype:?} (t {t}, dh {dh}): max |Δ| {diff}"
                    );
                    if vector && isa >= Isa::Avx2 {
                        assert!(
                            takes_a_vector_path(isa, &kt, &v),
                            "{isa} {dtype:?} (t {t}, dh {dh}): not on the vector kernels"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn padded_keys_are_the_same_keys_and_every_head_takes_the_vector_path() {
        let dev = Device::Cpu;
        let (b, heads, dh, t) = (2, 3, 8, 12);
        let k = Tensor::from_vec(data(b * heads * t * dh, 12), (b, heads, t, dh), &dev).expect("k");
        let kt = k.transpose(2, 3).and_then(|x| x.contiguous()).expect("kt");
        let padded = padded_keys(&kt).expect("pad");
        assert_eq!(padded.dims(), kt.dims());
        assert_eq!(max_abs_diff(&padded, &kt), 0.0);
        for isa in Isa::available().into_iter().filter(|i| *i >= Isa::Avx2) {
            assert!(
                !takes_a_vector_path(isa, &kt, &k),
                "{isa}: the last head of unpadded keys cannot be read to a line's end"
            );
            assert!(takes_a_vector_path(isa, &padded, &k), "{isa}: padded keys");
        }
    }

    /// Whether `isa` runs every head of keys `kt` and values `v` on a vector kernel, none
    /// on the portable fallback.
    pub(super) fn takes_a_vector_path(isa: Isa, kt: &Tensor, v: &Tensor) -> bool {
        let (b, heads, dh, t) = kt.dims4().expect("kt");
        with_heads(kt, |k| {
            with_heads(v, |v| {
                (0..b).all(|bi| (0..heads).all(|h| vector_path_of(isa, &k, &v, (bi, h), t, dh)))
            })
        })
        .flatten()
        .unwrap_or(false)
    }

    /// Whether `isa` runs head (0, 0) of `keys` and `values` on a vector kernel.
    pub(super) fn vector_path(isa: Isa, keys: &Heads, values: &Heads, t: usize, dh: usize) -> bool {
        vector_path_of(isa, keys, values, (0, 0), t, dh)
    }

    /// Whether `isa` runs head (b, h) of `keys` and `values` on a vector kernel.
    fn vector_path_of(
        isa: Isa,
        keys: &Heads,
        values: &Heads,
        (b, h): (usize, usize),
        t: usize,
        dh: usize,
    ) -> bool {
        !matches!(Path::choose(isa, keys, values, b, h, t, dh), Path::Portable)
    }

    #[test]
    fn every_path_exponentiates_as_f32_exp_does() {
        // Ordinary scores, a masked one (−1e9), −∞, and one far enough below the max
        // that e^x is subnormal (taken as 0 by the vector paths).
        for len in [1, 7, 8, 15, 16, 17, 33, 130] {
            let base: Vec<f32> = data(len, 11)
                .iter()
                .enumerate()
                .map(|(i, x)| match i % 9 {
                    4 => -1e9,
                    6 => f32::NEG_INFINITY,
                    7 => x * 10.0 - 95.0,
                    _ => x * 30.0,
                })
                .collect();
            let mut want = base.clone();
            let want_total = head::exp_weights(Isa::Portable, &mut want);
            for isa in Isa::available() {
                let mut got = base.clone();
                let total = head::exp_weights(isa, &mut got);
                assert!(
                    (total - want_total).abs() <= 1e-6 * want_total,
                    "{isa} len {len}: sum {total} vs {want_total}"
                );
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    // 4 ulp of the value, or what f32 keeps below its normal range.
                    let tol = (w.abs() * 4.8e-7).max(1.2e-38);
                    assert!((g - w).abs() <= tol, "{isa} len {len} [{i}]: {g} vs {w}");
                }
            }
        }
    }
}
