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

mod layout;

use candle_core::{Device, Tensor};
use half::f16;
use rayon::prelude::*;

use super::{attend_head, attend_heads, heads_per_task, scaled_queries, Heads, Values};
use crate::ml::kernels::isa::{self, Isa};
use crate::ml::kernels::q8::{quantize_blocks, to_i8, I8_MAX};
use layout::{put, widen, Layout};

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
        let (l, at) = (self.layout, self.len);
        let s = self.check_new(k, v)?;
        let (k, v) = (as_f32(k)?, as_f32(v)?);
        match &mut self.store {
            Store::F16 { keys, values } => write(
                &l,
                (at, s),
                Buffers::f16(keys, values),
                &Encoded::f16(&k, &v),
            ),
            Store::I8 {
                keys,
                values,
                key_scales,
                value_scales,
            } => write(
                &l,
                (at, s),
                Buffers::i8(keys, values, key_scales, value_scales),
                &Encoded::i8(&k, &v, l.dh),
            ),
        }
        self.len += s;
        Ok(())
    }

    /// `append` of one position's keys and values (rows, heads, 1, Dh), then `attend_one`
    /// over every position with it, in one parallel loop: each head's task writes its own
    /// new position and reads it back with the rest.
    ///
    /// Why: a position's Dh keys land on Dh lines of the head's last tile, last read a
    /// step before and cold since (a step reads every weight in between). Appended on
    /// their own, one thread waited on those misses while the other idled (0.5 ms of a
    /// step), and the key pass then read the lines again.
    pub fn append_and_attend(
        &mut self,
        q: &Tensor,
        (k, v): (&Tensor, &Tensor),
        scale: f32,
    ) -> candle_core::Result<Tensor> {
        self.append_and_attend_on(isa::active(), q, (k, v), scale)
    }

    /// The same on a given kernel path (tests run every path the CPU has).
    pub fn append_and_attend_on(
        &mut self,
        isa: Isa,
        q: &Tensor,
        (k, v): (&Tensor, &Tensor),
        scale: f32,
    ) -> candle_core::Result<Tensor> {
        if self.check_new(k, v)? != 1 {
            candle_core::bail!("one position at a time is appended with attention");
        }
        self.check_query(q)?;
        let (l, at) = (self.layout, self.len);
        let q = scaled_queries(q, scale)?;
        let (k, v) = (as_f32(k)?, as_f32(v)?);
        let ctx = match &mut self.store {
            Store::F16 { keys, values } => write_and_attend(
                isa,
                &l,
                at,
                &q,
                Buffers::f16(keys, values),
                &Encoded::f16(&k, &v),
            ),
            Store::I8 {
                keys,
                values,
                key_scales,
                value_scales,
            } => write_and_attend(
                isa,
                &l,
                at,
                &q,
                Buffers::i8(keys, values, key_scales, value_scales),
                &Encoded::i8(&k, &v, l.dh),
            ),
        };
        self.len += 1;
        Tensor::from_vec(ctx, (l.rows, 1, l.heads * l.dh), &Device::Cpu)
    }

    /// New keys `k` and values `v` (rows, heads, S, Dh) fit this cache: S, or why not.
    fn check_new(&self, k: &Tensor, v: &Tensor) -> candle_core::Result<usize> {
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
        Ok(s)
    }

    /// A query (rows, 1, heads · Dh) for this cache, or why not.
    fn check_query(&self, q: &Tensor) -> candle_core::Result<()> {
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
        self.check_query(q)?;
        let l = self.layout;
        let q = scaled_queries(q, scale)?;
        let (keys, values) = self.heads();
        let shape = (l.rows, l.heads, l.dh, self.len);
        let ctx = attend_heads(isa, &q, None, shape, &keys, &values);
        Tensor::from_vec(ctx, (l.rows, 1, l.heads * l.dh), &Device::Cpu)
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

/// A cache element the attention kernels read.
trait Element: Copy + Send + Sync {
    fn values(x: &[Self]) -> Values<'_>;
}

impl Element for f16 {
    fn values(x: &[f16]) -> Values<'_> {
        Values::F16(x)
    }
}

impl Element for i8 {
    fn values(x: &[i8]) -> Values<'_> {
        Values::I8(x)
    }
}

/// A store's buffers, to be written: keys, values and, in 8 bits, their scales.
struct Buffers<'a, E> {
    keys: &'a mut [E],
    values: &'a mut [E],
    scales: Option<(&'a mut [f32], &'a mut [f32])>,
}

