//! Songs in the database: the durable row of each song, which is also the job queue.

use anyhow::Result;
use sqlx::FromRow;

use super::{now_ms, Db, QUEUE_CHANNEL};
use crate::api::types::{MadeFrom, Progress, SongOptions, Stage, Status};

/// How many songs may wait or be made at once: all together, and per client.
#[derive(Debug, Clone, Copy)]
pub struct QueueBounds {
    pub total: u32,
    pub per_client: u32,
}

/// Whether a song went into the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    Yes,
    /// The client has this many songs waiting or being made already.
    ClientFull(u32),
    QueueFull,
}

/// An owner's songs, newest first.
pub(super) const SONGS_OF: &str =
    "SELECT * FROM songs WHERE owner_hash = $1 ORDER BY created_ms DESC LIMIT 500";

/// The key of the Postgres advisory lock that adders of songs take in turn (any number no
/// other lock in this database uses).
const ADD_SONG_LOCK: i64 = 0x534e_4753; // "SNGS"

impl Db {
    /// Add a queued song if the bounds leave room. The counts and the insert are one
    /// transaction that adders take in turn (SQLite: BEGIN IMMEDIATE takes the write lock;
    /// Postgres: a transaction-scoped advisory lock), so requests at the same moment, on
    /// one web node or several, can never overfill the queue.
    pub async fn insert_song_within(
        &self,
        s: &NewSong<'_>,
        bounds: QueueBounds,
    ) -> Result<Admitted> {
        self.write(async |tx| {
            if !self.sqlite {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(ADD_SONG_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let (mine,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM songs WHERE client_hash = $1 \
             AND status IN ('queued', 'running')",
            )
            .bind(s.client_hash)
            .fetch_one(&mut *tx)
            .await?;
            if mine >= bounds.per_client as i64 {
                return Ok(Admitted::ClientFull(mine as u32));
            }
            let (all,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM songs WHERE status IN ('queued', 'running')")
                    .fetch_one(&mut *tx)
                    .await?;
            if all >= bounds.total as i64 {
                return Ok(Admitted::QueueFull);
            }
            let now = now_ms();
            sqlx::query(
                "INSERT INTO songs (id, slug, owner_hash, client_hash, status, stage, options, \
             seed, has_photo, title, noise, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, 'queued', 'queued', $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(s.id)
            .bind(s.slug)
            .bind(s.owner_hash)
            .bind(s.client_hash)
            .bind(serde_json::to_string(s.options)?)
            .bind(s.seed as i64)
            .bind(s.has_photo as i64)
            .bind(s.title)
            .bind(s.noise as i64)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // Idle workers on any machine wake at the commit.
            self.notify_on(tx, QUEUE_CHANNEL, s.id).await?;
            Ok(Admitted::Yes)
        })
        .await
    }

    pub async fn song_by_id(&self, id: &str) -> Result<Option<SongRow>> {
        self.fetch_optional(sqlx::query_as("SELECT * FROM songs WHERE id = $1").bind(id))
            .await
    }

    pub async fn song_by_slug(&self, slug: &str) -> Result<Option<SongRow>> {
        self.fetch_optional(sqlx::query_as("SELECT * FROM songs WHERE slug = $1").bind(slug))
            .await
    }

    /// Jobs ahead of a song while it waits in the queue; None once it has left it.
    pub async fn queue_position(&self, row: &SongRow) -> Result<Option<u32>> {
        if row.status != Status::Queued {
            return Ok(None);
        }
        let (n,): (i64,) = self
            .fetch_one(
                sqlx::query_as(
                    "SELECT COUNT(*) FROM songs WHERE status IN ('queued', 'running') \
             AND (created_ms < $1 OR (created_ms = $2 AND id < $3))",
                )
                .bind(row.created_ms)
                .bind(row.created_ms)
                .bind(&row.id),
            )
            .await?;
        Ok(Some(n as u32))
    }

    pub async fn count_waiting(&self) -> Result<(u32, u32)> {
        let (queued, running): (i64, i64) = self
            .fetch_one(sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN status = 'queued' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END), 0) FROM songs",
            ))
            .await?;
        Ok((queued as u32, running as u32))
    }

    /// Songs of one client still waiting or being made.
    pub async fn count_waiting_for(&self, client_hash: &str) -> Result<u32> {
        let (n,): (i64,) = self
            .fetch_one(
                sqlx::query_as(
                    "SELECT COUNT(*) FROM songs WHERE client_hash = $1 \
             AND status IN ('queued', 'running')",
                )
                .bind(client_hash),
            )
            .await?;
        Ok(n as u32)
    }

    /// Every song id there is (for the start-up sweep of media left by a crash).
    pub async fn song_ids(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = self
            .fetch_all(sqlx::query_as("SELECT id FROM songs"))
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// What the composer made, stored as soon as it is known.
    pub async fn set_made_from(&self, id: &str, made: &MadeOf) -> Result<()> {
        self.execute(sqlx::query(
            "UPDATE songs SET caption = $1, prompt = $2, parts = $3, palette = $4, title = $5, \
             updated_ms = $6 WHERE id = $7",
        )
        .bind(&made.caption)
        .bind(&made.prompt)
        .bind(serde_json::to_string(&made.parts)?)
        .bind(serde_json::to_string(&made.palette)?)
        .bind(&made.title)
        .bind(now_ms())
        .bind(id))
        .await?;
        Ok(())
    }
}

pub struct NewSong<'a> {
    pub id: &'a str,
    pub slug: &'a str,
    pub owner_hash: &'a str,
    /// Who sent it, as `admission::Client` (for the per-client queue bound).
    pub client_hash: &'a str,
    pub options: &'a SongOptions,
    pub seed: u64,
    pub has_photo: bool,
    pub title: &'a str,
    pub noise: bool,
}

/// What the composer made of a job.
pub struct MadeOf {
    pub caption: Option<String>,
    pub prompt: String,
    pub parts: Vec<MadeFrom>,
    pub palette: Vec<String>,
    pub title: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct SongRow {
    pub id: String,
    pub slug: String,
    pub owner_hash: String,
    #[sqlx(try_from = "String")]
    pub status: Status,
    #[sqlx(try_from = "String")]
    pub stage: Stage,
    pub step: i64,
    pub total: i64,
    pub progress: f64,
    pub attempts: i64,
    pub options: String,
    pub seed: i64,
    pub has_photo: i64,
    pub title: String,
    pub caption: Option<String>,
    pub prompt: Option<String>,
    pub parts: Option<String>,
    pub palette: Option<String>,
    pub noise: i64,
    pub error: Option<String>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub updated_ms: i64,
    /// While it is made: the audio that can be heard (`api::live::Live` as JSON).
    pub live: Option<String>,
}

impl SongRow {
    pub fn options(&self) -> SongOptions {
        serde_json::from_str(&self.options).unwrap_or_default()
    }

    pub fn progress(&self, queue_position: Option<u32>) -> Progress {
        Progress {
            status: self.status,
            stage: self.stage,
            progress: self.progress as f32,
            step: self.step as u32,
            total: self.total as u32,
            eta_s: None,
            queue_position,
            error: self.error.clone(),
            live: match self.status {
                Status::Running => self
                    .live
                    .as_deref()
                    .and_then(|l| serde_json::from_str(l).ok()),
                _ => None,
            },
        }
    }
}
