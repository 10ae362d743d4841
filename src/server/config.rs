//! Everything the server can be told, in one place: CLI flags, each with an environment
//! variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::api::types::{DEFAULT_MAX_UPLOAD_BYTES, MAX_DURATION_S, MIN_DURATION_S};
use crate::ml::hub::ModelChoice;
use crate::ml::vision::{blip, clip};
use crate::ml::{musicgen, DeviceChoice, DtypeChoice};
use crate::server::worker::threads::Priority;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on. `serve`: the web app (default 127.0.0.1:3000). `worker`:
    /// only /healthz and /metrics, and only if given.
    #[arg(long, env = "SNAPSONG_ADDR")]
    pub addr: Option<SocketAddr>,
    /// sqlite:FILE (default) or postgres://… (what several nodes share).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:snapsong.db")]
    pub database_url: String,
    /// Where photos, covers and songs are kept: a folder (or file://FOLDER), or
    /// s3://BUCKET[/PREFIX] with the standard AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY and AWS_REGION. Default: --media-dir.
    #[arg(long, env = "SNAPSONG_STORAGE")]
    pub storage: Option<String>,
    /// The local media folder (when --storage is not given), and where --tiny-models
    /// are made.
    #[arg(long, env = "SNAPSONG_MEDIA_DIR", default_value = "media")]
    pub media_dir: PathBuf,
    /// `serve` only: a web node, no worker (loads no model); songs are made by
    /// `snapsong worker` processes on the same database and storage.
    #[arg(long, env = "SNAPSONG_NO_WORKER")]
    pub no_worker: bool,
    /// How long a worker's hold on a song lasts without a heartbeat (seconds): a song
    /// whose worker was killed or cut off is taken by another worker after this.
    #[arg(long, env = "SNAPSONG_LEASE_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_secs: u64,
    /// Use tiny random models made locally (no download; songs are noise, and say so).
    #[arg(long, env = "SNAPSONG_TINY_MODELS")]
    pub tiny_models: bool,
    /// MusicGen: hub repo id or local directory.
    #[arg(long, env = "SNAPSONG_MUSICGEN_MODEL", default_value = musicgen::DEFAULT_MODEL)]
    pub musicgen_model: String,
    /// BLIP captioner: hub repo id, local directory, or "none".
    #[arg(long, env = "SNAPSONG_CAPTION_MODEL", default_value = blip::DEFAULT_MODEL)]
    pub caption_model: ModelChoice,
    /// CLIP: hub repo id, local directory, or "none".
    #[arg(long, env = "SNAPSONG_CLIP_MODEL", default_value = clip::DEFAULT_MODEL)]
    pub clip_model: ModelChoice,
    /// Text model that reads the person's words for meaning: hub repo id, local
    /// directory, or "none" (keywords only). With --tiny-models it is off unless given.
    #[arg(long, env = "SNAPSONG_TEXT_MODEL")]
    pub text_model: Option<ModelChoice>,
    /// cpu, cuda or cuda:N (checked at start: a build without CUDA stops there).
    #[arg(long, env = "SNAPSONG_DEVICE", default_value = "cpu")]
    pub device: DeviceChoice,
    /// auto, f32, f16, bf16 or q8_0 (MusicGen decoder and BLIP text weights). auto: q8_0
    /// on a CPU with AVX2 or better, else f32.
    #[arg(long, env = "SNAPSONG_DTYPE", default_value = "auto")]
    pub dtype: DtypeChoice,
    /// Longest song (seconds) this server makes, up to 180 (past 30 s a song is made in
    /// windows, so time grows with length and memory does not).
    #[arg(long, env = "SNAPSONG_MAX_DURATION", default_value_t = MAX_DURATION_S,
          value_parser = parse_max_duration)]
    pub max_duration: f32,
    /// Make songs no faster than this many times real time (0: as fast as the machine
    /// can). With --tiny-models, which make noise in a blink, 1 shows a song heard while
    /// it is made as a real model would on a fast machine.
    #[arg(long, env = "SNAPSONG_PACE", default_value_t = 0.0)]
    pub pace: f64,
    /// Largest upload (bytes) the server reads.
    #[arg(long, env = "SNAPSONG_MAX_UPLOAD_BYTES", default_value_t = DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: usize,
    /// The public address for links in share cards (e.g. https://songs.example.com);
    /// by default it is taken from each request's Host header.
    #[arg(long, env = "SNAPSONG_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Songs one client may start per minute, after its burst is spent (0: only the burst).
    #[arg(long, env = "SNAPSONG_SONGS_PER_MINUTE", default_value_t = 4.0)]
    pub songs_per_minute: f64,
    /// Songs one client may start at once before the per-minute rate applies.
    #[arg(long, env = "SNAPSONG_SONGS_BURST", default_value_t = 8)]
    pub songs_burst: u32,
    /// Songs one client may have waiting or being made at the same time.
    #[arg(long, env = "SNAPSONG_MAX_QUEUED_PER_CLIENT", default_value_t = 4)]
    pub max_queued_per_client: u32,
    /// Songs everyone together may have waiting or being made.
    #[arg(long, env = "SNAPSONG_MAX_QUEUED", default_value_t = 200)]
    pub max_queued: u32,
    /// Longest time one request may take to be read and answered (seconds); live
    /// progress streams are not cut by it.
    #[arg(long, env = "SNAPSONG_REQUEST_TIMEOUT_SECS", default_value_t = 60)]
    pub request_timeout_secs: u64,
    /// Count clients by the last X-Forwarded-For address (only behind your own proxy).
    #[arg(long, env = "SNAPSONG_TRUST_PROXY")]
    pub trust_proxy: bool,
    /// How the threads that make songs give way to page views when the CPU is short
    /// (Linux): `idle` (songs get only the CPU nothing else wants) or a niceness 0–19
    /// (they keep that share). Songs use every idle cycle either way.
    #[arg(long, alias = "worker-nice", env = "SNAPSONG_WORKER_PRIORITY", default_value_t = Priority::Idle)]
    pub worker_priority: Priority,
    /// This process's worker's name in the queue (default HOST/worker/PID, or
    /// HOST/serve/ADDR). It must be unique among live workers: a job is held by a name. A
    /// worker started again under the name it had takes back at once the jobs it held
    /// when it stopped, instead of after their leases run out (give each worker a fixed
    /// name under a supervisor that restarts it).
    #[arg(long, env = "SNAPSONG_WORKER_NAME", value_parser = parse_worker_name)]
    pub name: Option<String>,
    /// Songs a worker makes at once, decoded together (one pass of the decoder per step
    /// for all of them: each weight read once). 0: what suits the device (see
    /// `default_batch`).
    #[arg(long, env = "SNAPSONG_BATCH", default_value_t = 0)]
    pub batch: usize,
    /// Threads that make songs (0: one per core).
    #[arg(long, env = "SNAPSONG_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,
    /// Log lines as `text` (colours only on a terminal) or `json` (one object a line, for
    /// log collectors); a job's lines carry its song id either way.
    #[arg(long, env = "SNAPSONG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Where scripts/build-web (or cargo-leptos) put the site: wasm, JS, CSS, public/.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: String,
}

