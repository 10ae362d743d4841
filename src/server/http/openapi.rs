//! The REST API's OpenAPI document, served at `/api/openapi.json`. The paths come from the
//! routes themselves (`rest::routes` registers each handler through `utoipa_axum`, so a
//! route cannot exist undocumented); this file holds the document's frame and the shapes
//! of the JSON bodies, which the handlers return as these very types.

use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::api::types::{Progress, SongOptions, Stage, Status};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Snapsong REST API",
        description = "Make songs from photos and words, follow them while they are made, fetch the audio."
    ),
    components(schemas(SongOptions, Status, Stage, Progress, ErrorBody))
)]
pub struct ApiDoc;

/// Every refusal: a 4xx or 5xx with a sentence saying why.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// `POST /api/songs`'s form: both parts are optional (no image: words only).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the multipart form; the handler reads the parts itself
pub struct NewSongForm {
    /// The photo: JPEG, PNG, WebP or GIF.
    #[schema(value_type = Option<String>, format = Binary)]
    pub image: Option<Vec<u8>>,
    /// The choices, as JSON.
    pub options: Option<SongOptions>,
}

/// A song was queued.
#[derive(Serialize, ToSchema)]
pub struct Created {
    pub id: String,
    pub slug: String,
    /// The song's page (absolute).
    pub url: String,
}

/// A ready song's files by format.
#[derive(Serialize, ToSchema)]
pub struct AudioUrls {
    pub wav: String,
    pub mp3: String,
}

/// Where a song is.
#[derive(Serialize, ToSchema)]
pub struct SongStatus {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub status: Status,
    pub stage: Stage,
    /// 0–1 over the whole job.
    pub progress: f32,
    pub queue_position: Option<u32>,
    /// The WAV, once ready.
    pub audio_url: Option<String>,
    pub audio_urls: Option<AudioUrls>,
    pub page_url: String,
    pub caption: Option<String>,
    pub prompt: Option<String>,
    pub seed: i64,
    pub error: Option<String>,
}

/// A song in a playlist.
#[derive(Serialize, ToSchema)]
pub struct PlaylistSong {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub status: Status,
    pub audio_url: Option<String>,
    pub audio_urls: Option<AudioUrls>,
    pub page_url: String,
}

#[derive(Serialize, ToSchema)]
pub struct PlaylistBody {
    pub slug: String,
    pub title: String,
    pub url: String,
    pub songs: Vec<PlaylistSong>,
}
