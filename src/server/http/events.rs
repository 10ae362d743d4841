//! The song page's live progress: server-sent events, one JSON `Progress` per change,
//! from the worker's in-process hub. The row is the source of truth: the first event and
//! any missed change (a lagging reader) are read from it.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::ReceiverStream;

use crate::api::types::{is_id, Progress, Status};
use crate::server::db::Db;
use crate::server::error::AppError;
use crate::server::metrics::SseClient;
use crate::server::state::AppState;
use crate::server::worker::progress::QUEUE_MOVED;

/// Server-sent events: the song's progress now, then every change until it is ready or
/// failed. Waiting songs also hear when the queue moves (their position changes).
#[utoipa::path(
    get, path = "/api/songs/{id}/events", tag = "songs",
    params(("id" = String, Path, description = "The song's id")),
    responses(
        (status = 200, description = "A stream of progress events, one JSON object per `data:` line", content_type = "text/event-stream", body = Progress),
        (status = 404, description = "No such song", body = crate::server::http::openapi::ErrorBody),
    )
)]
pub async fn song_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, AppError> {
    if !is_id(&id) {
        return Err(AppError::not_found("song"));
    }
    // Subscribe before reading the row, so no change falls between the two.
    let mut changes = state.queue.hub.subscribe();
    let db = state.db().clone();
    let current = |db: Db, id: String| async move {
        let row = db.song_by_id(&id).await.ok().flatten()?;
        Some(row.progress(db.queue_position(&row).await.ok().flatten()))
    };
    let mut first = current(db.clone(), id.clone())
        .await
        .ok_or_else(|| AppError::not_found("song"))?;
    // A page that opens mid-song joins the audio at once (the row does not keep it).
    if first.status == Status::Running {
        first.live = state.queue.hub.live.info(&id);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Progress>(32);
    tokio::spawn(async move {
        // Counted while this task lives: until the client goes or the song settles.
        let _client = SseClient::connected();
        let settled = |p: &Progress| p.status.is_settled();
        let mut last = first.clone();
        if tx.send(first).await.is_err() || settled(&last) {
            return;
        }
        loop {
            let next = match changes.recv().await {
                Ok((sid, p)) if sid == id => Some(p),
                Ok((sid, _)) if sid == QUEUE_MOVED && last.status == Status::Queued => {
                    current(db.clone(), id.clone()).await
                }
                Ok(_) => None,
                Err(RecvError::Lagged(_)) => current(db.clone(), id.clone()).await,
                Err(RecvError::Closed) => return,
            };
            if let Some(p) = next {
                if p != last {
                    last = p.clone();
                    if tx.send(p).await.is_err() || settled(&last) {
                        return;
                    }
                }
            }
        }
    });
    let stream = ReceiverStream::new(rx)
        .map(|p| Ok::<_, Infallible>(Event::default().json_data(&p).unwrap_or_default()));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
