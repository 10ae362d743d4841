//! The whole HTTP surface in one place: pages (SSR + hydration), server functions, the REST
//! API, media, and the middleware every request passes.

use std::time::Duration;

use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::{provide_context, IntoView};
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::api::types::MEDIA_PREFIX;
use crate::app::App;
use crate::server::http::{self, media, rest};
use crate::server::metrics;
use crate::server::middleware::{admission, guard, owner};
use crate::server::state::AppState;

/// The page shell, with this response's CSP nonce provided for the scripts Leptos writes.
fn shell(options: LeptosOptions) -> impl IntoView {
    guard::provide_request_nonce();
    crate::app::shell(options)
}

/// The whole HTTP surface: pages (SSR + hydration), server functions, REST API, media.
/// Every request passes, outermost first: tracing, security headers, the time limit, the
/// body limit, the cross-site refusal, then client and owner identification.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let context_state = state.clone();
    // The largest request is an upload. The upload route's own limit (http::rest) is the
    // tighter one and answers 413 in words; this one bounds every other route.
    let body_limit = state.config.max_upload_bytes + 128 * 1024;
    let opts = state.leptos_options.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(http::metrics::render))
        .merge(rest::routes(&state))
        .nest(MEDIA_PREFIX, media::routes(&state))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(context_state.clone()),
            move || shell(opts.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn(owner::middleware))
        .layer(from_fn_with_state(state.clone(), admission::identify))
        .layer(from_fn_with_state(state.clone(), guard::refuse_cross_site))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(state.config.request_timeout_secs.max(1)),
        ))
        .layer(axum::middleware::from_fn(guard::security_headers))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A worker process's HTTP surface: health and metrics only.
pub fn worker_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(http::metrics::render))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}
