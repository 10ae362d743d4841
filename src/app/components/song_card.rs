//! A song in a list (library, playlists): cover or colour swatch, title, state.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::types::{SongView, Status, ACCENT};

/// A song in a list: cover (or palette swatch), title, state.
#[component]
pub fn SongCard(song: SongView) -> impl IntoView {
    let state = match song.progress.status {
        Status::Ready => format!("{:.0} s", song.duration_s),
        Status::Failed => "failed".to_string(),
        _ => song.progress.stage.label().to_string(),
    };
    let swatch = song
        .palette
        .first()
        .cloned()
        .unwrap_or_else(|| ACCENT.into());
    view! {
        <A href=song.page_path() attr:class="song-card">
            {match song.cover_path() {
                Some(src) => view! { <img src=src alt="" loading="lazy" width="96" height="96"/> }.into_any(),
                None => view! { <span class="swatch" style=format!("background:{swatch}")></span> }.into_any(),
            }}
            <span class="song-card-text">
                <strong>{song.title.clone()}</strong>
                <span class="muted">{state}</span>
            </span>
        </A>
    }
}
