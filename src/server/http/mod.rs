//! HTTP endpoints outside Leptos: the REST API (`rest`), the song page's live progress
//! (`events`, server-sent) and the media files (`media`). Thin: read the request, call
//! the services (`server::songs`, `server::playlists`, `server::db`), answer.
pub mod events;
pub mod media;
pub mod rest;
