//! Media files (`/media/{id}/…`): served from the store with HTTP Range and immutable
//! cache headers. The URL of each file is made here and nowhere else.

use axum::http::{header, HeaderValue};
use axum::Router;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::api::types::media_path;
use crate::server::state::AppState;

pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .fallback_service(ServeDir::new(state.storage().songs_dir()))
        // A song's files never change once written (they are written whole, then renamed).
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ))
}

/// The absolute URL of a song's file, e.g. `url(base, id, SONG_WAV)`.
pub fn url(base: &str, id: &str, file: &str) -> String {
    format!("{base}{}", media_path(id, file))
}
