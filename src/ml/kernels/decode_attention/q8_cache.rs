//! A song's self-attention cache in 8 bits, on the CPU: each position's key and value of
//! each head as Dh integers and one f32 scale (max |x| / 127), half the bytes of an f16
//! cache. Late in a 30 s song the cache is a third of what a step reads (24 layers × 2
//! rows × 16 heads × 1500 positions × 64 × 2 bytes × 2 ≈ 295 MB in f16), and a step is
//! bound by reading. Keys are kept transposed, (B, H, Dh, T), as the scores pass reads
//! them; values (B, H, T, Dh). The kernels widen the integers as they read them and the
//! scales are applied per position: to the scores after the keys' pass, to the softmax
//! weights before the values' pass.

use candle_core::{Device, Tensor};

use super::{attend_heads, Heads, Scales, Values};
use crate::ml::kernels::isa::{self, Isa};
use crate::ml::kernels::q8::{quantize_blocks, to_i8, I8_MAX};

pub struct Q8KvCache {
    rows: usize,
    heads: usize,
    dh: usize,
    /// Positions the buffers hold.
    cap: usize,
    /// Positions written.
    len: usize,
    /// (rows, heads, dh, cap)
    keys: Vec<i8>,
    /// (rows, heads, cap)
    key_scales: Vec<f32>,
    /// (rows, heads, cap, dh)
    values: Vec<i8>,
    /// (rows, heads, cap)
    value_scales: Vec<f32>,
}

