//! Where a CPU cache keeps each position (`Layout`), and the writes and reads of whole
//! positions that go by it.

use super::super::{Heads, Scales, Tiles, Values};

/// Where each position's keys and values lie.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub rows: usize,
    pub heads: usize,
    pub dh: usize,
    /// Positions the buffers hold: the capacity in whole tiles.
    pub held: usize,
    /// Positions of a tile of keys.
    pub tile: usize,
}

impl Layout {
    /// Where key `d` of position `p` of head `rh` (row · heads + head) lies.
    pub fn key_at(&self, rh: usize, d: usize, p: usize) -> usize {
        let tile = rh * self.held * self.dh + (p / self.tile) * self.dh * self.tile;
        tile + d * self.tile + p % self.tile
    }

    /// Where position `p` of head `rh` has its scales.
    pub fn scale_at(&self, rh: usize, p: usize) -> usize {
        rh * self.held + p
    }

    /// Where position `p` of head `rh` starts among the values.
    pub fn value_at(&self, rh: usize, p: usize) -> usize {
        self.scale_at(rh, p) * self.dh
    }

    /// Head (b, h) of `data` at b·sb + h·sh, rows st apart (keys in tiles), `scales` one
    /// per position, as the attention kernels read it.
    pub fn heads<'a>(&self, data: Values<'a>, keys: bool, scales: Option<&'a [f32]>) -> Heads<'a> {
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

/// Write S positions' keys and values `k`, `v` (rows, heads, S, Dh) from position `len`:
/// `at` is (len, S).
pub(super) fn put<E: Copy>(
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
pub(super) fn widen<E: Copy>(
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
