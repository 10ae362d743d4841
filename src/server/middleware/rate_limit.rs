//! A per-client token bucket for new songs: `burst` at once, then `per_minute` more each
//! minute. In memory, per web node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The caller as the limits see it: a hash of its network address, never the address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client(pub String);

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per client: `burst` songs at once, then `per_minute` more each minute.
pub struct RateLimiter {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Forget idle clients once this many are remembered (a full bucket says nothing).
const PRUNE_AT: usize = 10_000;

impl RateLimiter {
    pub fn new(per_minute: f64, burst: u32) -> Self {
        Self {
            per_minute: per_minute.max(0.0),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token, or say how long until one is there.
    pub fn take(&self, client: &Client, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= PRUNE_AT {
            let (rate, burst) = (self.per_minute / 60.0, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(client.0.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let rate = self.per_minute / 60.0;
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        if rate <= 0.0 {
            return Err(Duration::from_secs(3600));
        }
        Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
    }
}

/// Whole seconds for Retry-After, at least one.
pub fn secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(6.0, 2);
        let c = Client("a".into());
        let t0 = Instant::now();
        assert!(limiter.take(&c, t0).is_ok());
        assert!(limiter.take(&c, t0).is_ok());
        let wait = limiter.take(&c, t0).expect_err("third in a row is refused");
        assert_eq!(secs(wait), 10, "6 per minute: one every 10 s");
        // Another client has its own bucket.
        assert!(limiter.take(&Client("b".into()), t0).is_ok());
        assert!(limiter.take(&c, t0 + Duration::from_secs(10)).is_ok());
        assert!(limiter.take(&c, t0 + Duration::from_secs(11)).is_err());
    }
}
