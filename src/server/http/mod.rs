//! HTTP endpoints outside Leptos: the REST API (`rest`), the song page's live progress
//! (`events`, server-sent), the audio of a song being made (`live`), the media files
//! (`media`) and Prometheus' `metrics`. Thin: read the request, call
//! the services (`server::songs`, `server::playlists`, `server::db`), answer.
pub mod events;
pub mod live;
pub mod media;
pub mod metrics;
pub mod openapi;
pub mod rest;
