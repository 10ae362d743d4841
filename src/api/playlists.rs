//! Server functions for playlists and the library. Edits check the owner cookie.

use leptos::prelude::*;

#[cfg(feature = "ssr")]
use super::types::{is_slug, MAX_TITLE_CHARS};
use super::types::{Library, PlaylistView};

#[cfg(feature = "ssr")]
fn clean_title(title: &str) -> Result<String, ServerFnError> {
    let t: String = title
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if t.is_empty() {
        return Err(super::refuse(400, "give the playlist a name"));
    }
    if t.chars().count() > MAX_TITLE_CHARS {
        return Err(super::refuse(
            400,
            format!("a playlist name is at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(t)
}

#[cfg(feature = "ssr")]
fn check_slug(slug: &str) -> Result<(), ServerFnError> {
    match is_slug(slug) {
        true => Ok(()),
        false => Err(super::refuse(404, "no such playlist or song")),
    }
}

#[cfg(feature = "ssr")]
async fn view(
    state: &crate::server::AppState,
    row: &crate::server::playlists::PlaylistRow,
    viewer: &str,
) -> Result<PlaylistView, ServerFnError> {
    let songs = state
        .db()
        .playlist_songs(&row.id)
        .await
        .map_err(super::internal)?;
    Ok(PlaylistView {
        id: row.id.clone(),
        slug: row.slug.clone(),
        title: row.title.clone(),
        songs: songs.iter().map(|s| s.view(Some(viewer), None)).collect(),
        is_owner: row.owner_hash == viewer,
        updated_ms: row.updated_ms,
        base_url: String::new(),
    })
}

#[cfg(feature = "ssr")]
fn edit_result(r: Result<(), crate::server::playlists::EditError>) -> Result<(), ServerFnError> {
    use crate::server::playlists::EditError;
    match r {
        Ok(()) => Ok(()),
        Err(EditError::Internal(e)) => Err(super::internal(e)),
        Err(e @ EditError::NotOwner) => Err(super::refuse(403, e.to_string())),
        Err(e @ (EditError::NoPlaylist | EditError::NoSong)) => {
            Err(super::refuse(404, e.to_string()))
        }
        Err(e @ EditError::BadOrder) => Err(super::refuse(400, e.to_string())),
    }
}

#[server(prefix = "/api/fn", endpoint = "get_playlist")]
pub async fn get_playlist(slug: String) -> Result<Option<PlaylistView>, ServerFnError> {
    if !is_slug(&slug) {
        return Ok(None);
    }
    let (state, owner) = super::caller().await?;
    match state
        .db()
        .playlist_by_slug(&slug)
        .await
        .map_err(super::internal)?
    {
        Some(row) => {
            let mut v = view(&state, &row, &owner.hash).await?;
            v.base_url = super::base_url(&state).await;
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

#[server(prefix = "/api/fn", endpoint = "get_library")]
pub async fn get_library() -> Result<Library, ServerFnError> {
    let (state, owner) = super::caller().await?;
    let rows = state
        .db()
        .songs_of(&owner.hash)
        .await
        .map_err(super::internal)?;
    let mut playlists = Vec::new();
    for p in state
        .db()
        .playlists_of(&owner.hash)
        .await
        .map_err(super::internal)?
    {
        playlists.push(view(&state, &p, &owner.hash).await?);
    }
    Ok(Library {
        songs: rows
            .iter()
            .map(|r| r.view(Some(&owner.hash), None))
            .collect(),
        playlists,
    })
}

/// A new playlist, optionally starting with a song. Returns its slug.
#[server(prefix = "/api/fn", endpoint = "create_playlist")]
pub async fn create_playlist(
    title: String,
    first_song: Option<String>,
) -> Result<String, ServerFnError> {
    use crate::server::ids::{new_id, new_slug};
    let title = clean_title(&title)?;
    let (state, owner) = super::caller().await?;
    let slug = new_slug();
    state
        .db()
        .create_playlist(&new_id(), &slug, &owner.hash, &title)
        .await
        .map_err(super::internal)?;
    if let Some(song) = first_song {
        check_slug(&song)?;
        edit_result(state.db().add_to_playlist(&slug, &owner.hash, &song).await)?;
    }
    Ok(slug)
}

#[server(prefix = "/api/fn", endpoint = "rename_playlist")]
pub async fn rename_playlist(slug: String, title: String) -> Result<(), ServerFnError> {
    check_slug(&slug)?;
    let title = clean_title(&title)?;
    let (state, owner) = super::caller().await?;
    edit_result(state.db().rename_playlist(&slug, &owner.hash, &title).await)
}

#[server(prefix = "/api/fn", endpoint = "add_to_playlist")]
pub async fn add_to_playlist(slug: String, song: String) -> Result<(), ServerFnError> {
    check_slug(&slug)?;
    check_slug(&song)?;
    let (state, owner) = super::caller().await?;
    edit_result(state.db().add_to_playlist(&slug, &owner.hash, &song).await)
}

#[server(prefix = "/api/fn", endpoint = "remove_from_playlist")]
pub async fn remove_from_playlist(slug: String, song: String) -> Result<(), ServerFnError> {
    check_slug(&slug)?;
    check_slug(&song)?;
    let (state, owner) = super::caller().await?;
    edit_result(
        state
            .db()
            .remove_from_playlist(&slug, &owner.hash, &song)
            .await,
    )
}

#[server(prefix = "/api/fn", endpoint = "reorder_playlist")]
pub async fn reorder_playlist(slug: String, songs: Vec<String>) -> Result<(), ServerFnError> {
    check_slug(&slug)?;
    if songs.len() > 1000 {
        return Err(super::refuse(400, "too many songs"));
    }
    for s in &songs {
        check_slug(s)?;
    }
    let (state, owner) = super::caller().await?;
    edit_result(
        state
            .db()
            .reorder_playlist(&slug, &owner.hash, &songs)
            .await,
    )
}
