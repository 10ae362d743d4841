//! The worker. A song is a durable row (`songs.status`, see `db::queue`); a worker, in the
//! web process (`serve`) or on its own (`snapsong worker`), any number of them on one
//! database, takes the oldest queued song under a lease it renews by heartbeat, runs
//! `pipeline::run` with the loaded `models` on its own low-priority `threads` (up to
//! `--batch` jobs at once, their songs decoded together in one pass a step: `batcher`),
//! and reports through `progress`: to the in-process hub (which this process's
//! event streams follow) and, a few times a second, to the row, which every other web
//! node follows.
pub mod batcher;
pub mod live;
pub mod models;
pub mod pipeline;
pub mod progress;
pub mod threads;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::{Notify, Semaphore};
use tracing::Instrument;

use crate::api::types::Progress;
use crate::ml::Cancelled;
use crate::photo;
use crate::server::db::songs::SongRow;
use crate::server::db::{Db, Lease};
use crate::server::metrics::{SONGS_FAILED, SONGS_FINISHED, SONGS_STARTED};
use crate::server::storage::Storage;
use batcher::Batcher;
use models::Models;
use pipeline::{Job, Workshop};
use progress::{Hub, Tracker, QUEUE_MOVED};

/// A job is tried this many times (by workers that stopped while making it) before it
/// is marked failed.
pub const MAX_ATTEMPTS: u32 = 3;

/// How often the shutdown flag is looked at while a job runs: a stopping worker hands its
/// job back within this (an atomic load per tick). At 200 ms a short song on a fast CPU
/// was past its last step before the stop was seen, and was finished instead.
const STOP_CHECK: Duration = Duration::from_millis(20);

/// What the worker shares with the rest of the server.
#[derive(Clone)]
pub struct Queue {
    pub db: Db,
    pub storage: Storage,
    pub hub: Hub,
    /// Rung when a job is added, so the worker does not wait for its next poll.
    pub wake: Arc<Notify>,
    /// Set on shutdown: no new jobs are taken and the current one stops and is requeued.
    pub stopping: Arc<AtomicBool>,
    /// `--pace`: songs are made no faster than this × real time (0: no limit).
    pub pace: f64,
    /// This worker's name and lease length.
    pub lease: Lease,
}

/// A worker's name: unique among the live workers of one database, and the same when the
/// same worker starts again (so it can take back at once what it held when it was killed).
/// `serve` is named by its host and address; `snapsong worker` by its host and process.
pub fn worker_name(role: &str, instance: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/{role}/{instance}")
}

