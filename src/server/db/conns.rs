//! The connections the queries run on: sqlx's pool, with the connections whose work
//! finished kept here between queries instead of being handed back to it.
//!
//! Why: sqlx 0.8 pings every connection handed back to its pool (on a task of its own),
//! to find the ones a cancelled query left mid-way. That is a second round trip for every
//! query, and it cannot be turned off; on Postgres it doubled the database's work per page
//! view. A connection whose query ran to the end needs no such test, so it waits here for
//! the next query. Only one whose work failed or was cancelled goes back to sqlx, whose
//! ping then tells a broken connection (closed) from a good one (reused).
//!
//! Kept connections do not expire (sqlx's idle timeout and lifetime apply to its own idle
//! ones): one that broke meanwhile (the database restarted) fails its next query, as it
//! would have in sqlx's pool without a test before each query, and is then handed back
//! and closed.
//!
//! A semaphore with as many permits as the pool has connections bounds both together, so
//! a query that finds none idle here always finds one in sqlx's pool (or room for one).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::{Context, Result};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::Semaphore;

pub(crate) struct Conns {
    pool: AnyPool,
    /// Connections whose last work finished. None once closing: whatever finishes then
    /// goes back to sqlx, whose `close` waits for every connection it lent.
    idle: Mutex<Option<Vec<PoolConnection<Any>>>>,
    permits: Semaphore,
}

impl Conns {
    pub fn new(pool: AnyPool, size: u32) -> Arc<Self> {
        Arc::new(Self {
            pool,
            idle: Mutex::new(Some(Vec::with_capacity(size as usize))),
            permits: Semaphore::new(size as usize),
        })
    }

    /// Run `work` on a connection. The connection waits here for the next query if `work`
    /// returns Ok; if it fails, or this future is dropped before it ends, the connection
    /// goes back to sqlx to be tested.
    pub async fn with<T>(
        &self,
        work: impl AsyncFnOnce(&mut AnyConnection) -> Result<T>,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .context("the database is closed")?;
        let kept = self.idle().as_mut().and_then(Vec::pop);
        let mut conn = match kept {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        let out = work(&mut conn).await;
        if out.is_ok() {
            if let Some(idle) = self.idle().as_mut() {
                // Last in, first out: few connections stay busy and warm.
                idle.push(conn);
            }
        }
        out
    }

    /// Stop lending, hand every kept connection back, and close them all.
    pub async fn close(&self) {
        self.permits.close();
        let kept = self.idle().take();
        drop(kept);
        self.pool.close().await;
    }

    /// How many connections wait here.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.idle().as_ref().map_or(0, Vec::len)
    }

    fn idle(&self) -> MutexGuard<'_, Option<Vec<PoolConnection<Any>>>> {
        // A panic while the list was held cannot leave it half-changed (push and pop).
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::Db;

    async fn db(dir: &tempfile::TempDir) -> Db {
        let url = format!("sqlite:{}", dir.path().join("db.sqlite").display());
        Db::connect(&url).await.expect("db")
    }

    async fn count(db: &Db) -> i64 {
        let (n,): (i64,) = db
            .fetch_one(sqlx::query_as("SELECT COUNT(*) FROM rate_buckets"))
            .await
            .expect("count");
        n
    }

    #[tokio::test]
    async fn a_connection_whose_work_finished_is_kept_and_one_whose_work_failed_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = db(&dir).await;
        assert_eq!(db.conns.kept(), 0);
        // A temporary table lives on one connection only.
        db.with(async |c| Ok(sqlx::query("CREATE TEMP TABLE here (x)").execute(c).await?))
            .await
            .expect("create");
        assert_eq!(db.conns.kept(), 1);
        for _ in 0..5 {
            db.with(async |c| Ok(sqlx::query("SELECT * FROM here").execute(c).await?))
                .await
                .expect("the same connection again");
            assert_eq!(db.conns.kept(), 1);
        }
        let failed = db
            .with(async |c| Ok(sqlx::query("SELECT * FROM nowhere").execute(c).await?))
            .await;
        assert!(failed.is_err());
        assert_eq!(db.conns.kept(), 0, "sqlx tests it before it is lent again");
        assert_eq!(count(&db).await, 0);
        db.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_at_once_share_the_few_connections_and_close_waits_for_none_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = db(&dir).await;
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.execute(
                        sqlx::query(
                            "INSERT INTO rate_buckets (client_hash, tokens, updated_ms) \
                             VALUES ($1, 1, 0)",
                        )
                        .bind(format!("c{i}")),
                    )
                    .await
                    .map(|_| ())
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("insert");
        }
        assert_eq!(count(&db).await, 40);
        tokio::time::timeout(Duration::from_secs(10), db.close())
            .await
            .expect("close hands back the kept connections and returns");
        assert!(db
            .fetch_one(sqlx::query_as::<_, (i64,)>("SELECT 1"))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn work_cut_off_or_failed_in_a_transaction_leaves_nothing_and_the_database_usable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = db(&dir).await;
        let insert =
            "INSERT INTO rate_buckets (client_hash, tokens, updated_ms) VALUES ('a', 1, 0)";
        // Cut off half-way (a client went away): the insert is rolled back.
        let cut = tokio::time::timeout(
            Duration::from_millis(200),
            db.write(async |c| {
                sqlx::query(insert).execute(&mut *c).await?;
                std::future::pending::<()>().await;
                Ok(())
            }),
        )
        .await;
        assert!(cut.is_err(), "it was cut off");
        // Failed half-way: rolled back too.
        let failed = db
            .write(async |c| {
                sqlx::query(insert).execute(&mut *c).await?;
                sqlx::query("SELECT * FROM no_such_table")
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(count(&db).await, 0);
        // And the write lock is free again on every connection.
        for _ in 0..4 {
            db.write(async |c| Ok(sqlx::query(insert).execute(c).await?))
                .await
                .expect("write");
            db.execute(sqlx::query("DELETE FROM rate_buckets"))
                .await
                .expect("delete");
        }
        db.close().await;
    }
}
