//! Server functions for playlists and the library. Edits check the owner cookie.

use leptos::prelude::*;

#[cfg(feature = "ssr")]
use super::types::is_slug;
use super::types::{Library, PlaylistView};
#[cfg(feature = "ssr")]
use crate::server::error::AppError;
#[cfg(feature = "ssr")]
use crate::server::playlists::{check_slug, clean_title};

#[server(prefix = "/api/fn", endpoint = "get_playlist")]
pub async fn get_playlist(slug: String) -> Result<Option<PlaylistView>, ServerFnError> {
    if !is_slug(&slug) {
        return Ok(None);
    }
    let (state, owner) = super::caller()?;
    match state
        .db()
        .playlist_with_songs(&slug)
        .await
        .map_err(AppError::from)?
    {
        Some((row, songs)) => {
            let mut v = crate::server::playlists::view(&row, &songs, &owner.hash);
            v.base_url = super::base_url(&state);
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

#[server(prefix = "/api/fn", endpoint = "get_library")]
pub async fn get_library() -> Result<Library, ServerFnError> {
    let (state, owner) = super::caller()?;
    // A browser that came without an owner cookie (this response gives it one) owns
    // nothing yet: a first visit, a shared link's usual reader, costs no query here.
    if owner.fresh {
        return Ok(Library::default());
    }
    Ok(crate::server::playlists::library(&state, &owner.hash).await?)
}

/// A new playlist, optionally starting with a song. Returns its slug.
#[server(prefix = "/api/fn", endpoint = "create_playlist")]
pub async fn create_playlist(
    title: String,
    first_song: Option<String>,
) -> Result<String, ServerFnError> {
    use crate::server::ids::{new_id, new_slug};
    let title = clean_title(&title)?;
    let (state, owner) = super::caller()?;
    let slug = new_slug();
    state
        .db()
        .create_playlist(&new_id(), &slug, &owner.hash, &title)
        .await
        .map_err(AppError::from)?;
    if let Some(song) = first_song {
        check_slug(&song)?;
        state
            .db()
            .add_to_playlist(&slug, &owner.hash, &song)
            .await?;
    }
    Ok(slug)
}

#[server(prefix = "/api/fn", endpoint = "rename_playlist")]
pub async fn rename_playlist(slug: String, title: String) -> Result<(), ServerFnError> {
    check_slug(&slug)?;
    let title = clean_title(&title)?;
    let (state, owner) = super::caller()?;
    Ok(state
        .db()
        .rename_playlist(&slug, &owner.hash, &title)
        .await?)
}

#[server(prefix = "/api/fn", endpoint = "add_to_playlist")]
pub async fn add_to_playlist(slug: String, song: String) -> Result<(), ServerFnError> {
    check_slug(&slug)?;
    check_slug(&song)?;
    let (state, owner) = super::caller()?;
    Ok(state
        .db()
        .add_to_playlist(&slug, &owner.hash, &song)
        .await?)
}

#[server(prefix = "/api/fn", endpoint = "remove_from_playlist")]
pub async fn remove_from_playlist(slug: String, song: String) -> Result<(), ServerFnError> {
    check_slug(&slug)?;
    check_slug(&song)?;
    let (state, owner) = super::caller()?;
    Ok(state
        .db()
        .remove_from_playlist(&slug, &owner.hash, &song)
        .await?)
}

#[server(prefix = "/api/fn", endpoint = "reorder_playlist")]
pub async fn reorder_playlist(slug: String, songs: Vec<String>) -> Result<(), ServerFnError> {
    check_slug(&slug)?;
    if songs.len() > 1000 {
        return Err(AppError::bad_request("too many songs").into());
    }
    for s in &songs {
        check_slug(s)?;
    }
    let (state, owner) = super::caller()?;
    Ok(state
        .db()
        .reorder_playlist(&slug, &owner.hash, &songs)
        .await?)
}
