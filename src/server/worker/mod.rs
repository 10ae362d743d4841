//! The job queue and its worker. A song is a durable row (`songs.status`); the worker takes
//! the oldest queued one, runs `pipeline::run` with the loaded `models` on its own
//! low-priority `threads` (one job at a time), and reports through `progress`: to the
//! in-process hub (which the song pages' event streams follow) and, now and then, to the
//! row, so a reload or another device sees it too.
pub mod live;
pub mod models;
pub mod pipeline;
pub mod progress;
pub mod threads;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::api::types::Progress;
use crate::ml::Cancelled;
use crate::photo;
use crate::server::db::songs::SongRow;
use crate::server::db::Db;
use crate::server::metrics::{SONGS_FAILED, SONGS_FINISHED, SONGS_STARTED};
use crate::server::storage::Storage;
use models::Models;
use pipeline::Job;
use progress::{Hub, Tracker, QUEUE_MOVED};

/// A job is tried this many times across restarts before it is marked failed.
pub const MAX_ATTEMPTS: u32 = 3;

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
                    // Every line the job logs, on any thread, carries its song id.
                    let span = tracing::info_span!("job", song = %row.id);
                    self.run_one(row, models.clone(), threads.clone())
                        .instrument(span)
                        .await;
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
        metrics::counter!(SONGS_STARTED).increment(1);
        let started = Instant::now();
        let this = self.clone();
        let handle = tokio::runtime::Handle::current();
        let span = tracing::Span::current();
        // This blocking thread only waits; the job runs on (and its matrix products fan
        // out over) the worker's pool.
        let result = tokio::task::spawn_blocking(move || {
            threads.install(|| {
                let _job = span.enter();
                let mut models = models
                    .lock()
                    .map_err(|_| anyhow::anyhow!("the models were poisoned by an earlier crash"))?;
                this.run_blocking(&row, &mut models, &handle)
            })
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the job crashed: {e}")));
        let secs = started.elapsed().as_secs_f32();
        match &result {
            Ok(()) => self.hub.live.forget_later(&id),
            Err(_) => self.hub.live.forget(&id),
        }
        let settled = match result {
            Ok(()) => {
                tracing::info!(%id, secs, "job done");
                metrics::counter!(SONGS_FINISHED).increment(1);
                self.db.finish(&id).await
            }
            Err(e) if e.downcast_ref::<Cancelled>().is_some() => {
                tracing::info!(%id, "job stopped by shutdown; back in the queue");
                self.db.requeue(&id).await.map(|_| ())
            }
            Err(e) => {
                metrics::counter!(SONGS_FAILED).increment(1);
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
        // An extension continues the codes of the song it extends.
        let prompt_codes = match &options.extends {
            Some(slug) => {
                let original = rt
                    .block_on(self.db.song_by_slug(slug))?
                    .ok_or_else(|| anyhow::anyhow!("the song this one extends is gone"))?;
                self.storage.read_codes(&original.id)?
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
            models,
            &job,
            &mut |stage, step, total| tracker.borrow_mut().report(stage, step, total),
            &mut |made| {
                if let Err(e) = rt.block_on(self.db.set_made_from(&row.id, made)) {
                    tracing::warn!("cannot store the prompt: {e:#}");
                }
            },
            &mut |heard| tracker.borrow_mut().heard(heard),
            &self.stopping,
        )?;
        tracker.borrow_mut().finish();
        self.storage.save_song(&row.id, &audio)
    }
}
