//! Server functions for the song pages: read a song, retry it, make another like it,
//! extend it.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::types::is_slug;
use super::types::SongView;
#[cfg(feature = "ssr")]
use crate::server::{error::AppError, songs};

/// What the song page needs: the song and the public address for absolute share links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SongPage {
    pub song: SongView,
    pub base_url: String,
}

#[server(prefix = "/api/fn", endpoint = "get_song")]
pub async fn get_song(slug: String) -> Result<Option<SongPage>, ServerFnError> {
    if !is_slug(&slug) {
        return Ok(None);
    }
    let (state, owner) = super::caller()?;
    let db = state.db();
    let Some(row) = db.song_by_slug(&slug).await.map_err(AppError::from)? else {
        return Ok(None);
    };
    let position = db.queue_position(&row).await.map_err(AppError::from)?;
    Ok(Some(SongPage {
        song: songs::view(&row, Some(&owner.hash), position),
        base_url: super::base_url(&state),
    }))
}

/// The longest song this server makes (`--max-duration`), for the upload page's slider.
#[server(prefix = "/api/fn", endpoint = "max_duration")]
pub async fn max_duration() -> Result<f32, ServerFnError> {
    let state = use_context::<crate::server::AppState>()
        .ok_or_else(|| ServerFnError::new("server state missing"))?;
    Ok(state.config.max_duration)
}

/// Put a failed song back in the queue (its owner only).
#[server(prefix = "/api/fn", endpoint = "retry_song")]
pub async fn retry_song(slug: String) -> Result<(), ServerFnError> {
    let (state, owner) = super::caller()?;
    let row = songs::find_by_slug(&state, &slug).await?;
    Ok(songs::retry(&state, &row, &owner.hash).await?)
}

/// A new song from an existing one: the same photo and choices with a new seed, or (with
/// `prompt`) a hand-edited prompt. Anyone may do this from a shared page: the new song
/// is theirs. Returns the new song's slug.
#[server(prefix = "/api/fn", endpoint = "remake_song")]
pub async fn remake_song(slug: String, prompt: Option<String>) -> Result<String, ServerFnError> {
    let (state, owner) = super::caller()?;
    let row = songs::find_by_slug(&state, &slug).await?;
    let mut options = row.options();
    options.seed = None;
    if let Some(p) = prompt {
        options.prompt = Some(p);
    }
    create_from(&state, &owner.hash, &row, options).await
}

/// A longer song that continues a finished one ("extend this song"): its audio codes come
/// first, then more with the same prompt and photo, up to `duration` seconds. Anyone may
/// do this from a shared page: the new song is theirs. Returns the new song's slug.
#[server(prefix = "/api/fn", endpoint = "extend_song")]
pub async fn extend_song(slug: String, duration: f32) -> Result<String, ServerFnError> {
    let (state, owner) = super::caller()?;
    let row = songs::find_by_slug(&state, &slug).await?;
    let mut options = row.options();
    options.seed = None;
    options.duration = Some(duration);
    // The same text condition as the song it continues.
    options.prompt = row.prompt.clone();
    options.extends = Some(row.slug.clone());
    create_from(&state, &owner.hash, &row, options).await
}

/// The caller's new song with `row`'s photo (if it has one) and `options`; its slug.
#[cfg(feature = "ssr")]
async fn create_from(
    state: &crate::server::AppState,
    owner_hash: &str,
    row: &crate::server::db::SongRow,
    options: super::types::SongOptions,
) -> Result<String, ServerFnError> {
    use crate::server::middleware::admission::Client;
    use crate::server::songs::PhotoSource;
    let axum::Extension(client) = leptos_axum::extract::<axum::Extension<Client>>().await?;
    let source = if row.has_photo != 0 {
        PhotoSource::CopyOf(&row.id)
    } else {
        PhotoSource::None
    };
    let (_, slug) = songs::create(state, owner_hash, &client, source, options).await?;
    Ok(slug)
}