impl<'a> Buffers<'a, f16> {
    fn f16(keys: &'a mut [f16], values: &'a mut [f16]) -> Self {
        Self {
            keys,
            values,
            scales: None,
        }
    }
}

impl<'a> Buffers<'a, i8> {
    fn i8(
        keys: &'a mut [i8],
        values: &'a mut [i8],
        key_scales: &'a mut [f32],
        value_scales: &'a mut [f32],
    ) -> Self {
        Self {
            keys,
            values,
            scales: Some((key_scales, value_scales)),
        }
    }
}

/// New positions (rows, heads, S, Dh) in a store's element, with one scale per (row,
/// head, position) in 8 bits.
struct Encoded<E> {
    k: Vec<E>,
    v: Vec<E>,
    scales: Option<(Vec<f32>, Vec<f32>)>,
}

impl Encoded<f16> {
    fn f16(k: &[f32], v: &[f32]) -> Self {
        let half = |x: &[f32]| x.iter().map(|x| f16::from_f32(*x)).collect();
        Self {
            k: half(k),
            v: half(v),
            scales: None,
        }
    }
}

impl Encoded<i8> {
    /// One scale per position of a head: blocks of Dh.
    fn i8(k: &[f32], v: &[f32], dh: usize) -> Self {
        let (k, v) = (
            quantize_blocks(k, dh, I8_MAX, to_i8),
            quantize_blocks(v, dh, I8_MAX, to_i8),
        );
        Self {
            k: k.q,
            v: v.q,
            scales: Some((k.scales, v.scales)),
        }
    }
}

/// A tensor's values as f32.
fn as_f32(x: &Tensor) -> candle_core::Result<Vec<f32>> {
    x.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()
}

/// Write S `new` positions from position `len` (`at` is (len, S)).
fn write<E: Copy>(l: &Layout, (len, s): (usize, usize), to: Buffers<E>, new: &Encoded<E>) {
    put(l, (len, s), (to.keys, to.values), (&new.k, &new.v));
    if let (Some((ks, vs)), Some((nk, nv))) = (to.scales, &new.scales) {
        for rh in 0..l.rows * l.heads {
            for p in 0..s {
                let at = l.scale_at(rh, len + p);
                (ks[at], vs[at]) = (nk[rh * s + p], nv[rh * s + p]);
            }
        }
    }
}

/// Write one `new` position at `len` and attend with the scaled queries `q` over the
/// `len + 1` positions, a head per task: each task owns its head's stretch of every
/// buffer (a head's keys, values and scales are each one run of `held` positions).
fn write_and_attend<E: Element>(
    isa: Isa,
    l: &Layout,
    len: usize,
    q: &[f32],
    to: Buffers<E>,
    new: &Encoded<E>,
) -> Vec<f32> {
    let (count, dh) = (l.rows * l.heads, l.dh);
    let one = Layout {
        rows: 1,
        heads: 1,
        ..*l
    };
    let scales: Vec<Option<(&mut [f32], &mut [f32])>> = match to.scales {
        Some((ks, vs)) => (ks.chunks_mut(l.held).zip(vs.chunks_mut(l.held)))
            .map(Some)
            .collect(),
        None => (0..count).map(|_| None).collect(),
    };
    let head = l.held * dh;
    let heads: Vec<_> = (to.keys.chunks_mut(head).zip(to.values.chunks_mut(head)))
        .zip(scales)
        .collect();
    let mut ctx = vec![0f32; count * dh];
    ctx.par_chunks_mut(dh)
        .zip(heads)
        .with_min_len(heads_per_task(count, len + 1, dh))
        .enumerate()
        .for_each(|(rh, (out, ((keys, values), scales)))| {
            let src = rh * dh..(rh + 1) * dh;
            let (k, v) = (&new.k[src.clone()], &new.v[src]);
            put(&one, (len, 1), (&mut *keys, &mut *values), (k, v));
            let scales = match (scales, &new.scales) {
                (Some((ks, vs)), Some((nk, nv))) => {
                    (ks[len], vs[len]) = (nk[rh], nv[rh]);
                    Some((&*ks, &*vs))
                }
                _ => None,
            };
            let kh = one.heads(E::values(keys), true, scales.map(|s| s.0));
            let vh = one.heads(E::values(values), false, scales.map(|s| s.1));
            let qh = &q[rh * dh..(rh + 1) * dh];
            attend_head(isa, qh, None, (&kh, &vh), (0, 0, len + 1), out);
        });
    ctx
}

#[cfg(test)]
mod tests;
