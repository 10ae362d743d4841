//! `GET /api/songs/{id}/live/{index}`: a chunk of a song being made, as raw 16-bit LE mono
//! PCM (the sample rate is in the event stream's `live`), with its place in the song in
//! the `x-start-sample` header. Chunks never change, so they may be cached.

use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::IntoResponse;

use crate::api::live::START_SAMPLE_HEADER;
use crate::api::types::is_id;
use crate::server::error::AppError;
use crate::server::state::AppState;

/// A chunk of a song being made.
#[utoipa::path(
    get, path = "/api/songs/{id}/live/{index}", tag = "songs",
    params(
        ("id" = String, Path, description = "The song's id"),
        ("index" = u32, Path, description = "The chunk, from 0 (the event stream's `live.chunks` says how many exist)"),
    ),
    responses(
        (status = 200, description = "16-bit little-endian mono PCM; its first sample's place in the song is in the x-start-sample header", content_type = "audio/L16", body = Vec<u8>),
        (status = 400, description = "Not a chunk number", body = crate::server::http::openapi::ErrorBody),
        (status = 404, description = "No such chunk (or the song has been finished for 2 minutes)", body = crate::server::http::openapi::ErrorBody),
    )
)]
pub async fn chunk(
    State(state): State<AppState>,
    Path((id, index)): Path<(String, String)>,
) -> Result<impl IntoResponse, AppError> {
    let index: usize = index
        .parse()
        .map_err(|_| AppError::bad_request("a chunk number is a whole number"))?;
    if !is_id(&id) {
        return Err(AppError::not_found("song"));
    }
    // Made in this process: from memory. Elsewhere: from the store. Gone once the song
    // is finished and its files are there (or never made): the page then plays the file.
    let (start_sample, rate, pcm) = match state.queue.hub.live.chunk(&id, index) {
        Some((chunk, rate)) => (chunk.start_sample, rate, chunk.pcm),
        None => u32::try_from(index)
            .ok()
            .map(|i| state.storage().live_chunk(&id, i))
            .ok_or_else(|| AppError::not_found("live audio"))?
            .await?
            .ok_or_else(|| AppError::not_found("live audio"))?,
    };
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_str(&format!("audio/L16;rate={rate};channels=1"))
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=600, immutable"),
        ),
        (
            HeaderName::from_static(START_SAMPLE_HEADER),
            HeaderValue::from(start_sample),
        ),
    ];
    Ok((headers, pcm))
}
