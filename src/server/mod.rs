//! The web server (ssr only). A request's way through it:
//!
//! `router` (middleware: `middleware::{guard, admission, owner}`) → `http::{rest, events,
//! media}` or a Leptos page / server function (`crate::api`) → the services `songs` and
//! `playlists` → `db` (durable rows) and `storage` (media files). The `worker` takes queued
//! songs from `db`, runs them through `crate::ml` and writes the audio to `storage`,
//! publishing progress that `http::events` streams to the song page.
//!
//! `state` builds the shared `AppState`; `config` is every flag; `error` is the one error
//! type (and the error policy for every layer); `metrics` counts for Prometheus.

pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod ids;
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
pub use router::router;
pub use state::{build, AppState, Built};

/// Serve until SIGINT/SIGTERM; then stop taking jobs, let the current one stop and go
/// back to the queue, and close the database.
pub async fn serve(cfg: ServeConfig) -> Result<()> {
    let addr = cfg.addr;
    let Built {
        state,
        models,
        workers,
    } = build(cfg).await?;
    let queue = state.queue.clone();
    let worker = tokio::spawn(queue.clone().work(models, workers));
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!("listening on http://{addr}");
    let stopping = queue.stopping.clone();
    let wake = queue.wake.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new jobs; the current one goes back to the queue");
        stopping.store(true, Ordering::SeqCst);
        wake.notify_waiters();
    })
    .await?;
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
    queue.db.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
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
