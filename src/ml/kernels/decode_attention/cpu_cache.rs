//! A song's self-attention cache on the CPU, in f16 or in 8 bits (`KvElement`). An 8-bit
//! position of a head is Dh integers and one f32 scale (max |x| / 127), half the bytes
//! of f16: late in a 30 s song the cache is a third of what a step reads (24 layers × 2
//! rows × 16 heads × 1500 positions × 64 × 2 bytes × 2 ≈ 295 MB in f16), and a step is
//! bound by reading. Keys are kept transposed, (B, H, Dh, T), as the scores pass reads
//! them, in tiles of a cache line of positions (`KEY_TILE_BYTES`: a tile holds those
//! positions of every row), so the pass reads each head as one stream through memory
//! rather than Dh streams at once; values (B, H, T, Dh). The kernels widen the elements
//! as they read them; 8-bit scales are applied per position: to the scores after the
//! keys' pass, to the softmax weights before the values' pass.

use candle_core::{Device, Tensor};
use half::f16;

use super::{attend_heads, scaled_queries, Heads, Scales, Tiles, Values};
use crate::ml::kernels::isa::{self, Isa};
use crate::ml::kernels::q8::{quantize_blocks, to_i8, I8_MAX};

/// Bytes of a tile's part of a key row: a cache line, the vector key pass's block
/// (checked against it where that pass is chosen).
pub(super) const KEY_TILE_BYTES: usize = 64;

/// What a cache keeps each key and value in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvElement {
    F16,
    /// 8-bit integers with a scale per position and head.
    I8,
}

impl KvElement {
    fn bytes(self) -> usize {
        match self {
            KvElement::F16 => 2,
            KvElement::I8 => 1,
        }
    }
}

pub struct CpuKvCache {
    layout: Layout,
    /// Positions that may be written.
    cap: usize,
    /// Positions written.
    len: usize,
    store: Store,
}

/// Where each position's keys and values lie.
#[derive(Debug, Clone, Copy)]
struct Layout {
    rows: usize,
    heads: usize,
    dh: usize,
    /// Positions the buffers hold: the capacity in whole tiles.
    held: usize,
    /// Positions of a tile of keys.
    tile: usize,
}

/// Keys (rows, heads, held / tile, dh, tile), values (rows, heads, held, dh), scales
/// (rows, heads, held).
enum Store {
    F16 {
        keys: Vec<f16>,
        values: Vec<f16>,
    },
    I8 {
        keys: Vec<i8>,
        values: Vec<i8>,
        key_scales: Vec<f32>,
        value_scales: Vec<f32>,
    },
}

impl Layout {
    /// Where key `d` of position `p` of head `rh` (row · heads + head) lies.
    fn key_at(&self, rh: usize, d: usize, p: usize) -> usize {
        let tile = rh * self.held * self.dh + (p / self.tile) * self.dh * self.tile;
        tile + d * self.tile + p % self.tile
    }

    /// Where position `p` of head `rh` has its scales.
    fn scale_at(&self, rh: usize, p: usize) -> usize {
        rh * self.held + p
    }

    /// Where position `p` of head `rh` starts among the values.
    fn value_at(&self, rh: usize, p: usize) -> usize {
        self.scale_at(rh, p) * self.dh
    }

    /// Head (b, h) of `data` at b·sb + h·sh, rows st apart (keys in tiles), `scales` one
    /// per position, as the attention kernels read it.
    fn heads<'a>(&self, data: Values<'a>, keys: bool, scales: Option<&'a [f32]>) -> Heads<'a> {
        let (dh, held, heads) = (self.dh, self.held, self.heads);
        let (st, tiles) = match keys {
            true => (
                self.tile,
                Some(Tiles {
                    positions: self.tile,
                    stride: dh * self.tile,
                }),
            ),
            false => (dh, None),
        };
        Heads {
            data,
            offset: 0,
            sb: heads * dh * held,
            sh: dh * held,
            st,
            tiles,
            scales: scales.map(|data| Scales {
                data,
                sb: heads * held,
                sh: held,
            }),
        }
    }
}

