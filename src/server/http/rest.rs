//! The REST API for scripts and other front-ends (documented in the README). Thin: parse,
//! check, call the services.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;

use super::{events, live, media};
use crate::api::types::{is_slug, SongOptions, Status, SONG_MP3, SONG_WAV};
use crate::server::error::AppError;
use crate::server::middleware::admission::Client;
use crate::server::middleware::owner::Owner;
use crate::server::songs::{create, find_by_id, retry, PhotoSource};
use crate::server::state::AppState;

pub fn routes(state: &AppState) -> Router<AppState> {
    // Room for the photo plus the options part and multipart framing.
    let limit = state.config.max_upload_bytes + 64 * 1024;
    Router::new()
        .route(
            "/api/songs",
            post(create_song).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/api/songs/{id}", get(song_status))
        .route("/api/songs/{id}/events", get(events::song_events))
        .route("/api/songs/{id}/live/{index}", get(live::chunk))
        .route("/api/songs/{id}/retry", post(retry_song))
        .route("/api/playlists/{slug}", get(playlist))
}

async fn create_song(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<impl IntoResponse, AppError> {
    let bad = |m: String| AppError::bad_request(m);
    let mut image: Option<Vec<u8>> = None;
    let mut options: Option<SongOptions> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(AppError::new(
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
            AppError::new(e.status(), format!("unreadable upload: {}", e.body_text()))
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
    let base = state.base_url(&headers);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "slug": slug, "url": format!("{base}/s/{slug}") })),
    ))
}

async fn song_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    let row = find_by_id(&state, &id).await?;
    let p = row.progress(state.db().queue_position(&row).await?);
    let base = state.base_url(&headers);
    let ready = p.status == Status::Ready;
    Ok(Json(json!({
        "id": row.id,
        "slug": row.slug,
        "title": row.title,
        "status": p.status,
        "stage": p.stage,
        "progress": p.progress,
        "queue_position": p.queue_position,
        "audio_url": ready.then(|| media::url(&base, &row.id, SONG_WAV)),
        "audio_urls": ready.then(|| audio_urls(&base, &row.id)),
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
) -> Result<StatusCode, AppError> {
    let row = find_by_id(&state, &id).await?;
    retry(&state, &row, &owner.hash).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn playlist(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    if !is_slug(&slug) {
        return Err(AppError::not_found("playlist"));
    }
    let p = state
        .db()
        .playlist_by_slug(&slug)
        .await?
        .ok_or_else(|| AppError::not_found("playlist"))?;
    let songs = state.db().playlist_songs(&p.id).await?;
    let base = state.base_url(&headers);
    let songs: Vec<_> = songs
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "slug": s.slug,
                "title": s.title,
                "status": s.status,
                "audio_url": (s.status == Status::Ready).then(|| media::url(&base, &s.id, SONG_WAV)),
                "audio_urls": (s.status == Status::Ready).then(|| audio_urls(&base, &s.id)),
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

/// A ready song's files by format (`audio_url` stays the WAV).
fn audio_urls(base: &str, id: &str) -> serde_json::Value {
    json!({ "wav": media::url(base, id, SONG_WAV), "mp3": media::url(base, id, SONG_MP3) })
}
