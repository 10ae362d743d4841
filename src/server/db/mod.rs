//! The database: one sqlx `AnyPool` over SQLite (default, WAL) or Postgres, migrated at
//! start from `migrations/`. Songs in `songs`, which is also the job queue (`queue`),
//! playlists in `playlists`, song-start allowances in `rate_buckets` (`rate`).
pub mod playlists;
pub mod queue;
pub mod rate;
pub mod songs;

use anyhow::{Context, Result};
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Executor, Transaction};

pub use playlists::PlaylistRow;
pub use queue::Lease;
pub use songs::{Admitted, MadeOf, NewSong, QueueBounds, SongRow};

/// Postgres channels: a song was added (workers wake), a song's row changed (web nodes
/// re-read it for the pages that follow it).
pub const QUEUE_CHANNEL: &str = "snapsong_queue";
pub const SONG_CHANNEL: &str = "snapsong_song";

#[derive(Clone)]
pub struct Db {
    pub(crate) pool: AnyPool,
    /// SQLite (else Postgres): the two take a write lock differently.
    pub(crate) sqlite: bool,
    /// Where it is (a Postgres listener opens its own connection there).
    url: std::sync::Arc<str>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Db {
    /// Connect (creating a SQLite file if needed) and bring the schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let url = if sqlite && !url.contains("mode=") && !url.contains(":memory:") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        let pool = AnyPoolOptions::new()
            // SQLite: few connections. Each is a thread that every query is handed to and
            // back from, and SQLite has one writer anyway; with 8, the hand-offs on a
            // loaded 2-core machine lengthened the page views' tail (scripts/bench/load,
            // alternated: p99 87 and 100 ms with 8, 70 and 63 ms with 3). No transaction
            // here takes a second connection while it holds one.
            .max_connections(if sqlite { 3 } else { 16 })
            // No ping before every query: it doubled the round trips of a page view. A
            // broken connection still fails its query and is dropped from the pool.
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // WAL: readers never wait for the worker's writes. A busy timeout
                        // instead of "database is locked" errors under load.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA busy_timeout = 5000",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the database {}", redact(&url)))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .context("cannot migrate the database")?;
        Ok(Self {
            pool,
            sqlite,
            url: url.into(),
        })
    }

    /// A transaction that writes: on SQLite it takes the write lock at once (BEGIN
    /// IMMEDIATE), so what it reads cannot change before it writes. Dropped without
    /// `commit`, it rolls back.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        let begin = if self.sqlite {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        Ok(self.pool.begin_with(begin).await?)
    }

    /// Tell every node listening on `channel` (Postgres NOTIFY; SQLite has no other
    /// nodes to tell, and the pollers read the rows).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        self.notify_on(&self.pool, channel, payload).await
    }

    /// As `notify`, sent when the transaction commits (and not at all if it does not).
    pub async fn notify_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        channel: &str,
        payload: &str,
    ) -> Result<()> {
        self.notify_on(&mut **tx, channel, payload).await
    }

    async fn notify_on<'e>(
        &self,
        on: impl Executor<'e, Database = Any>,
        channel: &str,
        payload: &str,
    ) -> Result<()> {
        if !self.sqlite {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(on)
                .await?;
        }
        Ok(())
    }

    /// A Postgres database's URL, for a listener of its notifications.
    pub fn postgres_url(&self) -> Option<&str> {
        (!self.sqlite).then_some(&*self.url)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Hide a password in a database URL before it reaches a log or an error.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}
