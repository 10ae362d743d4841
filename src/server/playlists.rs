//! Playlists, as the server functions see them: names cleaned and checked, views built
//! for a viewer (the owner may edit; anyone with the link may listen).

use crate::api::types::{is_slug, Library, PlaylistView, MAX_TITLE_CHARS};
use crate::server::db::{PlaylistRow, SongRow};
use crate::server::error::AppError;
use crate::server::songs;
use crate::server::state::AppState;

/// A playlist name with its whitespace folded and control characters dropped.
pub fn clean_title(title: &str) -> Result<String, AppError> {
    let t: String = title
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if t.is_empty() {
        return Err(AppError::bad_request("give the playlist a name"));
    }
    if t.chars().count() > MAX_TITLE_CHARS {
        return Err(AppError::bad_request(format!(
            "a playlist name is at most {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(t)
}

/// A slug of a playlist or song to edit: a malformed one names nothing.
pub fn check_slug(slug: &str) -> Result<(), AppError> {
    match is_slug(slug) {
        true => Ok(()),
        false => Err(AppError::not_found("playlist or song")),
    }
}

/// The playlist with its songs, as `viewer` (an owner hash) sees it.
pub fn view(row: &PlaylistRow, songs: &[SongRow], viewer: &str) -> PlaylistView {
    PlaylistView {
        id: row.id.clone(),
        slug: row.slug.clone(),
        title: row.title.clone(),
        songs: songs
            .iter()
            .map(|s| songs::view(s, Some(viewer), None))
            .collect(),
        is_owner: row.owner_hash == viewer,
        updated_ms: row.updated_ms,
        base_url: String::new(),
    }
}

/// The owner's songs and playlists.
pub async fn library(state: &AppState, owner: &str) -> Result<Library, AppError> {
    let mine = state.db().library_of(owner).await?;
    Ok(Library {
        songs: mine
            .songs
            .iter()
            .map(|r| songs::view(r, Some(owner), None))
            .collect(),
        playlists: mine
            .playlists
            .iter()
            .map(|(p, songs)| view(p, songs, owner))
            .collect(),
    })
}
