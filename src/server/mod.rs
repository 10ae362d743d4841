//! The web server (ssr only). A request's way through it:
//!
//! `router` (middleware: `middleware::{guard, admission, owner}`) → `http::{rest, events,
//! media}` or a Leptos page / server function (`crate::api`) → the services `songs` and
//! `playlists` → `db` (durable rows) and `storage` (media files). The `worker` takes queued
//! songs from `db`, runs them through `crate::ml` and writes the audio to `storage`,
//! publishing progress that `http::events` streams to the song page.
//!
//! `state` builds the shared `AppState` for a process's role (`serve`, a web node with
//! `--no-worker`, or `worker`); `listen` follows what other nodes do (Postgres
//! notifications); `config` is every flag; `error` is the one error type (and the error
//! policy for every layer); `metrics` counts for Prometheus.

pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod ids;
pub mod listen;
pub mod metrics;
pub mod middleware;
pub mod playlists;
pub mod router;
pub mod song_options;
pub mod songs;
pub mod state;
pub mod storage;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};

pub use config::ServeConfig;
pub use error::AppError;
use middleware::admission::rate_limit;
pub use router::router;
pub use state::{build, AppState, Built, Role, Worker};

/// Serve until SIGINT/SIGTERM; then stop taking jobs, let the current one stop and go
/// back to the queue, and close the database. With `--no-worker`, a web node only.
pub async fn serve(cfg: ServeConfig) -> Result<()> {
    let addr = cfg.web_addr();
    let Built { state, worker } = build(cfg, Role::Serve).await?;
    let app = router(state.clone());
    run(state, worker, Some((addr, app))).await
}

/// A worker process: makes songs from the shared queue until SIGINT/SIGTERM; answers only
/// /healthz and /metrics, and only if given `--addr`.
pub async fn work(cfg: ServeConfig) -> Result<()> {
    let addr = cfg.addr;
    let Built { state, worker } = build(cfg, Role::Worker).await?;
    let app = addr.map(|a| (a, router::worker_router(state.clone())));
    run(state, worker, app).await
}

/// Run the worker (if any) and the HTTP app (if any) until a stop signal.
async fn run(
    state: AppState,
    worker: Option<Worker>,
    app: Option<(SocketAddr, axum::Router)>,
) -> Result<()> {
    let queue = state.queue.clone();
    listen::spawn(&queue);
    upkeep(&state);
    let worker = worker.map(|w| tokio::spawn(queue.clone().work(w.models, w.threads, w.batch)));
    let stop = {
        let (stopping, wake) = (queue.stopping.clone(), queue.wake.clone());
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down: no new jobs; the current one goes back to the queue");
            stopping.store(true, Ordering::SeqCst);
            wake.notify_waiters();
        }
    };
    match app {
        Some((addr, app)) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!("listening on http://{addr}");
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop)
            .await?;
        }
        None => stop.await,
    }
    if let Some(worker) = worker {
        let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
    }
    queue.db.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Now and then: forget rate-limit buckets that filled up again.
fn upkeep(state: &AppState) {
    let (db, limit) = (state.db().clone(), rate_limit(&state.config));
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            every.tick().await;
            if let Err(e) = db.prune_rate_buckets(limit).await {
                tracing::warn!("cannot prune the rate-limit buckets: {e:#}");
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
