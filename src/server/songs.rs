//! Making a new song: validate everything first, keep the photo, then write the job row.
//! A refused request stores nothing; a failed insert removes the files it wrote.

use image::RgbImage;

use crate::api::types::{SongOptions, MAX_SEED};
use crate::ml::photo::{self, PhotoError};
use crate::ml::prompt::{compose, Hints, MAX_TEXT_CHARS};

use super::admission::{admit, Client};
use super::db::{NewSong, SongRow};
use super::ids::{new_id, new_slug};
use super::jobs::QUEUE_MOVED;
use super::pipeline::choices;
use super::AppState;

/// A refusal the caller can show: an HTTP status and words.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub message: String,
    /// Seconds the caller should wait before asking again (429, 503).
    pub retry_after: Option<u64>,
}

impl Refused {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub(crate) fn internal(e: anyhow::Error) -> Self {
        tracing::error!("{e:#}");
        Self::new(500, "something went wrong on the server; nothing was kept")
    }
}

impl From<PhotoError> for Refused {
    fn from(e: PhotoError) -> Self {
        let status = match e {
            PhotoError::TooLarge { .. } | PhotoError::TooManyPixels { .. } => 413,
            PhotoError::Unsupported(_) | PhotoError::NotAnImage(_) => 415,
            _ => 400,
        };
        Self::new(status, e.to_string())
    }
}

/// Put a failed song back in the queue: its owner only.
pub async fn retry(state: &AppState, row: &SongRow, owner_hash: &str) -> Result<(), Refused> {
    if row.owner_hash != owner_hash {
        return Err(Refused::new(
            403,
            "only the person who made this song can retry it",
        ));
    }
    if row.status != "failed" {
        return Err(Refused::new(409, "only a failed song can be retried"));
    }
    state
        .db()
        .requeue(&row.id)
        .await
        .map_err(Refused::internal)?;
    state.queue.wake.notify_one();
    Ok(())
}

/// Where a photo for a new song comes from.
pub enum PhotoSource<'a> {
    None,
    /// Uploaded bytes, checked and decoded here.
    Upload(&'a [u8]),
    /// Another song's kept photo ("another like this").
    CopyOf(&'a str),
}

/// Check the options without any model: ranges, words, lengths.
pub fn check_options(options: &SongOptions, has_photo: bool) -> Result<(), Refused> {
    options.check().map_err(|m| Refused::new(400, m))?;
    if let Some(t) = &options.text {
        if t.chars().count() > MAX_TEXT_CHARS {
            return Err(Refused::new(
                400,
                format!("the text is longer than {MAX_TEXT_CHARS} characters"),
            ));
        }
    }
    compose(&Hints::default(), &choices(options)).map_err(|e| Refused::new(400, e.to_string()))?;
    let has_words = options.genre.is_some()
        || options.mood.is_some()
        || options.prompt.is_some()
        || options
            .text
            .as_deref()
            .is_some_and(|t| !t.trim().is_empty());
    if !has_photo && !has_words {
        return Err(Refused::new(
            400,
            "add a photo, or in words-only mode pick a genre or mood or write a line",
        ));
    }
    Ok(())
}

/// Create a queued song; returns (id, slug). Options are checked first, then whether this
/// client may add a song now, and only then is the photo decoded.
pub async fn create(
    state: &AppState,
    owner_hash: &str,
    client: &Client,
    source: PhotoSource<'_>,
    options: SongOptions,
) -> Result<(String, String), Refused> {
    let has_photo = !matches!(source, PhotoSource::None);
    check_options(&options, has_photo)?;
    admit(state, client).await?;
    let image: Option<RgbImage> = match source {
        PhotoSource::Upload(bytes) => {
            let limits = photo::Limits {
                max_bytes: state.config.max_upload_bytes,
                ..photo::Limits::default()
            };
            Some(photo::decode(bytes, &limits)?.image)
        }
        _ => None,
    };
    let id = new_id();
    let slug = new_slug();
    let storage = state.storage();
    let kept = match (&source, &image) {
        (_, Some(img)) => storage.save_photo(&id, img),
        (PhotoSource::CopyOf(from), None) => storage.copy_photo(from, &id),
        _ => Ok(()),
    };
    if let Err(e) = kept {
        storage.remove(&id);
        return Err(Refused::internal(e));
    }
    let seed = options
        .seed
        .unwrap_or_else(|| rand::random::<u64>() & MAX_SEED);
    let title = match (&options.text, has_photo) {
        (Some(t), _) if !t.trim().is_empty() => super::pipeline::title_for(&options, None, ""),
        (_, true) => "A song from a photo".to_string(),
        _ => "A song from words".to_string(),
    };
    let row = NewSong {
        id: &id,
        slug: &slug,
        owner_hash,
        client_hash: &client.0,
        options: &options,
        seed,
        has_photo,
        title: &title,
        noise: state.noise,
    };
    if let Err(e) = state.db().insert_song(&row).await {
        storage.remove(&id);
        return Err(Refused::internal(e));
    }
    state.queue.wake.notify_one();
    state
        .queue
        .hub
        .publish(QUEUE_MOVED, crate::api::types::Progress::idle());
    Ok((id, slug))
}
