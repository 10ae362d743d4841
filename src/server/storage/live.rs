//! The audio of songs being made, in the store: `live/{id}/{n}` is chunk n of a song a
//! worker is making, for web nodes in other processes than the worker's (the worker's
//! own process serves them from memory, `worker::live`). Removed soon after the song is
//! done; the start-up sweep removes what a dead worker left.

use anyhow::Result;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;

use super::{store, Storage};

/// The folder (or key prefix) of the audio of songs being made.
const LIVE: &str = "live";

/// Chunks of a song being made are swept once this old (ms): longer than any song takes.
const LIVE_GRACE_MS: i64 = 60 * 60 * 1000;

/// A live chunk object: its first sample's place in the song (u64 LE), the sample rate
/// (u32 LE), then the 16-bit PCM.
const LIVE_HEADER: usize = 12;

impl Storage {
    fn live_key(id: &str, index: u32) -> Path {
        Path::from(format!("{LIVE}/{id}/{index}"))
    }

    /// Keep a chunk of a song being made, for web nodes elsewhere.
    pub async fn put_live_chunk(
        &self,
        id: &str,
        index: u32,
        start_sample: u64,
        sample_rate: u32,
        pcm: &[u8],
    ) -> Result<()> {
        let mut object = Vec::with_capacity(LIVE_HEADER + pcm.len());
        object.extend_from_slice(&start_sample.to_le_bytes());
        object.extend_from_slice(&sample_rate.to_le_bytes());
        object.extend_from_slice(pcm);
        store::put(self.store(), &Self::live_key(id, index), object.into()).await
    }

    /// A chunk of a song being made: (first sample, sample rate, PCM); None if there is
    /// no such chunk (any more).
    pub async fn live_chunk(&self, id: &str, index: u32) -> Result<Option<(u64, u32, Bytes)>> {
        let Some(object) = store::get(self.store(), &Self::live_key(id, index)).await? else {
            return Ok(None);
        };
        if object.len() < LIVE_HEADER {
            anyhow::bail!("a damaged live chunk: {id}/{index}");
        }
        let start = u64::from_le_bytes(object[..8].try_into()?);
        let rate = u32::from_le_bytes(object[8..LIVE_HEADER].try_into()?);
        Ok(Some((start, rate, object.slice(LIVE_HEADER..))))
    }

    /// Remove a song's live chunks (its files are there, or it failed).
    pub async fn remove_live(&self, id: &str) -> Result<()> {
        let prefix = Path::from(format!("{LIVE}/{id}"));
        let keys: Vec<Path> = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for key in keys {
            self.delete_key(&key).await?;
        }
        Ok(())
    }

    /// Live chunks older than `LIVE_GRACE_MS`: songs long done (their worker died before
    /// it could remove them). Returns how many went.
    pub(super) async fn sweep_live(&self) -> Result<usize> {
        let old = crate::server::db::now_ms() - LIVE_GRACE_MS;
        let stale: Vec<Path> = self
            .store
            .list(Some(&Path::from(LIVE)))
            .try_filter(|meta| std::future::ready(meta.last_modified.timestamp_millis() < old))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for key in &stale {
            self.delete_key(key).await?;
        }
        Ok(stale.len())
    }
}
