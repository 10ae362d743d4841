//! The job queue and its worker. A song is a durable row (`songs.status`); the worker takes
//! the oldest queued one, runs `pipeline::run` on the worker's own low-priority threads
//! (one job at a time),
//! publishes progress to the in-process hub (which the song pages' event streams follow)
//! and writes it to the row now and then, so a reload or another device sees it too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::{broadcast, Notify};

use crate::api::types::{Progress, Status};
use crate::ml::generate::Cancelled;
use crate::ml::photo;

use super::db::{Db, SongRow};
use super::pipeline::{self, Job, Models};
use super::storage::Storage;

/// A job is tried this many times across restarts before it is marked failed.
pub const MAX_ATTEMPTS: u32 = 3;

/// Live progress, by song id. `QUEUE_MOVED` tells waiting songs their position changed.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<(String, Progress)>,
}

pub const QUEUE_MOVED: &str = "*";

impl Default for Hub {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl Hub {
    pub fn publish(&self, id: &str, p: Progress) {
        // No subscribers is fine: nobody is watching.
        let _ = self.tx.send((id.to_string(), p));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<(String, Progress)> {
        self.tx.subscribe()
    }
}

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
}

impl Queue {
    /// Run jobs until `stopping` is set. Returns when the current job has been settled.
    pub async fn work(self, models: Models, threads: rayon::ThreadPool) {
        match self.db.recover_interrupted(MAX_ATTEMPTS).await {
            Ok((0, 0)) => {}
            Ok((requeued, failed)) => {
                tracing::warn!(requeued, failed, "recovered jobs interrupted by a stop")
            }
            Err(e) => tracing::error!("cannot recover interrupted jobs: {e:#}"),
        }
        let models = Arc::new(Mutex::new(models));
        let threads = Arc::new(threads);
        while !self.stopping.load(Ordering::SeqCst) {
            match self.db.claim_next().await {
                Ok(Some(row)) => {
                    self.hub.publish(QUEUE_MOVED, row.progress(None));
                    self.run_one(row, models.clone(), threads.clone()).await;
                    self.hub.publish(QUEUE_MOVED, Progress::idle());
                }
                Ok(None) => {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), self.wake.notified()).await;
                }
                Err(e) => {
                    tracing::error!("cannot read the job queue: {e:#}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::info!("worker stopped");
    }

    async fn run_one(
        &self,
        row: SongRow,
        models: Arc<Mutex<Models>>,
        threads: Arc<rayon::ThreadPool>,
    ) {
        let id = row.id.clone();
        tracing::info!(%id, attempt = row.attempts, "job started");
        let started = Instant::now();
        let this = self.clone();
        let handle = tokio::runtime::Handle::current();
        // This blocking thread only waits; the job runs on (and its matrix products fan
        // out over) the worker's pool.
        let result = tokio::task::spawn_blocking(move || {
            threads.install(|| {
                let mut models = models
                    .lock()
                    .map_err(|_| anyhow::anyhow!("the models were poisoned by an earlier crash"))?;
                this.run_blocking(&row, &mut models, &handle)
            })
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the job crashed: {e}")));
        let secs = started.elapsed().as_secs_f32();
        let settled = match result {
            Ok(()) => {
                tracing::info!(%id, secs, "job done");
                self.db.finish(&id).await
            }
            Err(e) if e.downcast_ref::<Cancelled>().is_some() => {
                tracing::info!(%id, "job stopped by shutdown; back in the queue");
                self.db.requeue(&id).await.map(|_| ())
            }
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::warn!(%id, secs, "job failed: {msg}");
                self.db.fail(&id, &msg).await
            }
        };
        if let Err(e) = settled {
            tracing::error!(%id, "cannot store the job's result: {e:#}");
        }
        if let Ok(Some(row)) = self.db.song_by_id(&id).await {
            self.hub.publish(&id, row.progress(None));
        }
    }

    fn run_blocking(
        &self,
        row: &SongRow,
        models: &mut Models,
        rt: &tokio::runtime::Handle,
    ) -> Result<()> {
        let options = row.options();
        let photo = if row.has_photo != 0 {
            let bytes = std::fs::read(self.storage.photo_path(&row.id))?;
            Some(photo::decode(&bytes, &photo::Limits::default())?.image)
        } else {
            None
        };
        let job = Job {
            options: &options,
            seed: row.seed as u64,
            photo: photo.as_ref(),
        };
        let mut tracker = Tracker::new(row.id.clone(), self.clone(), rt.clone());
        let wav = pipeline::run(
            models,
            &job,
            &mut |stage, step, total| tracker.report(stage, step, total),
            &mut |made| {
                if let Err(e) = rt.block_on(self.db.set_made_from(&row.id, made)) {
                    tracing::warn!("cannot store the prompt: {e:#}");
                }
            },
            &self.stopping,
        )?;
        self.storage.save_wav(&row.id, &wav)
    }
}

/// Turns stage reports into published progress with an ETA, and writes it to the row at
/// most twice a second (and at every stage change).
struct Tracker {
    id: String,
    queue: Queue,
    rt: tokio::runtime::Handle,
    stage: String,
    stage_started: Instant,
    last_write: Option<Instant>,
}

impl Tracker {
    fn new(id: String, queue: Queue, rt: tokio::runtime::Handle) -> Self {
        Self {
            id,
            queue,
            rt,
            stage: String::new(),
            stage_started: Instant::now(),
            last_write: None,
        }
    }

    fn report(&mut self, stage: &str, step: u32, total: u32) {
        let changed = stage != self.stage;
        if changed {
            self.stage = stage.to_string();
            self.stage_started = Instant::now();
        }
        let done = if total > 0 {
            step as f32 / total as f32
        } else {
            0.0
        };
        let eta_s = (step > 0 && total > 0).then(|| {
            let per_step = self.stage_started.elapsed().as_secs_f32() / step as f32;
            per_step * (total - step.min(total)) as f32
        });
        let p = Progress {
            status: Status::Running,
            stage: stage.to_string(),
            progress: pipeline::overall(stage, done),
            step,
            total,
            eta_s,
            queue_position: None,
            error: None,
        };
        self.queue.hub.publish(&self.id, p.clone());
        let due = self
            .last_write
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500));
        if changed || due {
            self.last_write = Some(Instant::now());
            if let Err(e) = self.rt.block_on(self.queue.db.set_progress(&self.id, &p)) {
                tracing::warn!("cannot store progress: {e:#}");
            }
        }
    }
}
