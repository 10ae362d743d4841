//! On a GPU, the attention caches of every song being decoded live in one pool, so a pass
//! over many songs is a fixed handful of large kernels per layer instead of a handful per
//! song. A GPU decoder step is bound by kernel launches, not arithmetic: one song alone is
//! ~700 launches a step, and attention song by song would add ~30 per layer for every
//! further song in the pass.
//!
//! A song leases `rows` pool rows (2 with guidance) for a window. Per layer the pool holds
//! keys and values as (rows, heads, width, Dh). A pass writes its new keys (and values)
//! with one kernel: a single song's rows as one block copy, several songs' one position
//! each as a scatter along positions over every pool row (`Write`). One gather over the
//! pool flat as (rows·heads·width, Dh) reads its songs' rows up to the longest song as
//! (R, heads, lmax, Dh), which cuBLAS reads as it is (keys through a transposed view).
//! Positions past a song's end are masked. The text's keys and
//! values sit in a second pool (`text_width` positions), written when the song starts and
//! zero past its text, so a fully masked row (guidance's unconditional one) averages zeros
//! as transformers' does.
//!
//! The CPU keeps per-song caches (`layer::LayerCache`): its attention kernel reads each
//! song's cache where it is, and gathering would only add copies.

use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Tensor};

/// The additive mask of a position a query may not see.
const MASKED: f32 = -1e9;

/// The pool's shape, fixed at load: per layer, heads × Dh values per position.
#[derive(Debug, Clone, Copy)]
pub(super) struct PoolShape {
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub dtype: DType,
}

pub(super) struct KvPool {
    shape: PoolShape,
    device: Device,
    inner: Mutex<Store>,
}

/// The pooled tensors and which rows are leased.
pub(super) struct Store {
    rows: usize,
    width: usize,
    text_width: usize,
    used: Vec<bool>,
    /// Per layer: keys, values, text keys, text values, each (rows, heads, width, Dh)
    /// (text_width for the text's).
    layers: Vec<[Tensor; 4]>,
    shape: PoolShape,
}

/// A song's rows of the pool for one window, given back when dropped.
pub(super) struct Lease {
    pool: Arc<KvPool>,
    first: usize,
    rows: usize,
    /// Positions of text, and its additive mask (rows × text_len).
    text_len: usize,
    text_mask: Vec<f32>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A poisoned pool is past use anyway; nothing to give back then.
        if let Ok(mut store) = self.pool.inner.lock() {
            store.used[self.first..self.first + self.rows].fill(false);
        }
    }
}

/// What one pass needs beyond the pool: where its new keys go, which pool entries its
/// attention reads, and the masks, made once and used by every layer.
pub(super) struct Pass {
    /// Rows in the pass, positions per row, longest self-attention span, longest text.
    rows: usize,
    positions: usize,
    lmax: usize,
    tmax: usize,
    /// Where the pass's new keys and values go.
    write: Write,
    /// (R·heads·lmax) and (R·heads·tmax): the flat entries the attention reads.
    read: Tensor,
    read_text: Tensor,
    /// (R, 1, S, lmax) and (R, 1, 1, tmax), additive, in the pool's dtype.
    pub self_mask: Tensor,
    pub text_mask: Tensor,
}

/// How a pass writes its new keys and values into the pool.
enum Write {
    /// One song: its rows, first to last, are one contiguous block; S positions from
    /// `pos` are copied in with one copy per tensor.
    Block {
        first: usize,
        rows: usize,
        pos: usize,
    },
    /// Several songs, one position each: a scatter along positions over every pool row
    /// (the one kernel of candle's whose threads are the rows × heads × Dh values, not a
    /// loop over them), rows outside the pass skipped (index u32::MAX). `source` picks
    /// each pool row's pass row (any for skipped ones) and `at` is (pool rows, heads, 1,
    /// Dh) of positions.
    Scatter { source: Tensor, at: Tensor },
}

impl KvPool {
    pub(super) fn new(shape: PoolShape, device: &Device) -> Arc<Self> {
        Arc::new(Self {
            shape,
            device: device.clone(),
            inner: Mutex::new(Store {
                rows: 0,
                width: 0,
                text_width: 0,
                used: Vec::new(),
                layers: Vec::new(),
                shape,
            }),
        })
    }

