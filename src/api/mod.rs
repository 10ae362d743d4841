//! The boundary between the UI and the server: shared types, server functions (thin: check
//! input, call `server::`), and the REST API.

pub mod playlists;
pub mod songs;
pub mod types;

#[cfg(feature = "ssr")]
pub mod rest;

#[cfg(feature = "ssr")]
mod context {
    use leptos::prelude::*;

    use crate::server::owner::Owner;
    use crate::server::AppState;

    /// The server state and the caller's owner hash, inside a server function.
    pub async fn caller() -> Result<(AppState, Owner), ServerFnError> {
        let state =
            use_context::<AppState>().ok_or_else(|| ServerFnError::new("server state missing"))?;
        let axum::Extension(owner) = leptos_axum::extract::<axum::Extension<Owner>>().await?;
        Ok((state, owner))
    }

    /// The public address for absolute links (share cards).
    pub async fn base_url(state: &AppState) -> String {
        let headers: axum::http::HeaderMap = leptos_axum::extract().await.unwrap_or_default();
        super::rest::base_url(state, &headers)
    }

    /// A refusal with its HTTP status (the browser's server-fn client reads any 4xx/5xx
    /// as an error), so hostile or mistaken calls are a clear 4xx, not a 500.
    pub fn refuse(status: u16, message: impl Into<String>) -> ServerFnError {
        if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
            if let Ok(code) = axum::http::StatusCode::from_u16(status) {
                res.set_status(code);
            }
        }
        ServerFnError::new(message.into())
    }

    /// A `server::songs::Refused` as a server-fn error, Retry-After included.
    pub fn refused(r: crate::server::songs::Refused) -> ServerFnError {
        if let (Some(secs), Some(res)) =
            (r.retry_after, use_context::<leptos_axum::ResponseOptions>())
        {
            res.insert_header(axum::http::header::RETRY_AFTER, secs.into());
        }
        refuse(r.status, r.message)
    }

    /// Log the cause, tell the browser only that it failed.
    pub fn internal(e: anyhow::Error) -> ServerFnError {
        tracing::error!("{e:#}");
        ServerFnError::new("something went wrong on the server")
    }
}
#[cfg(feature = "ssr")]
pub(crate) use context::{base_url, caller, internal, refuse, refused};
