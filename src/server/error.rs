//! The server's one error type, and the policy for errors in every layer.
//!
//! | layer | error type | why |
//! |---|---|---|
//! | `photo`, `prompt` (intake) | `PhotoError`, `ComposeError` (thiserror enums) | callers need the kind (too large, not an image, unknown genre) to answer well |
//! | `ml` networks (`load(vb)`, `forward`) | `candle_core::Result` | as candle-transformers: tensor code talks candle |
//! | `ml` loaders and glue, `cli` | `anyhow::Result` with context | a person reads the chain ("cannot read config.json: …") |
//! | `server` (db, storage, worker, services, HTTP) | `AppError` below; plain `anyhow` inside for failures that are only ever a 500 | one status + message + Retry-After, whatever refused |
//! | `api` server functions | `ServerFnError`, made only by `AppError::into_server_fn_error` | the browser's server-fn client reads the status and message |
//!
//! An `AppError` is a refusal a person can act on (4xx, in words) or an internal failure
//! (500: the cause is logged, the person is told only that it failed and nothing was kept).
//! Handlers return `Result<_, AppError>` and the response is `{"error": "…"}` with the
//! status, so the REST API, the pages and the server functions refuse in the same words.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::photo::PhotoError;
use crate::prompt::ComposeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds the caller should wait before asking again (429, 503).
    pub retry_after: Option<u64>,
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// "no such song", "no such playlist": also the answer to a malformed id.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("no such {what}"))
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    /// A failure of ours: the cause goes to the log, the caller hears only that it failed.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        tracing::error!("{:#}", e.into());
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "something went wrong on the server; nothing was kept",
        )
    }

    /// As a server-fn error: the response gets this status (and Retry-After), which the
    /// browser's server-fn client reads as an error, so a refusal is a 4xx, not a 500.
    pub fn into_server_fn_error(self) -> leptos::prelude::ServerFnError {
        use leptos::prelude::use_context;
        if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
            res.set_status(self.status);
            if let Some(secs) = self.retry_after {
                res.insert_header(RETRY_AFTER, HeaderValue::from(secs));
            }
        }
        leptos::prelude::ServerFnError::new(self.message)
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(e)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(e)
    }
}

impl From<PhotoError> for AppError {
    fn from(e: PhotoError) -> Self {
        let status = match e {
            PhotoError::TooLarge { .. } | PhotoError::TooManyPixels { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            PhotoError::Unsupported(_) | PhotoError::NotAnImage(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.to_string())
    }
}

impl From<ComposeError> for AppError {
    fn from(e: ComposeError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl From<AppError> for leptos::prelude::ServerFnError {
    fn from(e: AppError) -> Self {
        e.into_server_fn_error()
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        let mut res = (self.status, body).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
