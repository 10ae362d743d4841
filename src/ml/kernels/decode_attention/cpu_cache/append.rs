//! New positions into a cache's store: encoded in its element (`Encoded`), then written
//! alone (`write`) or each head's inside the attention's parallel loop
//! (`write_and_attend`).

use half::f16;
use rayon::prelude::*;

use super::super::{attend_head, heads_per_task, Values};
use super::layout::{put, Layout};
use crate::ml::kernels::isa::Isa;
use crate::ml::kernels::q8::{quantize_blocks, to_i8, I8_MAX};

/// A cache element the attention kernels read.
pub(super) trait Element: Copy + Send + Sync {
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

/// New positions in a store's element and the buffers they go to.
pub(super) enum Target<'a> {
    F16(Buffers<'a, f16>, Encoded<f16>),
    I8(Buffers<'a, i8>, Encoded<i8>),
}

/// A store's buffers, to be written: keys, values and, in 8 bits, their scales.
pub(super) struct Buffers<'a, E> {
    keys: &'a mut [E],
    values: &'a mut [E],
    scales: Option<(&'a mut [f32], &'a mut [f32])>,
}

impl<'a> Buffers<'a, f16> {
    pub(super) fn f16(keys: &'a mut [f16], values: &'a mut [f16]) -> Self {
        Self {
            keys,
            values,
            scales: None,
        }
    }
}

impl<'a> Buffers<'a, i8> {
    pub(super) fn i8(
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
pub(super) struct Encoded<E> {
    k: Vec<E>,
    v: Vec<E>,
    scales: Option<(Vec<f32>, Vec<f32>)>,
}

impl Encoded<f16> {
    pub(super) fn f16(k: &[f32], v: &[f32]) -> Self {
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
    pub(super) fn i8(k: &[f32], v: &[f32], dh: usize) -> Self {
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

/// Write S `new` positions from position `len` (`at` is (len, S)).
pub(super) fn write<E: Copy>(
    l: &Layout,
    (len, s): (usize, usize),
    to: Buffers<E>,
    new: &Encoded<E>,
) {
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
pub(super) fn write_and_attend<E: Element>(
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
