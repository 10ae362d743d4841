//! `GET /metrics` (web nodes and workers): Prometheus' text format of what
//! `server::metrics` counts, with the queue's gauges read from the database at each
//! scrape.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::server::error::AppError;
use crate::server::metrics::{install, QUEUE_DEPTH, QUEUE_OLDEST_AGE};
use crate::server::state::AppState;

/// `GET /metrics`: the text exposition format; the queue's gauges are read from the
/// database at each scrape (it is the source of truth, whichever process made a song).
pub async fn render(State(state): State<AppState>) -> Result<impl IntoResponse, AppError> {
    let handle = install().ok_or_else(|| AppError::not_found("metrics"))?;
    let (depth, oldest) = state.db().queue_stats().await?;
    metrics::gauge!(QUEUE_DEPTH).set(depth as f64);
    let age = oldest.map_or(0.0, |ms| {
        (crate::server::db::now_ms() - ms).max(0) as f64 / 1000.0
    });
    metrics::gauge!(QUEUE_OLDEST_AGE).set(age);
    handle.run_upkeep();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    ))
}