    fn lock(&self) -> candle_core::Result<MutexGuard<'_, Store>> {
        self.inner
            .lock()
            .map_err(|_| candle_core::Error::Msg("the attention pool is poisoned".into()))
    }

    /// Lease rows for a window of up to `width` positions over the text keys and values
    /// `text` (per layer, each (rows, heads, T, Dh)) with its additive mask (rows × T).
    pub(super) fn lease(
        self: &Arc<Self>,
        width: usize,
        text: &[(Tensor, Tensor)],
        text_mask: Vec<f32>,
    ) -> candle_core::Result<Lease> {
        let Some((k0, _)) = text.first() else {
            candle_core::bail!("a lease needs every layer's text keys and values");
        };
        let (rows, _, text_len, _) = k0.dims4()?;
        let mut store = self.lock()?;
        let first = store.reserve(rows, width, text_len, &self.device)?;
        let s = self.shape;
        // A leased row starts clean: no earlier song's keys behind the mask.
        let fresh = Tensor::zeros(
            (rows, s.heads, store.width, s.head_dim),
            s.dtype,
            &self.device,
        )?;
        for (pooled, (k, v)) in store.layers.iter().zip(text) {
            pooled[0].slice_set(&fresh, 0, first)?;
            pooled[1].slice_set(&fresh, 0, first)?;
            let pad = store.text_width - text_len;
            for (dst, src) in [(&pooled[2], k), (&pooled[3], v)] {
                let src = src
                    .to_dtype(s.dtype)?
                    .pad_with_zeros(2, 0, pad)?
                    .contiguous()?;
                dst.slice_set(&src, 0, first)?;
            }
        }
        Ok(Lease {
            pool: self.clone(),
            first,
            rows,
            text_len,
            text_mask,
        })
    }

    /// The pool, for one pass, with the pass's indices and masks: `songs` are each song's
    /// lease and position reached, in the pass's row order; each takes `s` positions.
    pub(super) fn pass(
        &self,
        songs: &[(&Lease, usize)],
        s: usize,
    ) -> candle_core::Result<(MutexGuard<'_, Store>, Pass)> {
        let store = self.lock()?;
        let pass = store.plan(songs, s, &self.device)?;
        Ok((store, pass))
    }
}

impl Store {
    /// First of `rows` free consecutive rows, the pool grown to hold them and `width` and
    /// `text` positions; marked used.
    fn reserve(
        &mut self,
        rows: usize,
        width: usize,
        text: usize,
        device: &Device,
    ) -> candle_core::Result<usize> {
        let room = self.first_free(rows).is_some();
        if !room || width > self.width || text > self.text_width {
            // Doubling: a pool grows a few times, not once per song.
            let more = match room {
                true => self.rows,
                false => (self.rows * 2).max(self.rows + rows),
            };
            self.grow(
                more,
                width.max(self.width),
                text.max(self.text_width),
                device,
            )?;
        }
        let Some(first) = self.first_free(rows) else {
            candle_core::bail!("the attention pool has no {rows} free rows after growing");
        };
        self.used[first..first + rows].fill(true);
        Ok(first)
    }

    fn first_free(&self, rows: usize) -> Option<usize> {
        (0..=self.rows.saturating_sub(rows))
            .find(|&r| r + rows <= self.rows && self.used[r..r + rows].iter().all(|u| !u))
    }

    /// New tensors of `rows` × `width` (and `text_width`), the old contents copied in.
    fn grow(
        &mut self,
        rows: usize,
        width: usize,
        text_width: usize,
        device: &Device,
    ) -> candle_core::Result<()> {
        let s = self.shape;
        let make = |w: usize| Tensor::zeros((rows, s.heads, w, s.head_dim), s.dtype, device);
        let mut layers = Vec::with_capacity(s.layers);
        for l in 0..s.layers {
            let new = [
                make(width)?,
                make(width)?,
                make(text_width)?,
                make(text_width)?,
            ];
            if let Some(old) = self.layers.get(l) {
                for (i, (dst, src)) in new.iter().zip(old).enumerate() {
                    let w = if i < 2 { width } else { text_width };
                    let extra = w - src.dim(2)?;
                    dst.slice_set(&src.pad_with_zeros(2, 0, extra)?.contiguous()?, 0, 0)?;
                }
            }
            layers.push(new);
        }
        self.layers = layers;
        self.used.resize(rows, false);
        self.rows = rows;
        self.width = width;
        self.text_width = text_width;
        Ok(())
    }

