//! Songs, as the HTTP handlers and server functions see them: find one, show it, make a
//! new one (validate everything first, keep the photo, then write the job row: a refused
//! request stores nothing, a failed insert removes the files it wrote), retry a failed one.

use crate::api::types::{is_id, is_slug, Progress, SongOptions, SongView, Status, MAX_SEED};
use crate::photo;
use crate::prompt::{compose, Hints};
use crate::server::db::{Admitted, NewSong, SongRow};
use crate::server::error::AppError;
use crate::server::ids::{new_id, new_slug};
use crate::server::middleware::admission::{admit, bounds, client_full, queue_full, Client};
use crate::server::song_options::{choices, title_for};
use crate::server::state::AppState;
use crate::server::storage::PhotoFiles;
use crate::server::worker::progress::QUEUE_MOVED;

/// A song by its API id; a malformed id is simply not found.
pub async fn find_by_id(state: &AppState, id: &str) -> Result<SongRow, AppError> {
    if !is_id(id) {
        return Err(AppError::not_found("song"));
    }
    state
        .db()
        .song_by_id(id)
        .await?
        .ok_or_else(|| AppError::not_found("song"))
}

/// A song by its share slug; a malformed slug is simply not found.
pub async fn find_by_slug(state: &AppState, slug: &str) -> Result<SongRow, AppError> {
    if !is_slug(slug) {
        return Err(AppError::not_found("song"));
    }
    state
        .db()
        .song_by_slug(slug)
        .await?
        .ok_or_else(|| AppError::not_found("song"))
}

/// A song as the pages show it, to `viewer_hash` (an owner hash).
pub fn view(row: &SongRow, viewer_hash: Option<&str>, queue_position: Option<u32>) -> SongView {
    let options = row.options();
    SongView {
        id: row.id.clone(),
        slug: row.slug.clone(),
        title: row.title.clone(),
        progress: row.progress(queue_position),
        duration_s: options.duration_s(),
        options,
        seed: row.seed as u64,
        caption: row.caption.clone(),
        prompt: row.prompt.clone(),
        parts: row
            .parts
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default(),
        palette: row
            .palette
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default(),
        has_photo: row.has_photo != 0,
        noise: row.noise != 0,
        created_ms: row.created_ms,
        is_owner: viewer_hash == Some(row.owner_hash.as_str()),
    }
}

/// Put a failed song back in the queue: its owner only.
pub async fn retry(state: &AppState, row: &SongRow, owner_hash: &str) -> Result<(), AppError> {
    if row.owner_hash != owner_hash {
        return Err(AppError::forbidden(
            "only the person who made this song can retry it",
        ));
    }
    if row.status != Status::Failed {
        return Err(AppError::conflict("only a failed song can be retried"));
    }
    state.db().requeue(&row.id).await?;
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
pub fn check_options(options: &SongOptions, has_photo: bool) -> Result<(), AppError> {
    options.check().map_err(AppError::bad_request)?;
    compose(&Hints::default(), &choices(options))?;
    let has_words = options.genre.is_some()
        || options.mood.is_some()
        || options.prompt.is_some()
        || options.extends.is_some()
        || options
            .text
            .as_deref()
            .is_some_and(|t| !t.trim().is_empty());
    if !has_photo && !has_words {
        return Err(AppError::bad_request(
            "add a photo, or in words-only mode pick a genre or mood or write a line",
        ));
    }
    Ok(())
}

/// An extension needs a finished song with its codes kept, and a longer length. Returns
/// the song's prompt: the extension keeps it (the same text condition).
async fn check_extension(
    state: &AppState,
    slug: &str,
    duration: f32,
) -> Result<Option<String>, AppError> {
    let original = find_by_slug(state, slug).await?;
    let has_codes = original.status == Status::Ready
        && state
            .storage()
            .has_codes(&original.id)
            .await
            .map_err(AppError::internal)?;
    if !has_codes {
        return Err(AppError::bad_request(
            "only a finished song can be extended (songs made before extensions existed cannot)",
        ));
    }
    let had = original.options().duration_s();
    if duration < had + 1.0 {
        return Err(AppError::bad_request(format!(
            "an extension must be longer than the song's {had} s"
        )));
    }
    Ok(original.prompt)
}

/// Create a queued song; returns (id, slug). Options are checked first, then whether this
/// client may add a song now, and only then is the photo decoded.
pub async fn create(
    state: &AppState,
    owner_hash: &str,
    client: &Client,
    source: PhotoSource<'_>,
    mut options: SongOptions,
) -> Result<(String, String), AppError> {
    let has_photo = !matches!(source, PhotoSource::None);
    check_options(&options, has_photo)?;
    let max = state.config.max_duration;
    if options.duration_s() > max {
        return Err(AppError::bad_request(format!(
            "this server makes songs of at most {max} seconds"
        )));
    }
    if let Some(slug) = &options.extends {
        let prompt = check_extension(state, slug, options.duration_s()).await?;
        options.prompt = options.prompt.or(prompt);
    }
    admit(state, client).await?;
    let files: Option<PhotoFiles> = match source {
        PhotoSource::Upload(bytes) => {
            let limits = photo::Limits {
                max_bytes: state.config.max_upload_bytes,
                ..photo::Limits::default()
            };
            // Tens of milliseconds of CPU: on the low-priority intake threads, so that
            // page views are answered first when the CPU is short.
            let bytes = bytes.to_vec();
            let kept = state
                .intake
                .run(move || -> Result<PhotoFiles, AppError> {
                    let image = photo::decode(&bytes, &limits)?.image;
                    PhotoFiles::encode(&image).map_err(AppError::internal)
                })
                .await
                .map_err(AppError::internal)?;
            Some(kept?)
        }
        _ => None,
    };
    let id = new_id();
    let slug = new_slug();
    let storage = state.storage();
    let kept = match (&source, files) {
        (_, Some(files)) => storage.save_photo(&id, files).await,
        (PhotoSource::CopyOf(from), None) => storage.copy_photo(from, &id).await,
        _ => Ok(()),
    };
    if let Err(e) = kept {
        storage.remove(&id).await;
        return Err(AppError::internal(e));
    }
    let seed = options
        .seed
        .unwrap_or_else(|| rand::random::<u64>() & MAX_SEED);
    let title = match (&options.text, has_photo) {
        (Some(t), _) if !t.trim().is_empty() => title_for(&options, None, ""),
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
    let refused = match state
        .db()
        .insert_song_within(&row, bounds(&state.config))
        .await
    {
        Ok(Admitted::Yes) => None,
        Ok(Admitted::ClientFull(mine)) => Some(client_full(mine)),
        Ok(Admitted::QueueFull) => Some(queue_full()),
        Err(e) => Some(AppError::internal(e)),
    };
    if let Some(e) = refused {
        storage.remove(&id).await;
        return Err(e);
    }
    state.queue.wake.notify_one();
    state.queue.hub.publish(QUEUE_MOVED, Progress::idle());
    Ok((id, slug))
}
