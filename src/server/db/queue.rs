//! The job queue on the songs table, for any number of workers on one database.
//!
//! A worker claims the oldest queued song, or a running one whose lease ran out, with
//! `FOR UPDATE SKIP LOCKED` (Postgres; on SQLite the same choice inside BEGIN IMMEDIATE,
//! which takes the database's one write lock). The claim writes the worker's name and a
//! lease end into the row; the worker renews the lease by heartbeat, and every later write
//! of the job (progress, result) names the worker, so one that lost its lease (paused,
//! cut off) can never overwrite what the song's new worker does.

use anyhow::Result;

use super::songs::SongRow;
use super::{now_ms, Db, QUEUE_CHANNEL, SONG_CHANNEL};
use crate::api::types::Progress;

/// Who holds a job, and for how long each renewal keeps it.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The worker's name, unique among live workers (`--name`, else `worker::worker_name`).
    pub worker: String,
    pub ms: i64,
}

/// What one look at the queue did.
enum Claim {
    Took(Box<SongRow>),
    /// Marked a song failed (taken too often); look again.
    Failed,
    None,
}

const WHY_FAILED: &str = "the song could not be made: the worker making it stopped, more than once";

impl Db {
    /// Take the next job, if any: the oldest queued song, or a running one whose lease
    /// ran out. A song taken `max_attempts` times already is marked failed (with a retry
    /// offered) instead, and the next one is looked at.
    pub async fn claim_next(&self, lease: &Lease, max_attempts: u32) -> Result<Option<SongRow>> {
        loop {
            match self.claim_or_fail(lease, max_attempts).await? {
                Claim::Took(row) => return Ok(Some(*row)),
                Claim::None => return Ok(None),
                Claim::Failed => continue,
            }
        }
    }

    /// One look at the queue, in one transaction.
    async fn claim_or_fail(&self, lease: &Lease, max_attempts: u32) -> Result<Claim> {
        let now = now_ms();
        let lock = if self.sqlite {
            ""
        } else {
            "FOR UPDATE SKIP LOCKED"
        };
        self.write(async |tx| {
            let next: Option<(String, i64, String)> = sqlx::query_as(&format!(
                "SELECT id, attempts, status FROM songs \
                 WHERE status = 'queued' \
                    OR (status = 'running' AND COALESCE(lease_until_ms, 0) < $1) \
                 ORDER BY created_ms, id LIMIT 1 {lock}"
            ))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((id, attempts, status)) = next else {
                return Ok(Claim::None);
            };
            if status == "running" && attempts >= max_attempts as i64 {
                sqlx::query(
                    "UPDATE songs SET status = 'failed', error = $1, worker = NULL, \
                     finished_ms = $2, updated_ms = $2 WHERE id = $3",
                )
                .bind(WHY_FAILED)
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                self.notify_on(tx, SONG_CHANNEL, &id).await?;
                tracing::warn!(song = %id, attempts, "{WHY_FAILED}");
                return Ok(Claim::Failed);
            }
            let row: SongRow = sqlx::query_as(
                "UPDATE songs SET status = 'running', stage = 'reading', progress = 0, \
                 step = 0, total = 0, attempts = attempts + 1, error = NULL, live = NULL, \
                 worker = $1, lease_until_ms = $2, started_ms = $3, updated_ms = $3 \
                 WHERE id = $4 RETURNING *",
            )
            .bind(&lease.worker)
            .bind(now + lease.ms)
            .bind(now)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
            self.notify_on(tx, SONG_CHANNEL, &id).await?;
            Ok(Claim::Took(Box::new(row)))
        })
        .await
    }

    /// Jobs this worker held when it stopped without settling them (it was killed, and
    /// starts again under the same name): back in the queue at once, rather than when
    /// their lease runs out.
    pub async fn release_all(&self, worker: &str) -> Result<u64> {
        let done = self.execute(sqlx::query(
            "UPDATE songs SET status = 'queued', stage = 'queued', progress = 0, step = 0, \
             total = 0, worker = NULL, lease_until_ms = NULL, live = NULL, updated_ms = $1 \
             WHERE status = 'running' AND worker = $2",
        )
        .bind(now_ms())
        .bind(worker))
        .await?;
        Ok(done.rows_affected())
    }

