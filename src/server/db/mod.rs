//! The database: one sqlx `AnyPool` over SQLite (default, WAL) or Postgres, migrated at
//! start from `migrations/`, whose connections are lent through `conns`. Songs in `songs`,
//! which is also the job queue (`queue`), playlists in `playlists`, song-start allowances
//! in `rate_buckets` (`rate`).
mod conns;
pub mod playlists;
pub mod queue;
pub mod rate;
pub mod songs;

use anyhow::{Context, Result};
use std::sync::Arc;

use sqlx::any::{AnyArguments, AnyPoolOptions, AnyQueryResult, AnyRow};
use sqlx::query::{Query, QueryAs};
use sqlx::{Any, AnyConnection, Connection, Executor, FromRow};

use conns::Conns;

pub use playlists::PlaylistRow;
pub use queue::Lease;
pub use songs::{Admitted, MadeOf, NewSong, QueueBounds, SongRow};

/// Postgres channels: a song was added (workers wake), a song's row changed (web nodes
/// re-read it for the pages that follow it).
pub const QUEUE_CHANNEL: &str = "snapsong_queue";
pub const SONG_CHANNEL: &str = "snapsong_song";

#[derive(Clone)]
pub struct Db {
    conns: Arc<Conns>,
    /// SQLite (else Postgres): the two take a write lock differently.
    pub(crate) sqlite: bool,
    /// Where it is (a Postgres listener opens its own connection there).
    url: Arc<str>,
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
        let size = if sqlite { 3 } else { 16 };
        let pool = AnyPoolOptions::new()
            // SQLite: few connections. Each is a thread that every query is handed to and
            // back from, and SQLite has one writer anyway; with 8, the hand-offs on a
            // loaded 2-core machine lengthened the page views' tail (scripts/bench/load,
            // alternated: p99 87 and 100 ms with 8, 70 and 63 ms with 3). No transaction
            // here takes a second connection while it holds one.
            .max_connections(size)
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
            conns: Conns::new(pool, size),
            sqlite,
            url: url.into(),
        })
    }

    /// Run `work` on one pooled connection (several queries then wait for the pool once).
    pub async fn with<T>(
        &self,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T>,
    ) -> Result<T> {
        self.conns.with(work).await
    }

    /// Run `work` in a transaction that writes, committed if it returns Ok and rolled back
    /// otherwise. On SQLite it takes the write lock at once (BEGIN IMMEDIATE), so what it
    /// reads cannot change before it writes.
    pub async fn write<T>(
        &self,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T>,
    ) -> Result<T> {
        let begin = if self.sqlite {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        self.with(async |conn| {
            let mut tx = conn.begin_with(begin).await?;
            let out = work(&mut *tx).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    /// Tell every node listening on `channel` (Postgres NOTIFY; SQLite has no other
    /// nodes to tell, and the pollers read the rows). Inside a transaction it is sent when
    /// the transaction commits, and not at all if it does not.
    pub async fn notify_on(
        &self,
        conn: &mut AnyConnection,
        channel: &str,
        payload: &str,
    ) -> Result<()> {
        if !self.sqlite {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// Run `q`, then tell `channel`'s listeners, on one connection. Returns the rows the
    /// query changed.
    pub async fn execute_and_notify<'q>(
        &self,
        q: Query<'q, Any, AnyArguments<'q>>,
        channel: &str,
        payload: &str,
    ) -> Result<u64> {
        self.with(async |conn| {
            let changed = q.execute(&mut *conn).await?.rows_affected();
            self.notify_on(conn, channel, payload).await?;
            Ok(changed)
        })
        .await
    }

    /// One query on a pooled connection: its rows, or what it did.
    pub async fn fetch_one<'q, O>(&self, q: QueryAs<'q, Any, O, AnyArguments<'q>>) -> Result<O>
    where
        O: Send + Unpin + for<'r> FromRow<'r, AnyRow>,
    {
        self.with(async |c| Ok(q.fetch_one(c).await?)).await
    }

    pub async fn fetch_optional<'q, O>(
        &self,
        q: QueryAs<'q, Any, O, AnyArguments<'q>>,
    ) -> Result<Option<O>>
    where
        O: Send + Unpin + for<'r> FromRow<'r, AnyRow>,
    {
        self.with(async |c| Ok(q.fetch_optional(c).await?)).await
    }

    pub async fn fetch_all<'q, O>(&self, q: QueryAs<'q, Any, O, AnyArguments<'q>>) -> Result<Vec<O>>
    where
        O: Send + Unpin + for<'r> FromRow<'r, AnyRow>,
    {
        self.with(async |c| Ok(q.fetch_all(c).await?)).await
    }

    pub async fn execute<'q>(&self, q: Query<'q, Any, AnyArguments<'q>>) -> Result<AnyQueryResult> {
        self.with(async |c| Ok(q.execute(c).await?)).await
    }

    /// A Postgres database's URL, for a listener of its notifications.
    pub fn postgres_url(&self) -> Option<&str> {
        (!self.sqlite).then_some(&*self.url)
    }

    pub async fn close(&self) {
        self.conns.close().await;
    }
}

/// Hide a password in a database URL before it reaches a log or an error.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}
