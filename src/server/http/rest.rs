//! The REST API for scripts and other front-ends (documented in the README). Thin: parse,
//! check, call the services.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::sync::Arc;

use axum::routing::get;
use axum::{Extension, Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{
    ApiDoc, AudioUrls, Created, ErrorBody, NewSongForm, PlaylistBody, PlaylistSong, SongStatus,
};
use super::{events, live, media};
use crate::api::types::{is_slug, SongOptions, Status, SONG_MP3, SONG_WAV};
use crate::server::error::AppError;
use crate::server::middleware::admission::Client;
use crate::server::middleware::owner::Owner;
use crate::server::songs::{create, find_by_id, retry, PhotoSource};
use crate::server::state::AppState;

/// The REST routes, each registered with its OpenAPI description (so none goes
/// undocumented), and `/api/openapi.json`, which serves that document.
pub fn routes(state: &AppState) -> Router<AppState> {
    // Room for the photo plus the options part and multipart framing.
    let limit = state.config.max_upload_bytes + 64 * 1024;
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_song))
        .routes(routes!(song_status))
        .routes(routes!(events::song_events))
        .routes(routes!(live::chunk))
        .routes(routes!(retry_song))
        .routes(routes!(playlist))
        .layer(DefaultBodyLimit::max(limit))
        .split_for_parts();
    let doc = Arc::new(doc);
    router.route(
        "/api/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc) }
        }),
    )
}

/// Make a song from a photo and/or choices: it is queued, and made in turn.
#[utoipa::path(
    post, path = "/api/songs", tag = "songs",
    request_body(content = NewSongForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Queued", body = Created),
        (status = 400, description = "Bad options or a corrupt image", body = ErrorBody),
        (status = 403, description = "From another site", body = ErrorBody),
        (status = 413, description = "Too large", body = ErrorBody),
        (status = 415, description = "Not a supported image", body = ErrorBody),
        (status = 429, description = "Too many songs from this client (Retry-After)", body = ErrorBody),
        (status = 503, description = "The queue is full (Retry-After)", body = ErrorBody),
    )
)]
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
    let url = format!("{base}/s/{slug}");
    Ok((StatusCode::ACCEPTED, Json(Created { id, slug, url })))
}

/// Where a song is, and its files once ready.
#[utoipa::path(
    get, path = "/api/songs/{id}", tag = "songs",
    params(("id" = String, Path, description = "The song's id")),
    responses(
        (status = 200, description = "The song", body = SongStatus),
        (status = 404, description = "No such song", body = ErrorBody),
    )
)]
async fn song_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<SongStatus>, AppError> {
    let row = find_by_id(&state, &id).await?;
    let p = row.progress(state.db().queue_position(&row).await?);
    let (audio_url, audio_urls, page_url) =
        links(&state.base_url(&headers), &row.id, &row.slug, p.status);
    Ok(Json(SongStatus {
        audio_url,
        audio_urls,
        page_url,
        id: row.id,
        slug: row.slug,
        title: row.title,
        status: p.status,
        stage: p.stage,
        progress: p.progress,
        queue_position: p.queue_position,
        caption: row.caption,
        prompt: row.prompt,
        seed: row.seed,
        error: p.error,
    }))
}

/// Queue a failed song again (its owner only: the owner cookie).
#[utoipa::path(
    post, path = "/api/songs/{id}/retry", tag = "songs",
    params(("id" = String, Path, description = "The song's id")),
    responses(
        (status = 202, description = "Queued again"),
        (status = 403, description = "Not the owner, or from another site", body = ErrorBody),
        (status = 404, description = "No such song", body = ErrorBody),
        (status = 409, description = "The song has not failed", body = ErrorBody),
    )
)]
async fn retry_song(
    State(state): State<AppState>,
    Extension(owner): Extension<Owner>,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let row = find_by_id(&state, &id).await?;
    retry(&state, &row, &owner.hash).await?;
    Ok(StatusCode::ACCEPTED)
}

/// A playlist and its songs, in order.
#[utoipa::path(
    get, path = "/api/playlists/{slug}", tag = "playlists",
    params(("slug" = String, Path, description = "The playlist's share slug")),
    responses(
        (status = 200, description = "The playlist", body = PlaylistBody),
        (status = 404, description = "No such playlist", body = ErrorBody),
    )
)]
async fn playlist(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Json<PlaylistBody>, AppError> {
    if !is_slug(&slug) {
        return Err(AppError::not_found("playlist"));
    }
    let (p, songs) = state
        .db()
        .playlist_with_songs(&slug)
        .await?
        .ok_or_else(|| AppError::not_found("playlist"))?;
    let base = state.base_url(&headers);
    let songs = songs
        .into_iter()
        .map(|s| {
            let (audio_url, audio_urls, page_url) = links(&base, &s.id, &s.slug, s.status);
            PlaylistSong {
                audio_url,
                audio_urls,
                page_url,
                id: s.id,
                slug: s.slug,
                title: s.title,
                status: s.status,
            }
        })
        .collect();
    Ok(Json(PlaylistBody {
        url: format!("{base}/p/{}", p.slug),
        slug: p.slug,
        title: p.title,
        songs,
    }))
}

/// A song's links: once ready its WAV (`audio_url`) and its files by format; its page.
fn links(
    base: &str,
    id: &str,
    slug: &str,
    status: Status,
) -> (Option<String>, Option<AudioUrls>, String) {
    let ready = status == Status::Ready;
    (
        ready.then(|| media::url(base, id, SONG_WAV)),
        ready.then(|| AudioUrls {
            wav: media::url(base, id, SONG_WAV),
            mp3: media::url(base, id, SONG_MP3),
        }),
        format!("{base}/s/{slug}"),
    )
}