impl Q8KvCache {
    /// An empty cache of `cap` positions (zeroed pages are only touched as it fills).
    pub fn new(rows: usize, heads: usize, dh: usize, cap: usize) -> Self {
        let n = rows * heads * dh * cap;
        Self {
            rows,
            heads,
            dh,
            cap,
            len: 0,
            keys: vec![0; n],
            key_scales: vec![0.0; rows * heads * cap],
            values: vec![0; n],
            value_scales: vec![0.0; rows * heads * cap],
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
        if (rows, heads, dh) != (self.rows, self.heads, self.dh) || v.dims() != k.dims() {
            candle_core::bail!(
                "8-bit cache of ({}, {}, _, {}) given keys {:?} and values {:?}",
                self.rows,
                self.heads,
                self.dh,
                k.dims(),
                v.dims()
            );
        }
        if self.len + s > self.cap {
            candle_core::bail!("8-bit cache full: {} + {s} > {}", self.len, self.cap);
        }
        let as_f32 = |x: &Tensor| -> candle_core::Result<Vec<f32>> {
            x.to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1()
        };
        // One scale per (row, head, position): blocks of Dh.
        let keys = quantize_blocks(&as_f32(k)?, dh, I8_MAX, to_i8);
        let values = quantize_blocks(&as_f32(v)?, dh, I8_MAX, to_i8);
        let (cap, len) = (self.cap, self.len);
        for rh in 0..rows * heads {
            for p in 0..s {
                let block = rh * s + p;
                let at = rh * cap + len + p;
                self.key_scales[at] = keys.scales[block];
                self.value_scales[at] = values.scales[block];
                let src = block * dh..(block + 1) * dh;
                self.values[at * dh..(at + 1) * dh].copy_from_slice(&values.q[src.clone()]);
                for (d, q) in keys.q[src].iter().enumerate() {
                    self.keys[(rh * dh + d) * cap + len + p] = *q;
                }
            }
        }
        self.len += s;
        Ok(())
    }

    /// All positions so far as f32 tensors: keys (rows, heads, Dh, T) and values (rows,
    /// heads, T, Dh), for a pass of several positions (candle's ops take those).
    pub fn dequantized(&self) -> candle_core::Result<(Tensor, Tensor)> {
        let (rh, dh, cap, t) = (self.rows * self.heads, self.dh, self.cap, self.len);
        let mut kt = Vec::with_capacity(rh * dh * t);
        let mut v = Vec::with_capacity(rh * t * dh);
        for h in 0..rh {
            let scales = &self.key_scales[h * cap..h * cap + t];
            for d in 0..dh {
                let row = &self.keys[(h * dh + d) * cap..(h * dh + d) * cap + t];
                kt.extend(row.iter().zip(scales).map(|(q, s)| *q as f32 * s));
            }
            for p in 0..t {
                let (at, s) = (h * cap + p, self.value_scales[h * cap + p]);
                v.extend(
                    self.values[at * dh..(at + 1) * dh]
                        .iter()
                        .map(|q| *q as f32 * s),
                );
            }
        }
        let (rows, heads) = (self.rows, self.heads);
        Ok((
            Tensor::from_vec(kt, (rows, heads, dh, t), &Device::Cpu)?,
            Tensor::from_vec(v, (rows, heads, t, dh), &Device::Cpu)?,
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
        if b != self.rows || s != 1 || d != self.heads * self.dh {
            candle_core::bail!(
                "8-bit cache of {} rows × {} heads × {} given a query {:?}",
                self.rows,
                self.heads,
                self.dh,
                q.dims()
            );
        }
        let mut q: Vec<f32> = q
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        q.iter_mut().for_each(|x| *x *= scale);
        let (cap, dh, heads) = (self.cap, self.dh, self.heads);
        // Head (b, h) at b·sb + h·sh, rows st apart; scales one per position.
        let heads_of = |data, (sb, sh, st), scales| Heads {
            data,
            offset: 0,
            sb,
            sh,
            st,
            scales: Some(Scales {
                data: scales,
                sb: heads * cap,
                sh: cap,
            }),
        };
        let keys = heads_of(
            Values::I8(&self.keys),
            (heads * dh * cap, dh * cap, cap),
            &self.key_scales,
        );
        let values = heads_of(
            Values::I8(&self.values),
            (heads * cap * dh, cap * dh, dh),
            &self.value_scales,
        );
        let ctx = attend_heads(isa, &q, None, (b, heads, dh, self.len), &keys, &values);
        Tensor::from_vec(ctx, (b, 1, d), &Device::Cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::kernels::decode_attention::attend_one_on;
    use crate::ml::kernels::decode_attention::tests::max_abs_diff;
    use crate::ml::kernels::host_matmul::tests::data;

    #[test]
    fn attends_as_the_f32_cache_within_8_bit_rounding_on_every_path() {
        let dev = Device::Cpu;
        // Head sizes around the vector widths, lengths around them and the 4-row passes,
        // positions appended one at a time and several at once.
        for (rows, heads, dh, steps) in [
            (1, 1, 8, [1, 1, 1]),
            (2, 3, 20, [5, 1, 11]),
            (2, 2, 64, [17, 1, 1]),
        ] {
            let total: usize = steps.iter().sum();
            let mut cache = Q8KvCache::new(rows, heads, dh, total + 2);
            let mut written = 0;
            for (i, s) in steps.into_iter().enumerate() {
                let k = Tensor::from_vec(
                    data(rows * heads * s * dh, 20 + i as u32),
                    (rows, heads, s, dh),
                    &dev,
                )
                .expect("k");
                let v = Tensor::from_vec(
                    data(rows * heads * s * dh, 30 + i as u32),
                    (rows, heads, s, dh),
                    &dev,
                )
                .expect("v");
                cache.append(&k, &v).expect("append");
                written += s;
                assert_eq!(cache.len(), written);
                let (kt, vv) = cache.dequantized().expect("dequantize");
                assert_eq!(kt.dims(), [rows, heads, dh, written]);
                let q = Tensor::from_vec(
                    data(rows * heads * dh, 40 + i as u32),
                    (rows, 1, heads * dh),
                    &dev,
                )
                .expect("q");
                // The f32 kernel over the dequantized cache is the definition.
                let want = attend_one_on(Isa::Portable, &q, &kt, &vv, None, 0.3)
                    .expect("runs")
                    .expect("takes f32");
                for isa in Isa::available() {
                    let got = cache.attend_one_on(isa, &q, 0.3).expect("attends");
                    let diff = max_abs_diff(&got, &want);
                    assert!(
                        diff < 1e-5,
                        "{isa} ({rows}, {heads}, {dh}, {written}): max |Δ| {diff}"
                    );
                }
            }
            let k = Tensor::zeros((rows, heads, 3, dh), candle_core::DType::F32, &dev).expect("k");
            assert!(
                cache.append(&k, &k).is_err(),
                "appending past the end is an error"
            );
        }
    }

    #[test]
    fn dequantized_values_are_within_half_a_step_of_the_originals() {
        let dev = Device::Cpu;
        let (rows, heads, s, dh) = (2, 2, 6, 16);
        let mut x = data(rows * heads * s * dh, 50);
        x[..dh].fill(0.0); // a position of zeros keeps a zero scale
        let k = Tensor::from_vec(x, (rows, heads, s, dh), &dev).expect("k");
        let mut cache = Q8KvCache::new(rows, heads, dh, s);
        cache.append(&k, &k).expect("append");
        let (kt, v) = cache.dequantized().expect("dequantize");
        let kt = kt.transpose(2, 3).expect("t");
        for got in [&kt, &v] {
            let err = max_abs_diff(got, &k);
            let top = k
                .abs()
                .and_then(|a| a.max_all())
                .and_then(|m| m.to_scalar::<f32>())
                .expect("max");
            assert!(
                err <= top / 127.0 / 2.0 * 1.0001,
                "error {err} past half a step of {top}"
            );
        }
    }
}
