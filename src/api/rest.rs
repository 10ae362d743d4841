//! The REST API for scripts and other front-ends (documented in the README), and the
//! song page's live event stream. Thin: parse, check, call `server::`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::ReceiverStream;

use super::types::{is_id, is_slug, Progress, SongOptions, Status};
use crate::server::admission::Client;
use crate::server::db::SongRow;
use crate::server::jobs::QUEUE_MOVED;
use crate::server::owner::Owner;
use crate::server::songs::{create, retry, PhotoSource, Refused};
use crate::server::AppState;

pub fn routes(state: &AppState) -> Router<AppState> {
    // Room for the photo plus the options part and multipart framing.
    let limit = state.config.max_upload_bytes + 64 * 1024;
    Router::new()
        .route(
            "/api/songs",
            post(create_song).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/api/songs/{id}", get(song_status))
        .route("/api/songs/{id}/events", get(song_events))
        .route("/api/songs/{id}/retry", post(retry_song))
        .route("/api/playlists/{slug}", get(playlist))
}

/// `{"error": "…"}` with a 4xx/5xx status, and Retry-After when waiting will help.
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(json!({ "error": self.message }))).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        Self {
            status: StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST),
            message: r.message,
            retry_after: r.retry_after,
        }
    }
}

fn internal(e: anyhow::Error) -> ApiError {
    tracing::error!("{e:#}");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such {what}"))
}

/// The address links should start with: configured, or from the request.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| state.config.addr.to_string());
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{proto}://{host}")
}

async fn create_song(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<impl IntoResponse, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let mut image: Option<Vec<u8>> = None;
    let mut options: Option<SongOptions> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the upload is larger than {} MB",
                        state.config.max_upload_bytes / (1024 * 1024)
                    ),
                ))
            }
            Err(e) => return Err(bad(format!("unreadable upload: {}", e.body_text()))),
        };
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(|e| {
            ApiError::new(e.status(), format!("unreadable upload: {}", e.body_text()))
        })?;
        match name.as_str() {
            "image" if image.is_some() => return Err(bad("send one image per song".into())),
            "image" => image = Some(bytes.to_vec()),
            "options" if options.is_some() => return Err(bad("send one options part".into())),
            "options" => {
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| bad("options must be UTF-8 JSON".into()))?;
                let o = if text.trim().is_empty() {
                    SongOptions::default()
                } else {
                    serde_json::from_str(text).map_err(|e| bad(format!("options: {e}")))?
                };
                options = Some(o);
            }
            other => {
                return Err(bad(format!(
                    "unexpected part {other:?}: send image and options"
                )))
            }
        }
    }
    let options = options.unwrap_or_default();
    let source = match &image {
        Some(b) => PhotoSource::Upload(b),
        None => PhotoSource::None,
    };
    let (id, slug) = create(&state, &owner.hash, &client, source, options).await?;
    let base = base_url(&state, &headers);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "slug": slug, "url": format!("{base}/s/{slug}") })),
    ))
}

/// A song by its API id; a malformed id is simply not found.
async fn find_song(state: &AppState, id: &str) -> Result<SongRow, ApiError> {
    if !is_id(id) {
        return Err(not_found("song"));
    }
    state
        .db()
        .song_by_id(id)
        .await
        .map_err(internal)?
        .ok_or_else(|| not_found("song"))
}

async fn song_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let row = find_song(&state, &id).await?;
    let p = row.progress(state.db().queue_position(&row).await.map_err(internal)?);
    let base = base_url(&state, &headers);
    let ready = p.status == Status::Ready;
    Ok(Json(json!({
        "id": row.id,
        "slug": row.slug,
        "title": row.title,
        "status": p.status,
        "stage": p.stage,
        "progress": p.progress,
        "queue_position": p.queue_position,
        "audio_url": ready.then(|| format!("{base}/media/{}/song.wav", row.id)),
        "page_url": format!("{base}/s/{}", row.slug),
        "caption": row.caption,
        "prompt": row.prompt,
        "seed": row.seed,
        "error": p.error,
    })))
}

async fn retry_song(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = find_song(&state, &id).await?;
    retry(&state, &row, &owner.hash).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Server-sent events: the song's progress now, then every change until it is ready or
/// failed. Waiting songs also hear when the queue moves (their position changes).
async fn song_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if !is_id(&id) {
        return Err(not_found("song"));
    }
    // Subscribe before reading the row, so no change falls between the two.
    let mut changes = state.queue.hub.subscribe();
    let db = state.db().clone();
    let current = |db: crate::server::db::Db, id: String| async move {
        let row = db.song_by_id(&id).await.ok().flatten()?;
        Some(row.progress(db.queue_position(&row).await.ok().flatten()))
    };
    let first = current(db.clone(), id.clone())
        .await
        .ok_or_else(|| not_found("song"))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Progress>(32);
    tokio::spawn(async move {
        let settled = |p: &Progress| matches!(p.status, Status::Ready | Status::Failed);
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

async fn playlist(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !is_slug(&slug) {
        return Err(not_found("playlist"));
    }
    let p = state
        .db()
        .playlist_by_slug(&slug)
        .await
        .map_err(internal)?
        .ok_or_else(|| not_found("playlist"))?;
    let songs = state.db().playlist_songs(&p.id).await.map_err(internal)?;
    let base = base_url(&state, &headers);
    let songs: Vec<_> = songs
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "slug": s.slug,
                "title": s.title,
                "status": s.status,
                "audio_url": (s.status == "ready").then(|| format!("{base}/media/{}/song.wav", s.id)),
                "page_url": format!("{base}/s/{}", s.slug),
            })
        })
        .collect();
    Ok(Json(json!({
        "slug": p.slug,
        "title": p.title,
        "url": format!("{base}/p/{}", p.slug),
        "songs": songs,
    })))
}
