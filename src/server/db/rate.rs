//! Song-start allowances: a token bucket per client (`burst` songs at once, then
//! `per_minute` more each minute), kept in the database so that every web node draws on
//! the same bucket. One conditional UPDATE takes a token: atomic on SQLite and Postgres.

use std::time::Duration;

use anyhow::Result;

use super::{now_ms, Db};

/// Refill and spending of one client's bucket.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_minute: f64,
    pub burst: u32,
}

impl RateLimit {
    fn per_ms(&self) -> f64 {
        self.per_minute.max(0.0) / 60_000.0
    }
    fn burst(&self) -> f64 {
        f64::from(self.burst.max(1))
    }
}

impl Db {
    /// Take one token from the client's bucket, or say how long until one is there.
    pub async fn take_song_token(
        &self,
        client_hash: &str,
        limit: RateLimit,
    ) -> Result<std::result::Result<(), Duration>> {
        let now = now_ms();
        let (rate, burst) = (limit.per_ms(), limit.burst());
        self.execute(
            sqlx::query(
                "INSERT INTO rate_buckets (client_hash, tokens, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (client_hash) DO NOTHING",
            )
            .bind(client_hash)
            .bind(burst)
            .bind(now),
        )
        .await?;
        // The bucket refilled since it was last touched, capped at the burst.
        // (Casts: Postgres would otherwise take the rate for a whole number.)
        let gain = "(CAST($1 AS DOUBLE PRECISION) - updated_ms) * CAST($2 AS DOUBLE PRECISION)";
        let refilled = format!(
            "CASE WHEN tokens + {gain} > CAST($3 AS DOUBLE PRECISION) \
             THEN CAST($3 AS DOUBLE PRECISION) ELSE tokens + {gain} END"
        );
        let taken = self
            .execute(
                sqlx::query(&format!(
                    "UPDATE rate_buckets SET tokens = {refilled} - 1, updated_ms = $1 \
             WHERE client_hash = $4 AND {refilled} >= 1"
                ))
                .bind(now)
                .bind(rate)
                .bind(burst)
                .bind(client_hash),
            )
            .await?
            .rows_affected();
        if taken == 1 {
            return Ok(Ok(()));
        }
        if rate <= 0.0 {
            return Ok(Err(Duration::from_secs(3600)));
        }
        let (tokens, updated): (f64, i64) = self
            .fetch_one(
                sqlx::query_as(
                    "SELECT tokens, updated_ms FROM rate_buckets WHERE client_hash = $1",
                )
                .bind(client_hash),
            )
            .await?;
        let have = (tokens + (now - updated) as f64 * rate).min(burst);
        Ok(Err(Duration::from_secs_f64(
            ((1.0 - have) / rate / 1000.0).max(0.001),
        )))
    }

    /// Forget buckets that have filled up again (a full bucket says nothing).
    pub async fn prune_rate_buckets(&self, limit: RateLimit) -> Result<u64> {
        let rate = limit.per_ms();
        if rate <= 0.0 {
            return Ok(0);
        }
        let full_after_ms = (limit.burst() / rate) as i64;
        Ok(self
            .execute(
                sqlx::query("DELETE FROM rate_buckets WHERE updated_ms < $1")
                    .bind(now_ms() - full_after_ms),
            )
            .await?
            .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_then_the_rate_and_every_client_its_own_bucket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("db.sqlite").display());
        let db = Db::connect(&url).await.expect("db");
        let limit = RateLimit {
            per_minute: 6.0,
            burst: 2,
        };
        assert!(db.take_song_token("a", limit).await.unwrap().is_ok());
        assert!(db.take_song_token("a", limit).await.unwrap().is_ok());
        let wait = db
            .take_song_token("a", limit)
            .await
            .unwrap()
            .expect_err("a third at once is refused");
        // 6 a minute: the next token is at most 10 s away.
        assert!(wait <= Duration::from_secs(10) && wait > Duration::from_secs(9));
        assert!(db.take_song_token("b", limit).await.unwrap().is_ok());
        // Nothing is full yet, so nothing is pruned.
        assert_eq!(db.prune_rate_buckets(limit).await.unwrap(), 0);
    }
}