/// The flags (by field) only a web node reads. `snapsong worker` accepts them, so one
/// environment can serve every role, but its --help leaves them out.
pub const WEB_ONLY: [&str; 10] = [
    "no_worker",
    "max_upload_bytes",
    "public_url",
    "songs_per_minute",
    "songs_burst",
    "max_queued_per_client",
    "max_queued",
    "request_timeout_secs",
    "trust_proxy",
    "site_root",
];

/// The longest worker name (it is stored in every row the worker holds).
const MAX_WORKER_NAME: usize = 100;

impl ServeConfig {
    /// The web app's address (`--addr`, or 127.0.0.1:3000).
    pub fn web_addr(&self) -> SocketAddr {
        self.addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)))
    }
}

fn parse_worker_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty()
        || name.chars().count() > MAX_WORKER_NAME
        || name.chars().any(char::is_control)
    {
        return Err(format!(
            "1 to {MAX_WORKER_NAME} characters, no control characters"
        ));
    }
    Ok(name.to_string())
}

fn parse_max_duration(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(d) if (MIN_DURATION_S..=MAX_DURATION_S).contains(&d) => Ok(d),
        _ => Err(format!(
            "a number of seconds from {MIN_DURATION_S} to {MAX_DURATION_S}"
        )),
    }
}