    /// The indices and masks of a pass (see `Pass`).
    fn plan(
        &self,
        songs: &[(&Lease, usize)],
        s: usize,
        device: &Device,
    ) -> candle_core::Result<Pass> {
        let heads = self.shape.heads;
        let rows: usize = songs.iter().map(|(l, _)| l.rows).sum();
        let lmax = songs.iter().map(|(_, pos)| pos + s).max().unwrap_or(0);
        let tmax = songs.iter().map(|(l, _)| l.text_len).max().unwrap_or(0);
        if lmax > self.width {
            candle_core::bail!(
                "a pass reaches position {lmax} of a pool {} wide",
                self.width
            );
        }
        let mut source = vec![0u32; self.rows];
        let mut at = vec![u32::MAX; self.rows];
        let mut bases = Vec::with_capacity(rows * heads);
        let mut text_bases = Vec::with_capacity(rows * heads);
        let mut self_mask = Vec::with_capacity(rows * s * lmax);
        let mut text_mask = Vec::with_capacity(rows * tmax);
        let mut pass_row = 0u32;
        for (lease, pos) in songs {
            for r in lease.first..lease.first + lease.rows {
                (source[r], at[r]) = (pass_row, *pos as u32);
                pass_row += 1;
                for i in 0..s {
                    // Position pos + i sees positions up to itself.
                    self_mask.extend((0..lmax).map(|j| if j <= pos + i { 0.0 } else { MASKED }));
                }
                for h in 0..heads {
                    bases.push(((r * heads + h) * self.width) as u32);
                    text_bases.push(((r * heads + h) * self.text_width) as u32);
                }
                let own = &lease.text_mask[(r - lease.first) * lease.text_len..][..lease.text_len];
                text_mask.extend_from_slice(own);
                text_mask.extend((lease.text_len..tmax).map(|_| MASKED));
            }
        }
        let write = match songs {
            [(lease, pos)] => Write::Block {
                first: lease.first,
                rows: lease.rows,
                pos: *pos,
            },
            _ if s == 1 => {
                let n = self.rows;
                let dims = (n, heads, 1, self.shape.head_dim);
                Write::Scatter {
                    source: Tensor::from_vec(source, n, device)?,
                    at: Tensor::from_vec(at, (n, 1, 1, 1), device)?
                        .broadcast_as(dims)?
                        .contiguous()?,
                }
            }
            _ => candle_core::bail!("a pass over several positions takes one song"),
        };
        let dt = self.shape.dtype;
        let spans = |bases: Vec<u32>, len: usize| -> candle_core::Result<Tensor> {
            let n = bases.len();
            let bases = Tensor::from_vec(bases, (n, 1), device)?;
            let steps = Tensor::arange(0u32, len as u32, device)?.reshape((1, len))?;
            bases.broadcast_add(&steps)?.flatten_all()
        };
        Ok(Pass {
            rows,
            positions: s,
            lmax,
            tmax,
            write,
            read: spans(bases, lmax)?,
            read_text: spans(text_bases, tmax)?,
            self_mask: Tensor::from_vec(self_mask, (rows, 1, s, lmax), device)?.to_dtype(dt)?,
            text_mask: Tensor::from_vec(text_mask, (rows, 1, 1, tmax), device)?.to_dtype(dt)?,
        })
    }

    fn flat(t: &Tensor) -> candle_core::Result<Tensor> {
        let (r, h, w, d) = t.dims4()?;
        t.reshape((r * h * w, d))
    }

    /// Write layer `layer`'s new keys and values (R, S, heads·Dh) for the pass, and
    /// return what its attention reads: keys transposed (R, heads, Dh, lmax) and values
    /// (R, heads, lmax, Dh).
    pub(super) fn self_attention(
        &self,
        layer: usize,
        pass: &Pass,
        k: &Tensor,
        v: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let [pk, pv, _, _] = &self.layers[layer];
        let (heads, dh) = (self.shape.heads, self.shape.head_dim);
        for (pool, new) in [(pk, k), (pv, v)] {
            // (R, S, heads·Dh) → (R, heads, S, Dh), the pool's order.
            let new = new
                .to_dtype(self.shape.dtype)?
                .reshape((pass.rows, pass.positions, heads, dh))?
                .transpose(1, 2)?
                .contiguous()?;
            match &pass.write {
                Write::Block { first, rows, pos } => {
                    pool.narrow(0, *first, *rows)?.slice_set(&new, 2, *pos)?
                }
                Write::Scatter { source, at } => {
                    pool.scatter_set(at, &new.index_select(source, 0)?, 2)?
                }
            }
        }
        let read = |pool: &Tensor| {
            Self::flat(pool)?
                .index_select(&pass.read, 0)?
                .reshape((pass.rows, heads, pass.lmax, dh))
        };
        Ok((read(pk)?.transpose(2, 3)?, read(pv)?))
    }

    /// The text keys (transposed, (R, heads, Dh, tmax)) and values of the pass's songs.
    pub(super) fn text(&self, layer: usize, pass: &Pass) -> candle_core::Result<(Tensor, Tensor)> {
        let [_, _, tk, tv] = &self.layers[layer];
        let (heads, dh) = (self.shape.heads, self.shape.head_dim);
        let read = |pool: &Tensor| {
            Self::flat(pool)?
                .index_select(&pass.read_text, 0)?
                .reshape((pass.rows, heads, pass.tmax, dh))
        };
        Ok((read(tk)?.transpose(2, 3)?, read(tv)?))
    }
}