impl Queue {
    /// Run jobs until `stopping` is set, up to `batch` at once (their songs decoded
    /// together, `batcher`). Returns when every job has been settled.
    pub async fn work(self, models: Models, threads: rayon::ThreadPool, batch: usize) {
        // Jobs this worker held when it was killed (any other worker's wait for their
        // leases to run out).
        match self.db.release_all(&self.lease.worker).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(requeued = n, "took back jobs interrupted by a stop"),
            Err(e) => tracing::error!("cannot take back interrupted jobs: {e:#}"),
        }
        let (models, pool) = (Arc::new(Mutex::new(models)), Arc::new(threads));
        let shop = match Batcher::start(models.clone(), pool.clone(), batch) {
            Ok(decoder) => Workshop {
                models,
                pool,
                decoder,
            },
            Err(e) => {
                tracing::error!("the worker cannot start: {e:#}");
                return;
            }
        };
        tracing::info!(worker = %self.lease.worker, lease_ms = self.lease.ms, batch, "worker ready");
        let slots = Arc::new(Semaphore::new(batch.max(1)));
        let mut jobs = tokio::task::JoinSet::new();
        while !self.stopping.load(Ordering::SeqCst) {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            while jobs.try_join_next().is_some() {}
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            match self.db.claim_next(&self.lease, MAX_ATTEMPTS).await {
                Ok(Some(row)) => {
                    self.hub.publish(QUEUE_MOVED, row.progress(None));
                    // Every line the job logs, on any thread, carries its song id.
                    let span = tracing::info_span!("job", song = %row.id);
                    let (this, shop) = (self.clone(), shop.clone());
                    jobs.spawn(async move {
                        this.run_one(row, shop).instrument(span).await;
                        this.hub.publish(QUEUE_MOVED, Progress::idle());
                        drop(slot);
                    });
                }
                Ok(None) => {
                    drop(slot);
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), self.wake.notified()).await;
                }
                Err(e) => {
                    drop(slot);
                    tracing::error!("cannot read the job queue: {e:#}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        while jobs.join_next().await.is_some() {}
        tracing::info!("worker stopped");
    }

    async fn run_one(&self, row: SongRow, shop: Workshop) {
        let id = row.id.clone();
        tracing::info!(%id, attempt = row.attempts, "job started");
        metrics::counter!(SONGS_STARTED).increment(1);
        let started = Instant::now();
        self.hub.set_local(&id, true);
        // The job stops when this worker stops or loses its lease.
        let cancel = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(self.clone().heartbeat(
            id.clone(),
            cancel.clone(),
            lost.clone(),
        ));
        let this = self.clone();
        let handle = tokio::runtime::Handle::current();
        let span = tracing::Span::current();
        let job_cancel = cancel.clone();
        // This blocking thread mostly waits: the song is decoded with the others being
        // made, and the job's heavy parts run on the worker's pool.
        let result = tokio::task::spawn_blocking(move || {
            let _job = span.enter();
            this.run_blocking(&row, &shop, &handle, &job_cancel)
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the job crashed: {e}")));
        heartbeat.abort();
        let secs = started.elapsed().as_secs_f32();
        let worker = &self.lease.worker;
        self.drop_live(&id, result.is_ok(), lost.load(Ordering::SeqCst));
        let settled = match result {
            _ if lost.load(Ordering::SeqCst) => {
                tracing::warn!(%id, "job given up: its lease ran out and another worker has it");
                Ok(true)
            }
            Ok(()) => {
                tracing::info!(%id, secs, "job done");
                metrics::counter!(SONGS_FINISHED).increment(1);
                self.db.finish(&id, worker).await
            }
            Err(e) if e.downcast_ref::<Cancelled>().is_some() => {
                tracing::info!(%id, "job stopped by shutdown; back in the queue");
                self.db.release(&id, worker).await
            }
            Err(e) => {
                metrics::counter!(SONGS_FAILED).increment(1);
                let msg = format!("{e:#}");
                tracing::warn!(%id, secs, "job failed: {msg}");
                self.db.fail(&id, worker, &msg).await
            }
        };
        match settled {
            Ok(true) => {}
            Ok(false) => tracing::warn!(%id, "the job's lease was lost before its result was kept"),
            Err(e) => tracing::error!(%id, "cannot store the job's result: {e:#}"),
        }
        if let Ok(Some(row)) = self.db.song_by_id(&id).await {
            self.hub.publish(&id, row.progress(None));
        }
        self.hub.set_local(&id, false);
    }

    /// The audio kept while a song was made goes: at once if it failed or stopped (it is
    /// not the song's audio), `KEEP_AFTER_FINISH` after it is done (pages still playing it
    /// switch to the files). Chunks in the store are left alone if the song has another
    /// worker now: they are its chunks.
    fn drop_live(&self, id: &str, done: bool, lost: bool) {
        let (storage, id) = (self.storage.clone(), id.to_string());
        match done {
            true => self.hub.live.forget_later(&id),
            false => self.hub.live.forget(&id),
        }
        if lost {
            return;
        }
        tokio::spawn(async move {
            if done {
                tokio::time::sleep(live::KEEP_AFTER_FINISH).await;
            }
            if let Err(e) = storage.remove_live(&id).await {
                tracing::warn!(%id, "cannot remove the live chunks: {e:#}");
            }
        });
    }

    /// While a job runs: renew its lease every third of it, and stop the job when this
    /// worker stops or the lease is lost (a database that cannot be reached for a whole
    /// lease loses it too: another worker may have the song by then).
    async fn heartbeat(self, id: String, cancel: Arc<AtomicBool>, lost: Arc<AtomicBool>) {
        let every = Duration::from_millis((self.lease.ms / 3).max(100) as u64);
        let mut last_renewed = Instant::now();
        let mut next = Instant::now() + every;
        loop {
            tokio::time::sleep(STOP_CHECK).await;
            if self.stopping.load(Ordering::SeqCst) {
                cancel.store(true, Ordering::SeqCst);
            }
            if Instant::now() < next {
                continue;
            }
            next = Instant::now() + every;
            match self.db.renew_lease(&id, &self.lease).await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    lost.store(true, Ordering::SeqCst);
                    cancel.store(true, Ordering::SeqCst);
                    return;
                }
                Err(e) => {
                    tracing::warn!("cannot renew the job's lease: {e:#}");
                    if last_renewed.elapsed().as_millis() as i64 >= self.lease.ms {
                        lost.store(true, Ordering::SeqCst);
                        cancel.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }
    }

    fn run_blocking(
        &self,
        row: &SongRow,
        shop: &Workshop,
        rt: &tokio::runtime::Handle,
        cancel: &Arc<AtomicBool>,
    ) -> Result<()> {
        let options = row.options();
        let photo = if row.has_photo != 0 {
            let bytes = rt.block_on(self.storage.read_photo(&row.id))?;
            let limits = photo::Limits::default();
            Some(shop.pool.install(|| photo::decode(&bytes, &limits))?.image)
        } else {
            None
        };
        // An extension continues the codes of the song it extends.
        let prompt_codes = match &options.extends {
            Some(slug) => {
                let original = rt
                    .block_on(self.db.song_by_slug(slug))?
                    .ok_or_else(|| anyhow::anyhow!("the song this one extends is gone"))?;
                rt.block_on(self.storage.read_codes(&original.id))?
            }
            None => Vec::new(),
        };
        let job = Job {
            options: &options,
            seed: row.seed as u64,
            photo: photo.as_ref(),
            pace: self.pace,
            prompt_codes,
        };
        let tracker =
            std::cell::RefCell::new(Tracker::new(row.id.clone(), self.clone(), rt.clone()));
        let audio = pipeline::run(
            shop,
            &job,
            &mut |stage, step, total| tracker.borrow_mut().report(stage, step, total),
            &mut |made| {
                if let Err(e) = rt.block_on(self.db.set_made_from(&row.id, made)) {
                    tracing::warn!("cannot store the prompt: {e:#}");
                }
            },
            &mut |heard| tracker.borrow_mut().heard(heard),
            cancel,
        )?;
        tracker.borrow_mut().finish();
        rt.block_on(self.storage.save_song(&row.id, &audio))
    }
}

/// Songs a worker makes at once when `--batch` is not given. On a CPU, two songs in a
/// pass cost 1.47× one song's step (`scripts/bench/batch`, 2 cores, 8-bit weights): 1.36×
/// the songs a minute, and a second person's song starts at once instead of after the
/// first. Past two, the 8-bit products turn from reading weights to arithmetic, which
/// grows with every row (4 songs: 1.32×, 8: 1.30×), while each song slows down. A GPU has
/// the arithmetic for many.
pub fn default_batch(device: &candle_core::Device) -> usize {
    match device.is_cpu() {
        true => 2,
        false => 16,
    }
}
