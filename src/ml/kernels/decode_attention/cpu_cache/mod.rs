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

mod append;
mod layout;

use candle_core::{Device, Tensor};
use half::f16;

use super::{as_f32, attend_heads, scaled_queries, Heads, Values};
use crate::ml::kernels::isa::{self, Isa};
use append::{write, write_and_attend, Buffers, Encoded, Target};
use layout::{widen, Layout};

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
        match self.encoded(&k, &v) {
            Target::F16(to, new) => write(&l, (at, s), to, &new),
            Target::I8(to, new) => write(&l, (at, s), to, &new),
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
        let ctx = match self.encoded(&k, &v) {
            Target::F16(to, new) => write_and_attend(isa, &l, at, &q, to, &new),
            Target::I8(to, new) => write_and_attend(isa, &l, at, &q, to, &new),
        };
        self.len += 1;
        Tensor::from_vec(ctx, (l.rows, 1, l.heads * l.dh), &Device::Cpu)
    }

    /// New positions' keys `k` and values `v` (rows, heads, S, Dh, as f32) in the store's
    /// element, with the buffers they go to.
    fn encoded(&mut self, k: &[f32], v: &[f32]) -> Target<'_> {
        let dh = self.layout.dh;
        match &mut self.store {
            Store::F16 { keys, values } => {
                Target::F16(Buffers::f16(keys, values), Encoded::f16(k, v))
            }
            Store::I8 {
                keys,
                values,
                key_scales,
                value_scales,
            } => Target::I8(
                Buffers::i8(keys, values, key_scales, value_scales),
                Encoded::i8(k, v, dh),
            ),
        }
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

#[cfg(test)]
mod tests;
