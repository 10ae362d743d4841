//! The web server (ssr only): configuration, database, media storage, the job queue and
//! worker, and the HTTP router that ties them to the Leptos app and the REST API.

pub mod admission;
pub mod config;
pub mod db;
pub mod guard;
pub mod ids;
pub mod jobs;
pub mod owner;
pub mod pipeline;
pub mod playlists;
pub mod songs;
pub mod storage;
pub mod worker_threads;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::FromRef;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::sync::Notify;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::{shell, App};
use admission::RateLimiter;
use config::ServeConfig;
use db::Db;
use jobs::{Hub, Queue};
use pipeline::{ModelConfig, Models};
use storage::Storage;

/// Shared by every handler and server function.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub queue: Queue,
    pub config: Arc<ServeConfig>,
    /// The MusicGen in use is the tiny random one: songs are noise.
    pub noise: bool,
    /// Songs per client per minute.
    pub limiter: Arc<RateLimiter>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(s: &AppState) -> Self {
        s.leptos_options.clone()
    }
}

impl AppState {
    pub fn db(&self) -> &Db {
        &self.queue.db
    }
    pub fn storage(&self) -> &Storage {
        &self.queue.storage
    }
}

fn leptos_options(cfg: &ServeConfig) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(std::env::var("LEPTOS_OUTPUT_NAME").unwrap_or_else(|_| "snapsong".into()))
        .site_root(cfg.site_root.clone())
        .site_pkg_dir("pkg")
        .site_addr(cfg.addr)
        .build()
}

/// Model choices, with `--tiny-models` making (once) and using local random ones.
fn model_config(cfg: &ServeConfig) -> Result<ModelConfig> {
    let mut m = ModelConfig {
        musicgen: cfg.musicgen_model.clone(),
        caption: cfg.caption_model.clone(),
        clip: cfg.clip_model.clone(),
        device: cfg.device.clone(),
        dtype: cfg.dtype.clone(),
    };
    if cfg.tiny_models {
        let root = cfg.media_dir.join("tiny-models");
        let dirs = crate::ml::tiny::ensure_tiny_set(&root)?;
        m.musicgen = dirs.musicgen.display().to_string();
        m.caption = dirs.blip.display().to_string();
        m.clip = dirs.clip.display().to_string();
    }
    Ok(m)
}

/// The server's parts, ready to route requests and run jobs.
pub struct Built {
    pub state: AppState,
    pub models: Models,
    /// Where songs are made (see `worker_threads`).
    pub workers: rayon::ThreadPool,
}

/// Open the database and media folder (sweeping what a crash left half-made), prepare
/// the models (making the tiny set if asked).
pub async fn build(cfg: ServeConfig) -> Result<Built> {
    let db = Db::connect(&cfg.database_url).await?;
    let storage = Storage::new(&cfg.media_dir)?;
    let known: HashSet<String> = db.song_ids().await?.into_iter().collect();
    match storage
        .sweep(&known)
        .context("cannot sweep the media folder")?
    {
        (0, 0) => {}
        (dirs, parts) => tracing::warn!(dirs, parts, "removed media left by an interrupted upload"),
    }
    let workers = worker_threads::pool(cfg.worker_threads, cfg.worker_nice)?;
    let mut models = Models::new(model_config(&cfg)?)?;
    let noise = models.is_noise();
    if cfg.tiny_models {
        models.warm()?;
    }
    let queue = Queue {
        db,
        storage,
        hub: Hub::default(),
        wake: Arc::new(Notify::new()),
        stopping: Arc::new(AtomicBool::new(false)),
    };
    let state = AppState {
        leptos_options: leptos_options(&cfg),
        queue,
        limiter: Arc::new(RateLimiter::new(cfg.songs_per_minute, cfg.songs_burst)),
        config: Arc::new(cfg),
        noise,
    };
    Ok(Built {
        state,
        models,
        workers,
    })
}

/// Serve until SIGINT/SIGTERM; then stop taking jobs, let the current one stop and go
/// back to the queue, and close the database.
pub async fn serve(cfg: ServeConfig) -> Result<()> {
    let addr = cfg.addr;
    let Built {
        state,
        models,
        workers,
    } = build(cfg).await?;
    let queue = state.queue.clone();
    let worker = tokio::spawn(queue.clone().work(models, workers));
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!("listening on http://{addr}");
    let stopping = queue.stopping.clone();
    let wake = queue.wake.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new jobs; the current one goes back to the queue");
        stopping.store(true, Ordering::SeqCst);
        wake.notify_waiters();
    })
    .await?;
    let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
    queue.db.close().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// The whole HTTP surface: pages (SSR + hydration), server functions, REST API, media.
/// Every request passes, outermost first: tracing, security headers, the time limit, the
/// body limit, the cross-site refusal, then client and owner identification.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let media = Router::new()
        .fallback_service(ServeDir::new(state.storage().songs_dir()))
        // A song's files never change once written (they are written whole, then renamed).
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ));
    let context_state = state.clone();
    // The largest request is an upload. The upload route's own limit (rest.rs) is the
    // tighter one and answers 413 in words; this one bounds every other route.
    let body_limit = state.config.max_upload_bytes + 128 * 1024;
    let opts = state.leptos_options.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::api::rest::routes(&state))
        .nest("/media", media)
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
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