    /// Keep the job for another lease. False: the lease was lost (it ran out and another
    /// worker took the song, or the song is gone): stop working on it.
    pub async fn renew_lease(&self, id: &str, lease: &Lease) -> Result<bool> {
        let done = self
            .execute(
                sqlx::query(
                    "UPDATE songs SET lease_until_ms = $1 \
             WHERE id = $2 AND worker = $3 AND status = 'running'",
                )
                .bind(now_ms() + lease.ms)
                .bind(id)
                .bind(&lease.worker),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_progress(&self, id: &str, worker: &str, p: &Progress) -> Result<()> {
        let live = p.live.as_ref().map(serde_json::to_string).transpose()?;
        let q = sqlx::query(
            "UPDATE songs SET stage = $1, step = $2, total = $3, progress = $4, updated_ms = $5, \
             live = $8 WHERE id = $6 AND status = 'running' AND worker = $7",
        )
        .bind(p.stage.as_str())
        .bind(p.step as i64)
        .bind(p.total as i64)
        .bind(p.progress as f64)
        .bind(now_ms())
        .bind(id)
        .bind(worker)
        .bind(live);
        self.execute_and_notify(q, SONG_CHANNEL, id).await?;
        Ok(())
    }

    /// The job is done. False if this worker no longer held it.
    pub async fn finish(&self, id: &str, worker: &str) -> Result<bool> {
        self.settle(
            id,
            worker,
            "status = 'ready', stage = 'done', progress = 1, error = NULL, finished_ms = $1",
            None,
        )
        .await
    }

    pub async fn fail(&self, id: &str, worker: &str, error: &str) -> Result<bool> {
        self.settle(
            id,
            worker,
            "status = 'failed', error = $4, finished_ms = $1",
            Some(error),
        )
        .await
    }

    /// Give a job back to the queue (this worker is stopping).
    pub async fn release(&self, id: &str, worker: &str) -> Result<bool> {
        self.settle(
            id,
            worker,
            "status = 'queued', stage = 'queued', progress = 0, step = 0, total = 0",
            None,
        )
        .await
    }

    /// End this worker's hold on a job with `set` ($1 is now, $4 the error if any).
    async fn settle(&self, id: &str, worker: &str, set: &str, error: Option<&str>) -> Result<bool> {
        let query = format!(
            "UPDATE songs SET {set}, worker = NULL, lease_until_ms = NULL, live = NULL, \
             updated_ms = $1 \
             WHERE id = $2 AND worker = $3 AND status = 'running'"
        );
        let mut q = sqlx::query(&query).bind(now_ms()).bind(id).bind(worker);
        if let Some(e) = error {
            q = q.bind(e);
        }
        Ok(self.execute_and_notify(q, SONG_CHANNEL, id).await? == 1)
    }

    /// Put a failed song back in the queue (its owner asked for a retry).
    pub async fn requeue(&self, id: &str) -> Result<bool> {
        let q = sqlx::query(
            "UPDATE songs SET status = 'queued', stage = 'queued', progress = 0, step = 0, \
             total = 0, error = NULL, updated_ms = $1 \
             WHERE id = $2 AND status = 'failed'",
        )
        .bind(now_ms())
        .bind(id);
        Ok(self.execute_and_notify(q, QUEUE_CHANNEL, id).await? == 1)
    }

    /// Songs waiting in the queue, and when the oldest of them was made (ms), for metrics.
    pub async fn queue_stats(&self) -> Result<(i64, Option<i64>)> {
        self.fetch_one(sqlx::query_as(
            "SELECT COUNT(*), MIN(created_ms) FROM songs WHERE status = 'queued'",
        ))
        .await
    }
}
