//! One layer's attention state for one song: the self-attention cache that grows a
//! position a step, and the text's keys and values made once when the song starts.
//!
//! The self-attention cache is kept in the format the decoder was loaded for
//! (`CacheFormat`): on the CPU in 8 bits at q8_0 and f16 at f16/bf16, keys in tiles the
//! vector kernels read as one stream (`CpuKvCache`: late in a 30 s song the cache is
//! read whole every step, 150 MB for all layers in 8 bits, 295 in f16); as candle
//! tensors in f32 at f32 (transformers' exact tokens) and on a GPU (the activations'
//! dtype).

use candle_core::{DType, Tensor};
use candle_nn::kv_cache::Cache;

use super::attention::Attention;
use crate::ml::kernels::decode_attention::{self, CpuKvCache, KvElement};

/// How a song's self-attention keys and values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CacheFormat {
    /// Tensors of this dtype.
    Tensors(DType),
    /// The CPU's own cache, in this element.
    Cpu(KvElement),
}

impl CacheFormat {
    /// The dtype of the shared pool's tensors (`pool`), which holds no 8-bit format: a
    /// CPU cache's pool keeps f16.
    pub(super) fn pool_dtype(self) -> DType {
        match self {
            CacheFormat::Tensors(dtype) => dtype,
            CacheFormat::Cpu(_) => DType::F16,
        }
    }
}

/// The self-attention cache in its format.
enum SelfCache {
    /// Keys transposed, (B, H, Dh, T), appended along T, on the CPU (as the one-token
    /// kernel reads them); elsewhere kept (B, H, T, Dh) and handed out as a transposed
    /// view, the only strided form cuBLAS takes without a copy. Values (B, H, T, Dh).
    Tensors {
        keys: Cache,
        keys_transposed: bool,
        values: Cache,
        dtype: DType,
    },
    Cpu(CpuKvCache),
}

/// One layer's attention state for one song.
pub(super) struct LayerCache {
    own: SelfCache,
    /// The text's keys, transposed (B, H, Dh, T), and values (B, H, T, Dh).
    pub(super) cross_kt: Tensor,
    pub(super) cross_v: Tensor,
}

impl LayerCache {
    /// An empty cache for `max_len` positions in `format`, with the text's keys and
    /// values (B, H, T, Dh).
    pub(super) fn new(
        max_len: usize,
        format: CacheFormat,
        cross_k: &Tensor,
        cross_v: Tensor,
    ) -> candle_core::Result<Self> {
        let on_cpu = cross_k.device().is_cpu();
        // A CPU cache keeps the text in f16 too: every step reads it all, cold.
        let (cross_k, cross_v) = match format {
            CacheFormat::Cpu(_) => (cross_k.to_dtype(DType::F16)?, cross_v.to_dtype(DType::F16)?),
            CacheFormat::Tensors(_) => (cross_k.clone(), cross_v),
        };
        let cross_kt = match on_cpu {
            true => decode_attention::padded_keys(&cross_k.transpose(2, 3)?.contiguous()?)?,
            false => cross_k.contiguous()?.transpose(2, 3)?,
        };
        let own = match format {
            CacheFormat::Cpu(element) if on_cpu => {
                let (rows, heads, _, dh) = cross_k.dims4()?;
                SelfCache::Cpu(CpuKvCache::new(element, rows, heads, dh, max_len))
            }
            CacheFormat::Cpu(_) => candle_core::bail!("a CPU attention cache on another device"),
            CacheFormat::Tensors(dtype) => SelfCache::Tensors {
                keys: Cache::new(if on_cpu { 3 } else { 2 }, max_len),
                keys_transposed: on_cpu,
                values: Cache::new(2, max_len),
                dtype,
            },
        };
        Ok(Self {
            own,
            cross_kt,
            cross_v,
        })
    }

    /// Add this pass's keys and values `k`, `v` (B, H, S, Dh) and attend with its queries
    /// `q` (B, S, D) over every position so far, with the causal `mask` of a pass of
    /// S > 1 positions: (B, S, D), before the output projection.
    pub(super) fn attend_self(
        &mut self,
        attn: &Attention,
        q: &Tensor,
        (k, v): (&Tensor, &Tensor),
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        match &mut self.own {
            SelfCache::Cpu(cache) => match (q.dim(1)?, mask) {
                (1, None) => cache.append_and_attend(q, (k, v), attn.scale()),
                // A window's first pass: the whole cache widened, through candle.
                _ => {
                    cache.append(k, v)?;
                    let (kt, v) = cache.widened()?;
                    attn.attend(q, &kt, &v, mask)
                }
            },
            SelfCache::Tensors {
                keys,
                keys_transposed,
                values,
                dtype,
            } => {
                let k = match keys_transposed {
                    true => k.transpose(2, 3)?,
                    false => k.clone(),
                };
                keys.append(&k.contiguous()?.to_dtype(*dtype)?)?;
                values.append(&v.to_dtype(*dtype)?)?;
                let (kt, v) = match (keys.current_data()?, values.current_data()?) {
                    (Some(k), Some(v)) if *keys_transposed => (k, v),
                    (Some(k), Some(v)) => (k.transpose(2, 3)?, v),
                    _ => candle_core::bail!("the attention cache is empty after an append"),
                };
                attn.attend(q, &kt, &v, mask)
            }
        }
    }
}