impl CpuKvCache {
    /// An empty cache of `cap` positions of `rows` × `heads` × `dh` in `element` (zeroed
    /// pages are only touched as it fills).
    pub fn new(element: KvElement, rows: usize, heads: usize, dh: usize, cap: usize) -> Self {
        let tile = KEY_TILE_BYTES / element.bytes();
        let held = cap.next_multiple_of(tile);
        let n = rows * heads * dh * held;
        let store = match element {
            KvElement::F16 => Store::F16 {
                keys: vec![f16::ZERO; n],
                values: vec![f16::ZERO; n],
            },
            KvElement::I8 => Store::I8 {
                keys: vec![0; n],
                values: vec![0; n],
                key_scales: vec![0.0; rows * heads * held],
                value_scales: vec![0.0; rows * heads * held],
            },
        };
        Self {
            layout: Layout {
                rows,
                heads,
                dh,
                held,
                tile,
            },
            cap,
            len: 0,
            store,
        }
    }

    /// Positions written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append keys and values (rows, heads, S, Dh) of S new positions.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> candle_core::Result<()> {
        let (rows, heads, s, dh) = k.dims4()?;
        let l = self.layout;
        if (rows, heads, dh) != (l.rows, l.heads, l.dh) || v.dims() != k.dims() {
            candle_core::bail!(
                "attention cache of ({}, {}, _, {}) given keys {:?} and values {:?}",
                l.rows,
                l.heads,
                l.dh,
                k.dims(),
                v.dims()
            );
        }
        if self.len + s > self.cap {
            candle_core::bail!("attention cache full: {} + {s} > {}", self.len, self.cap);
        }
        let as_f32 = |x: &Tensor| -> candle_core::Result<Vec<f32>> {
            x.to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1()
        };
        let (k, v) = (as_f32(k)?, as_f32(v)?);
        let at = (self.len, s);
        match &mut self.store {
            Store::F16 { keys, values } => {
                let half = |x: &[f32]| x.iter().map(|x| f16::from_f32(*x)).collect::<Vec<_>>();
                put(&l, at, (keys, values), (&half(&k), &half(&v)));
            }
            Store::I8 {
                keys,
                values,
                key_scales,
                value_scales,
            } => {
                // One scale per (row, head, position): blocks of Dh.
                let k = quantize_blocks(&k, dh, I8_MAX, to_i8);
                let v = quantize_blocks(&v, dh, I8_MAX, to_i8);
                put(&l, at, (keys, values), (&k.q, &v.q));
                for rh in 0..rows * heads {
                    for p in 0..s {
                        let to = l.scale_at(rh, self.len + p);
                        key_scales[to] = k.scales[rh * s + p];
                        value_scales[to] = v.scales[rh * s + p];
                    }
                }
            }
        }
        self.len += s;
        Ok(())
    }

    /// All positions so far as f32 tensors: keys (rows, heads, Dh, T) and values (rows,
    /// heads, T, Dh), for a pass of several positions (candle's ops take those).
    pub fn widened(&self) -> candle_core::Result<(Tensor, Tensor)> {
        let (l, t) = (self.layout, self.len);
        let (kt, v) = match &self.store {
            Store::F16 { keys, values } => widen(&l, t, (keys, values), None, f16::to_f32),
            Store::I8 {
                keys,
                values,
                key_scales,
                value_scales,
            } => widen(
                &l,
                t,
                (keys, values),
                Some((key_scales, value_scales)),
                |q| q as f32,
            ),
        };
        Ok((
            Tensor::from_vec(kt, (l.rows, l.heads, l.dh, t), &Device::Cpu)?,
            Tensor::from_vec(v, (l.rows, l.heads, t, l.dh), &Device::Cpu)?,
        ))
    }

    /// One new position's attention over the cache: q (rows, 1, heads·Dh) → the same
    /// shape, softmax(q·kᵀ · scale) · v over every position written.
    pub fn attend_one(&self, q: &Tensor, scale: f32) -> candle_core::Result<Tensor> {
        self.attend_one_on(isa::active(), q, scale)
    }

    /// The same on a given kernel path (tests run every path the CPU has).
    pub fn attend_one_on(&self, isa: Isa, q: &Tensor, scale: f32) -> candle_core::Result<Tensor> {
        let (b, s, d) = q.dims3()?;
        let l = self.layout;
        if b != l.rows || s != 1 || d != l.heads * l.dh {
            candle_core::bail!(
                "attention cache of {} rows × {} heads × {} given a query {:?}",
                l.rows,
                l.heads,
                l.dh,
                q.dims()
            );
        }
        let q = scaled_queries(q, scale)?;
        let (keys, values) = self.heads();
        let ctx = attend_heads(isa, &q, None, (b, l.heads, l.dh, self.len), &keys, &values);
        Tensor::from_vec(ctx, (b, 1, d), &Device::Cpu)
    }

    /// The keys and values as the attention kernels read them.
    fn heads(&self) -> (Heads<'_>, Heads<'_>) {
        let l = &self.layout;
        match &self.store {
            Store::F16 { keys, values } => (
                l.heads(Values::F16(keys), true, None),
                l.heads(Values::F16(values), false, None),
            ),
            Store::I8 {
                keys,
                values,
                key_scales,
                value_scales,
            } => (
                l.heads(Values::I8(keys), true, Some(key_scales)),
                l.heads(Values::I8(values), false, Some(value_scales)),
            ),
        }
    }
}

