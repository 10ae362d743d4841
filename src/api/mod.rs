//! The boundary between the UI and the server: shared types (`types`, in both builds) and
//! server functions (`songs`, `playlists`): thin, they check input and call the server's
//! services, turning an `AppError` into a `ServerFnError` with its status.

pub mod live;
pub mod playlists;
pub mod songs;
pub mod types;

#[cfg(feature = "ssr")]
mod context {
    use axum::http::request::Parts;
    use axum::http::HeaderMap;
    use leptos::prelude::*;

    use crate::server::middleware::owner::Owner;
    use crate::server::AppState;

    // The request is read in place (`with_context`): `leptos_axum::extract` clones its
    // parts whole, every header and extension, and a song page asked three times.

    /// The server state and the caller's owner hash, inside a server function.
    pub fn caller() -> Result<(AppState, Owner), ServerFnError> {
        let state =
            use_context::<AppState>().ok_or_else(|| ServerFnError::new("server state missing"))?;
        let owner = with_context::<Parts, _>(|p| p.extensions.get::<Owner>().cloned())
            .flatten()
            .ok_or_else(|| ServerFnError::new("the request has no owner (middleware missing)"))?;
        Ok((state, owner))
    }

    /// The public address for absolute links (share cards).
    pub fn base_url(state: &AppState) -> String {
        with_context::<Parts, _>(|p| state.base_url(&p.headers))
            .unwrap_or_else(|| state.base_url(&HeaderMap::new()))
    }
}
#[cfg(feature = "ssr")]
pub(crate) use context::{base_url, caller};
