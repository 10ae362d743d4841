//! Media files (`/media/{id}/{file}`): read from the store (local disk or S3) and served
//! through the web node, with HTTP Range (206), ETag revalidation (304) and immutable
//! cache headers. Only a song's known files are served; the 128-bit random id in the path
//! is what keeps unlisted media unguessable. The URL of each file is made here and
//! nowhere else.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::TryStreamExt;
use object_store::{GetOptions, GetRange, ObjectStoreExt};

use crate::api::types::{
    is_id, media_path, COVER_JPG, PHOTO_JPG, SHARE_JPG, SONG_CODES, SONG_MP3, SONG_WAV,
};
use crate::server::error::AppError;
use crate::server::state::AppState;
use crate::server::storage::Storage;

pub fn routes(_state: &AppState) -> Router<AppState> {
    Router::new().route("/{id}/{file}", get(serve))
}

/// The absolute URL of a song's file, e.g. `url(base, id, SONG_WAV)`.
pub fn url(base: &str, id: &str, file: &str) -> String {
    format!("{base}{}", media_path(id, file))
}

/// The files a song may have, and their types.
fn content_type(file: &str) -> Option<&'static str> {
    Some(match file {
        PHOTO_JPG | COVER_JPG | SHARE_JPG => "image/jpeg",
        SONG_WAV => "audio/wav",
        SONG_MP3 => "audio/mpeg",
        SONG_CODES => "application/json",
        _ => return None,
    })
}

/// What a `Range` header asks for: one range of bytes (several ranges, or another unit,
/// get the whole file, as RFC 9110 allows).
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    All,
    Range(GetRange),
    /// Syntactically a byte range, but one that cannot be satisfied (e.g. `bytes=9-3`).
    Unsatisfiable,
}

fn wanted(headers: &HeaderMap) -> Wanted {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Wanted::All;
    };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Wanted::All;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => match num(b) {
            Some(0) => Wanted::Unsatisfiable,
            Some(n) => Wanted::Range(GetRange::Suffix(n)),
            None => Wanted::All,
        },
        (false, true) => num(a).map_or(Wanted::All, |a| Wanted::Range(GetRange::Offset(a))),
        (false, false) => match (num(a), num(b)) {
            (Some(a), Some(b)) if a <= b => Wanted::Range(GetRange::Bounded(a..b + 1)),
            (Some(_), Some(_)) => Wanted::Unsatisfiable,
            _ => Wanted::All,
        },
        (true, true) => Wanted::All,
    }
}

async fn serve(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let ctype = content_type(&file).ok_or_else(|| AppError::not_found("file"))?;
    if !is_id(&id) {
        return Err(AppError::not_found("file"));
    }
    let store = state.storage().store();
    let key = Storage::key(&id, &file);
    let want = wanted(&headers);
    let options = GetOptions {
        range: match &want {
            Wanted::Range(r) => Some(r.clone()),
            _ => None,
        },
        if_none_match: headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        head: method == Method::HEAD,
        ..GetOptions::default()
    };
    if want == Wanted::Unsatisfiable {
        let size = store.head(&key).await.map(|m| m.size).unwrap_or(0);
        return unsatisfiable(size);
    }
    let got = match store.get_opts(&key, options).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Err(AppError::not_found("file")),
        Err(object_store::Error::NotModified { .. }) => {
            return Ok(StatusCode::NOT_MODIFIED.into_response())
        }
        Err(e) => {
            // A range that starts past the end: each store says so in its own words, so
            // ask for the size instead.
            if let Wanted::Range(r) = &want {
                if let Some(size) = past_end(r, store.head(&key).await) {
                    return unsatisfiable(size);
                }
            }
            return Err(AppError::internal(
                anyhow::Error::new(e).context("cannot read the media store"),
            ));
        }
    };
    let (meta, range) = (got.meta.clone(), got.range.clone());
    let mut res = Response::builder()
        .header(header::CONTENT_TYPE, ctype)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, range.end - range.start)
        // A song's files never change once written (they are written whole).
        .header(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    if let Some(tag) = &meta.e_tag {
        res = res.header(header::ETAG, tag);
    }
    if let Ok(when) = meta.last_modified.to_rfc2822().parse::<HeaderValue>() {
        res = res.header(header::LAST_MODIFIED, when);
    }
    if matches!(want, Wanted::Range(_)) {
        res = res.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{}",
                range.start,
                range.end.saturating_sub(1),
                meta.size
            ),
        );
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(got.into_stream().map_err(std::io::Error::other))
    };
    res.body(body).map_err(AppError::internal)
}

/// The object's size if `range` starts at or past the end of the object `head` describes.
fn past_end(range: &GetRange, head: object_store::Result<object_store::ObjectMeta>) -> Option<u64> {
    let size = head.ok()?.size;
    let past = match range {
        GetRange::Bounded(r) => r.start >= size,
        GetRange::Offset(o) => *o >= size,
        GetRange::Suffix(_) => size == 0,
    };
    past.then_some(size)
}

/// 416, with the size as RFC 9110 asks.
fn unsatisfiable(size: u64) -> Result<Response, AppError> {
    Response::builder()
        .status(StatusCode::RANGE_NOT_SATISFIABLE)
        .header(header::CONTENT_RANGE, format!("bytes */{size}"))
        .body(Body::empty())
        .map_err(AppError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str) -> Wanted {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, v.parse().unwrap());
        wanted(&h)
    }

    #[test]
    fn byte_ranges_are_read_as_rfc_9110_says() {
        assert_eq!(wanted(&HeaderMap::new()), Wanted::All);
        assert_eq!(
            range("bytes=0-99"),
            Wanted::Range(GetRange::Bounded(0..100))
        );
        assert_eq!(range("bytes=100-"), Wanted::Range(GetRange::Offset(100)));
        assert_eq!(range("bytes=-500"), Wanted::Range(GetRange::Suffix(500)));
        assert_eq!(range("bytes=9-3"), Wanted::Unsatisfiable);
        assert_eq!(range("bytes=-0"), Wanted::Unsatisfiable);
        // Several ranges, another unit or nonsense: the whole file.
        for whole in ["bytes=0-1,5-9", "items=0-3", "bytes=x-y", "bytes=-"] {
            assert_eq!(range(whole), Wanted::All, "{whole}");
        }
    }
}
