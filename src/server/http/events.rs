//! The song page's live progress: server-sent events, one JSON `Progress` per change.
//! A song made in this process is followed through the in-process hub; one made by a
//! worker elsewhere through its row, re-read when another node says it changed (Postgres
//! notifications, `server::listen`) and every `ROW_POLL` in any case, so a missed
//! notification (a reconnect, a lagging reader) or a database without them (SQLite shared
//! by several processes) only delays a change. The row is the source of truth.

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

/// How often a song made elsewhere (or still waiting) is re-read from its row.
const ROW_POLL: Duration = Duration::from_secs(1);

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
    // A page that opens mid-song joins the audio at once (this process's newest word on
    // it if the song is made here; the row's otherwise).
    if first.status == Status::Running {
        first.live = state.queue.hub.live.info(&id).or(first.live);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Progress>(32);
    let hub = state.queue.hub.clone();
    let mut remote = hub.subscribe_changes();
    tokio::spawn(async move {
        // Counted while this task lives: until the client goes or the song settles.
        let _client = SseClient::connected();
        let settled = |p: &Progress| p.status.is_settled();
        let mut last = first.clone();
        if tx.send(first).await.is_err() || settled(&last) {
            return;
        }
        let mut poll = tokio::time::interval(ROW_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reread = || current(db.clone(), id.clone());
            let next = tokio::select! {
                change = changes.recv() => match change {
                    Ok((sid, p)) if sid == id => Some(p),
                    Ok((sid, _)) if sid == QUEUE_MOVED && last.status == Status::Queued => {
                        reread().await
                    }
                    Ok(_) => None,
                    Err(RecvError::Lagged(_)) => reread().await,
                    Err(RecvError::Closed) => return,
                },
                change = remote.recv() => match change {
                    Ok(sid) if sid == id && !hub.is_local(&id) => reread().await,
                    Ok(_) => None,
                    Err(RecvError::Lagged(_)) if !hub.is_local(&id) => reread().await,
                    Err(RecvError::Lagged(_)) => None,
                    Err(RecvError::Closed) => return,
                },
                _ = poll.tick() => match hub.is_local(&id) {
                    true => None,
                    false => reread().await,
                },
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
