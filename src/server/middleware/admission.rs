//! Who may add a song now: a per-client rate limit (token bucket) and bounds on the jobs a
//! client, and everyone together, may have waiting. A client is its IP address (an IPv6
//! /64, which one household or phone usually owns whole), not the owner cookie, which
//! anyone can drop.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::server::config::ServeConfig;
use crate::server::db::rate::RateLimit;
use crate::server::db::QueueBounds;
use crate::server::error::AppError;
use crate::server::ids::token_hash;
use crate::server::state::AppState;

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

/// The caller as the limits see it: a hash of its network address, never the address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client(pub String);

/// Whole seconds for Retry-After, at least one.
fn secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// This server's song-start rate per client.
pub fn rate_limit(cfg: &ServeConfig) -> RateLimit {
    RateLimit {
        per_minute: cfg.songs_per_minute,
        burst: cfg.songs_burst,
    }
}

/// May this client add a song now? Its token bucket first (one UPDATE), then a first look
/// at the queue bounds, before any photo is decoded; the insert counts again, in one
/// transaction with it (`Db::insert_song_within`). Both live in the database, so every
/// web node draws on the same limits.
pub async fn admit(state: &AppState, client: &Client) -> Result<(), AppError> {
    let taken = state
        .db()
        .take_song_token(&client.0, rate_limit(&state.config))
        .await?;
    if let Err(wait) = taken {
        return Err(AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "you are making songs faster than this server allows; try again in {} s",
                secs(wait)
            ),
        )
        .retry_after(secs(wait)));
    }
    // A first look, to refuse before a photo is decoded; the insert checks again, in
    // one transaction with the counts (`Db::insert_song_within`).
    let cfg: &ServeConfig = &state.config;
    let mine = state.db().count_waiting_for(&client.0).await?;
    if mine >= cfg.max_queued_per_client {
        return Err(client_full(mine));
    }
    let (queued, running) = state.db().count_waiting().await?;
    if queued + running >= cfg.max_queued {
        return Err(queue_full());
    }
    Ok(())
}

/// The queue bounds of this server.
pub fn bounds(cfg: &ServeConfig) -> QueueBounds {
    QueueBounds {
        total: cfg.max_queued,
        per_client: cfg.max_queued_per_client,
    }
}

/// The client has `mine` songs waiting or being made: its share of the queue.
pub fn client_full(mine: u32) -> AppError {
    AppError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("you already have {mine} songs waiting or being made; add more once one is done"),
    )
    .retry_after(30)
}

pub fn queue_full() -> AppError {
    AppError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the queue is full right now; please try again in a few minutes",
    )
    .retry_after(120)
}

#[cfg(test)]
mod tests {
    use super::*;

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
