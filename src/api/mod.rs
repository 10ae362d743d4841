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

    /// Log the cause, tell the browser only that it failed.
    pub fn internal(e: anyhow::Error) -> ServerFnError {
        tracing::error!("{e:#}");
        ServerFnError::new("something went wrong on the server")
    }
}
#[cfg(feature = "ssr")]
pub(crate) use context::{base_url, caller, internal};