/// Write S positions' keys and values `k`, `v` (rows, heads, S, Dh) from position `len`:
/// `at` is (len, S).
fn put<E: Copy>(
    l: &Layout,
    (len, s): (usize, usize),
    (keys, values): (&mut [E], &mut [E]),
    (k, v): (&[E], &[E]),
) {
    let dh = l.dh;
    for rh in 0..l.rows * l.heads {
        for p in 0..s {
            let src = (rh * s + p) * dh..(rh * s + p + 1) * dh;
            let to = l.value_at(rh, len + p);
            values[to..to + dh].copy_from_slice(&v[src.clone()]);
            for (d, x) in k[src].iter().enumerate() {
                keys[l.key_at(rh, d, len + p)] = *x;
            }
        }
    }
}

/// The first `t` positions as f32: keys (rows, heads, Dh, T) and values (rows, heads, T,
/// Dh), each element `to_f32` times its position's scale if there are scales.
fn widen<E: Copy>(
    l: &Layout,
    t: usize,
    (keys, values): (&[E], &[E]),
    scales: Option<(&[f32], &[f32])>,
    to_f32: impl Fn(E) -> f32,
) -> (Vec<f32>, Vec<f32>) {
    let (rh_count, dh) = (l.rows * l.heads, l.dh);
    let scale = |s: Option<&[f32]>, rh: usize, p: usize| s.map_or(1.0, |s| s[l.scale_at(rh, p)]);
    let mut kt = Vec::with_capacity(rh_count * dh * t);
    let mut v = Vec::with_capacity(rh_count * t * dh);
    for rh in 0..rh_count {
        for d in 0..dh {
            kt.extend(
                (0..t)
                    .map(|p| to_f32(keys[l.key_at(rh, d, p)]) * scale(scales.map(|s| s.0), rh, p)),
            );
        }
        for p in 0..t {
            let (at, s) = (l.value_at(rh, p), scale(scales.map(|s| s.1), rh, p));
            v.extend(values[at..at + dh].iter().map(|x| to_f32(*x) * s));
        }
    }
    (kt, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::kernels::decode_attention::attend_one_on;
    use crate::ml::kernels::decode_attention::tests::{max_abs_diff, vector_path};
    use crate::ml::kernels::host_matmul::tests::data;

    #[test]
    fn attends_as_the_f32_cache_within_rounding_on_every_path() {
        let dev = Device::Cpu;
        // Head sizes around the vector widths and not a multiple of the key pass's row
        // sets; lengths around the vector widths and its blocks (a line of keys: 32
        // positions in f16, 64 in 8 bits); positions appended one at a time and several
        // at once.
        for element in [KvElement::F16, KvElement::I8] {
            for (rows, heads, dh, steps) in [
                (1, 1, 8, [1, 1, 1]),
                (2, 3, 20, [5, 1, 11]),
                (2, 2, 64, [17, 1, 1]),
                (1, 2, 7, [70, 1, 60]),
            ] {
                let total: usize = steps.iter().sum();
                let mut cache = CpuKvCache::new(element, rows, heads, dh, total + 2);
                let mut written = 0;
                for (i, s) in steps.into_iter().enumerate() {
                    let shape = (rows, heads, s, dh);
                    let n = rows * heads * s * dh;
                    let k = Tensor::from_vec(data(n, 20 + i as u32), shape, &dev).expect("k");
                    let v = Tensor::from_vec(data(n, 30 + i as u32), shape, &dev).expect("v");
                    cache.append(&k, &v).expect("append");
                    written += s;
                    assert_eq!(cache.len(), written);
                    let (kt, vv) = cache.widened().expect("widen");
                    assert_eq!(kt.dims(), [rows, heads, dh, written]);
                    let q = Tensor::from_vec(
                        data(rows * heads * dh, 40 + i as u32),
                        (rows, 1, heads * dh),
                        &dev,
                    )
                    .expect("q");
                    // The f32 kernel over the widened cache is the definition.
                    let want = attend_one_on(Isa::Portable, &q, &kt, &vv, None, 0.3)
                        .expect("runs")
                        .expect("takes f32");
                    for isa in Isa::available() {
                        let got = cache.attend_one_on(isa, &q, 0.3).expect("attends");
                        let diff = max_abs_diff(&got, &want);
                        assert!(
                            diff < 1e-5,
                            "{element:?} {isa} ({rows}, {heads}, {dh}, {written}): max |Δ| {diff}"
                        );
                        let (keys, values) = cache.heads();
                        assert!(
                            isa < Isa::Avx2 || vector_path(isa, &keys, &values, written, dh),
                            "{element:?} {isa}: the cache is not on the vector kernels"
                        );
                    }
                }
                let k =
                    Tensor::zeros((rows, heads, 3, dh), candle_core::DType::F32, &dev).expect("k");
                assert!(
                    cache.append(&k, &k).is_err(),
                    "appending past the end is an error"
                );
            }
        }
    }

    #[test]
    fn widened_values_are_within_rounding_of_the_originals() {
        let dev = Device::Cpu;
        let (rows, heads, s, dh) = (2, 2, 70, 16);
        let mut x = data(rows * heads * s * dh, 50);
        x[..dh].fill(0.0); // a position of zeros keeps a zero scale
        let k = Tensor::from_vec(x, (rows, heads, s, dh), &dev).expect("k");
        let top = k
            .abs()
            .and_then(|a| a.max_all())
            .and_then(|m| m.to_scalar::<f32>())
            .expect("max");
        // Half an 8-bit step of the largest value; half an f16 ulp of it (2⁻¹¹ relative).
        for (element, bound) in [
            (KvElement::I8, top / 127.0 / 2.0 * 1.0001),
            (KvElement::F16, top / 2048.0),
        ] {
            let mut cache = CpuKvCache::new(element, rows, heads, dh, s);
            cache.append(&k, &k).expect("append");
            let (kt, v) = cache.widened().expect("widen");
            let kt = kt.transpose(2, 3).expect("t");
            for got in [&kt, &v] {
                let err = max_abs_diff(got, &k);
                assert!(err <= bound, "{element:?}: error {err} past {bound}");
            }
        }
    }
}
