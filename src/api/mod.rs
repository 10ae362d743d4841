//! The boundary between the UI and the server: shared types (`types`, in both builds) and
//! server functions (`songs`, `playlists`): thin, they check input and call the server's
//! services, turning an `AppError` into a `ServerFnError` with its status.

pub mod live;
pub mod playlists;
pub mod songs;
pub mod types;

#[cfg(feature = "ssr")]
mod context {
    use leptos::prelude::*;

    use crate::server::middleware::owner::Owner;
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
        state.base_url(&headers)
    }
}
#[cfg(feature = "ssr")]
pub(crate) use context::{base_url, caller};
