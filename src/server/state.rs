//! What every handler and server function shares, and how it is put together at start:
//! the database, the media store, the queue the worker takes songs from, the models.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;
use axum::extract::FromRef;
use axum::http::HeaderMap;
use leptos::config::LeptosOptions;
use tokio::sync::Notify;

use crate::ml::hub::ModelChoice;
use crate::ml::text;
use crate::server::config::ServeConfig;
use crate::server::db::{Db, Lease};
use crate::server::storage::{Location, Storage};
use crate::server::worker::models::{ModelConfig, Models};
use crate::server::worker::progress::Hub;
use crate::server::worker::{default_batch, threads, worker_name, Queue};

/// Shared by every handler and server function. Cloned for every request (extractors,
/// middleware, the server functions' context), so it is one reference count: cloning the
/// parts one by one was a dozen atomic updates per clone, ~4 % of a page view's CPU.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What `AppState` shares.
pub struct Shared {
    pub leptos_options: LeptosOptions,
    pub queue: Queue,
    pub config: Arc<ServeConfig>,
    /// The MusicGen in use is the tiny random one: songs are noise.
    pub noise: bool,
    /// Where uploaded photos are decoded and re-encoded (`worker::threads::Intake`).
    pub intake: threads::Intake,
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
            .unwrap_or_else(|| self.config.web_addr().to_string());
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
        .site_addr(cfg.web_addr())
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

/// What a process is for: `serve` (web app, with a worker unless `--no-worker`) or
/// `worker` (makes songs; no web app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Serve,
    Worker,
}

/// What makes songs: the models and the threads they run on.
pub struct Worker {
    pub models: Models,
    /// Where songs are made (see `worker::threads`).
    pub threads: rayon::ThreadPool,
    /// Songs made at once (`--batch`).
    pub batch: usize,
}

/// The server's parts, ready to route requests and run jobs.
pub struct Built {
    pub state: AppState,
    /// None on a web node (`serve --no-worker`): it loads no model.
    pub worker: Option<Worker>,
}

/// Open the database and media store (a web node tidies the store in the background),
/// prepare the models (making the tiny set if asked) unless this is a web node only.
pub async fn build(cfg: ServeConfig, role: Role) -> Result<Built> {
    if role == Role::Worker && cfg.no_worker {
        anyhow::bail!("--no-worker is for `serve`; a worker always makes songs");
    }
    let with_worker = role == Role::Worker || !cfg.no_worker;
    // A device this build or machine cannot use stops the start here, before anything
    // is touched.
    let device = cfg.device.open()?;
    crate::server::metrics::install();
    let db = Db::connect(&cfg.database_url).await?;
    let location = match &cfg.storage {
        Some(spec) => Location::parse(spec)?,
        None => Location::Folder(cfg.media_dir.clone()),
    };
    let storage = Storage::open(location)?;
    if role == Role::Serve {
        tidy_store(&db, &storage);
    }
    let worker = if with_worker {
        let threads = threads::pool(cfg.worker_threads, cfg.worker_priority)?;
        let batch = match cfg.batch {
            0 => default_batch(&device),
            n => n,
        };
        let mut models = Models::new(model_config(&cfg, &device)?, device);
        if cfg.tiny_models {
            models.warm()?;
        }
        Some(Worker {
            models,
            threads,
            batch,
        })
    } else {
        None
    };
    let noise = worker
        .as_ref()
        .map_or(cfg.tiny_models, |w| w.models.is_noise());
    let name = match (&cfg.name, role) {
        (Some(name), _) => name.clone(),
        (None, Role::Serve) => worker_name("serve", &cfg.web_addr().to_string()),
        (None, Role::Worker) => worker_name("worker", &std::process::id().to_string()),
    };
    let queue = Queue {
        db,
        storage,
        hub: Hub::default(),
        wake: Arc::new(Notify::new()),
        stopping: Arc::new(AtomicBool::new(false)),
        pace: cfg.pace,
        lease: Lease {
            worker: name,
            ms: cfg.lease_secs as i64 * 1000,
        },
    };
    let state = AppState(Arc::new(Shared {
        leptos_options: leptos_options(&cfg),
        intake: threads::Intake::default(),
        queue,
        config: Arc::new(cfg),
        noise,
    }));
    Ok(Built { state, worker })
}

/// In the background, from one listing of the store (a web node's start is not held up by
/// a big bucket): sweep what a crash left half-made (`Storage::sweep`), then make the MP3
/// of songs from before MP3s existed (LAME encodes about a hundred times faster than real
/// time; until a song's turn, its MP3 link answers 404).
fn tidy_store(db: &Db, storage: &Storage) {
    let (db, storage) = (db.clone(), storage.clone());
    tokio::spawn(async move {
        let looked = async {
            let known: HashSet<String> = db.song_ids().await?.into_iter().collect();
            let listed = storage.list().await?;
            anyhow::Ok((known, listed))
        };
        let (known, listed) = match looked.await {
            Ok(found) => found,
            Err(e) => return tracing::warn!("cannot look over the media store: {e:#}"),
        };
        match storage.sweep(&known, &listed).await {
            Ok((0, 0)) => {}
            Ok((songs, files)) => {
                tracing::warn!(songs, files, "removed media left by an interrupted upload")
            }
            Err(e) => tracing::warn!("cannot sweep the media store {}: {e:#}", storage.location()),
        }
        let missing = Storage::missing_mp3(&known, &listed);
        if missing.is_empty() {
            return;
        }
        let mut made = 0;
        for id in &missing {
            match storage.make_mp3(id).await {
                Ok(()) => made += 1,
                Err(e) => tracing::warn!(%id, "cannot make the MP3: {e:#}"),
            }
        }
        tracing::info!(made, "made the MP3 of songs from before MP3s");
    });
}
