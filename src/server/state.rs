//! What every handler and server function shares, and how it is put together at start:
//! the database, the media store, the queue the worker takes songs from, the models.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::FromRef;
use axum::http::HeaderMap;
use leptos::config::LeptosOptions;
use tokio::sync::Notify;

use crate::ml::hub::ModelChoice;
use crate::ml::text;
use crate::server::config::ServeConfig;
use crate::server::db::Db;
use crate::server::middleware::rate_limit::RateLimiter;
use crate::server::storage::Storage;
use crate::server::worker::models::{ModelConfig, Models};
use crate::server::worker::progress::Hub;
use crate::server::worker::{threads, Queue};

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

    /// The address links should start with: configured, or from the request.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(u) = &self.config.public_url {
            return u.trim_end_matches('/').to_string();
        }
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .map(str::to_string)
            .unwrap_or_else(|| self.config.addr.to_string());
        let proto = headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .filter(|p| *p == "https")
            .unwrap_or("http");
        format!("{proto}://{host}")
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
fn model_config(cfg: &ServeConfig, device: &candle_core::Device) -> Result<ModelConfig> {
    let mut m = ModelConfig {
        musicgen: cfg.musicgen_model.clone(),
        caption: cfg.caption_model.clone(),
        clip: cfg.clip_model.clone(),
        text: cfg
            .text_model
            .clone()
            .unwrap_or_else(|| ModelChoice::Use(text::DEFAULT_MODEL.into())),
        precision: cfg.dtype.resolve(device),
        caption_precision: cfg.dtype.exact_or_f32(),
    };
    if cfg.tiny_models {
        let root = cfg.media_dir.join("tiny-models");
        let dirs = crate::ml::tiny::ensure_tiny_set(&root)?;
        m.musicgen = dirs.musicgen.display().to_string();
        m.caption = ModelChoice::Use(dirs.blip.display().to_string());
        m.clip = ModelChoice::Use(dirs.clip.display().to_string());
        // No tiny text model: random weights would make up meanings. Keywords still work.
        m.text = cfg.text_model.clone().unwrap_or(ModelChoice::Off);
    }
    Ok(m)
}

/// The server's parts, ready to route requests and run jobs.
pub struct Built {
    pub state: AppState,
    pub models: Models,
    /// Where songs are made (see `worker::threads`).
    pub workers: rayon::ThreadPool,
}

/// Open the database and media folder (sweeping what a crash left half-made), prepare
/// the models (making the tiny set if asked).
pub async fn build(cfg: ServeConfig) -> Result<Built> {
    // A device this build or machine cannot use stops the start here, before anything
    // is touched.
    let device = cfg.device.open()?;
    crate::server::metrics::install();
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
    backfill_mp3(&storage, &known);
    let workers = threads::pool(cfg.worker_threads, cfg.worker_nice)?;
    let mut models = Models::new(model_config(&cfg, &device)?, device);
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
        pace: cfg.pace,
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

/// Songs made before MP3s existed get one, on a background thread (LAME encodes about a
/// hundred times faster than real time; until a song's turn, its MP3 link answers 404).
fn backfill_mp3(storage: &Storage, known: &HashSet<String>) {
    let (storage, known) = (storage.clone(), known.clone());
    // The scan too (two file checks a song) is off the start-up path.
    std::thread::spawn(move || {
        let missing = storage.missing_mp3(&known);
        if missing.is_empty() {
            return;
        }
        let mut made = 0;
        for id in &missing {
            match storage.make_mp3(id) {
                Ok(()) => made += 1,
                Err(e) => tracing::warn!(%id, "cannot make the MP3: {e:#}"),
            }
        }
        tracing::info!(made, "made the MP3 of songs from before MP3s");
    });
}
