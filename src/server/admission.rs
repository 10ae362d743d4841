//! Who may add a song now: a per-client rate limit (token bucket) and bounds on the jobs a
//! client, and everyone together, may have waiting. A client is its IP address (an IPv6
//! /64, which one household or phone usually owns whole), not the owner cookie, which
//! anyone can drop.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use super::config::ServeConfig;
use super::ids::token_hash;
use super::songs::Refused;
use super::AppState;

/// The caller as the limits see it: a hash of its network address, never the address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client(pub String);

/// The address requests are counted under. Behind a reverse proxy (`--trust-proxy`) that
/// is the last X-Forwarded-For entry, the one the proxy itself appended.
pub fn client_of(headers: &HeaderMap, peer: Option<IpAddr>, trust_proxy: bool) -> Client {
    let forwarded = trust_proxy
        .then(|| {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .next_back()
        })
        .flatten();
    let key = match forwarded.or(peer) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        // In-process callers (tests, tools) have no address; they share one bucket.
        None => "local".to_string(),
    };
    Client(token_hash(&key)[..32].to_string())
}

/// Puts the caller's `Client` in the request's extensions.
pub async fn identify(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client = client_of(req.headers(), peer, state.config.trust_proxy);
    req.extensions_mut().insert(client);
    next.run(req).await
}

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
fn secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// May this client add a song now? Rate first (no database work for a flood), then the
/// queue bounds. Counting and inserting are not one transaction, so two requests at the
/// same instant can overshoot a bound by one; the rate limit keeps that small.
pub async fn admit(state: &AppState, client: &Client) -> Result<(), Refused> {
    if let Err(wait) = state.limiter.take(client, Instant::now()) {
        return Err(Refused::new(
            429,
            format!(
                "you are making songs faster than this server allows; try again in {} s",
                secs(wait)
            ),
        )
        .retry_after(secs(wait)));
    }
    let cfg: &ServeConfig = &state.config;
    let mine = state
        .db()
        .count_waiting_for(&client.0)
        .await
        .map_err(Refused::internal)?;
    if mine >= cfg.max_queued_per_client {
        return Err(Refused::new(
            429,
            format!(
                "you already have {mine} songs waiting or being made; add more once one is done"
            ),
        )
        .retry_after(30));
    }
    let (queued, running) = state
        .db()
        .count_waiting()
        .await
        .map_err(Refused::internal)?;
    if queued + running >= cfg.max_queued {
        return Err(Refused::new(
            503,
            "the queue is full right now; please try again in a few minutes",
        )
        .retry_after(120));
    }
    Ok(())
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

    #[test]
    fn clients_are_addresses_hashed_and_v6_is_grouped_by_64() {
        let h = HeaderMap::new();
        let a = client_of(&h, "2001:db8:1:2:aaaa::1".parse().ok(), false);
        let b = client_of(&h, "2001:db8:1:2:bbbb::9".parse().ok(), false);
        let c = client_of(&h, "2001:db8:1:3::1".parse().ok(), false);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(!a.0.contains("2001"), "the address itself is never kept");
        let v4 = client_of(&h, "192.0.2.7".parse().ok(), false);
        let mapped = client_of(&h, "::ffff:192.0.2.7".parse().ok(), false);
        assert_eq!(v4, mapped);
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.4".parse().expect("header"),
        );
        let peer = "10.0.0.1".parse().ok();
        assert_eq!(
            client_of(&h, peer, false),
            client_of(&HeaderMap::new(), peer, false)
        );
        assert_eq!(
            client_of(&h, peer, true),
            client_of(&HeaderMap::new(), "198.51.100.4".parse().ok(), false)
        );
    }
}
