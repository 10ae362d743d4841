//! HTTP endpoints outside Leptos: the REST API (`rest`), the song page's live progress
//! (`events`, server-sent), the audio of a song being made (`live`) and the media files
//! (`media`). Thin: read the request, call
//! the services (`server::songs`, `server::playlists`, `server::db`), answer.
pub mod events;
pub mod live;
pub mod media;
pub mod openapi;
pub mod rest;
