//! What the server tests share: a real server on a temp dir, multipart bodies, requests.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use clap::Parser;
use http_body_util::BodyExt;
use snapsong::api::types::{COVER_JPG, PHOTO_JPG, SHARE_JPG, SONG_CODES, SONG_MP3, SONG_WAV};
use snapsong::server::config::ServeConfig;
use snapsong::server::storage::{Location, Storage};
use snapsong::server::{build, router, AppState, Role};
use std::collections::BTreeMap;

/// The names of a song's files.
pub const SONG_FILES: [&str; 6] = [
    PHOTO_JPG, COVER_JPG, SHARE_JPG, SONG_CODES, SONG_MP3, SONG_WAV,
];
use tower::ServiceExt;

#[derive(Parser)]
pub struct Cfg {
    #[command(flatten)]
    serve: ServeConfig,
}

pub struct Server {
    pub app: axum::Router,
    pub state: AppState,
    pub _dir: tempfile::TempDir,
}

/// Song limits lifted, for tests that are not about them.
const NO_LIMITS: [&str; 4] = ["--songs-burst", "1000", "--max-queued-per-client", "1000"];

/// The real server (router, database, media, worker) with tiny models; song limits are
/// lifted unless a test sets its own (`extra` flags come last and win).
pub async fn start() -> Server {
    start_with(&NO_LIMITS, true).await
}

/// A web node (`--no-worker`) whose songs a worker elsewhere makes (on the same database
/// and store), song limits lifted: hostile requests meet what a scaled-out site runs.
pub async fn start_web_node() -> Server {
    start_making(&NO_LIMITS, Makes::Elsewhere).await
}

/// Where a test server keeps its rows and media: SQLite and a folder in its temp dir, or,
/// with `SNAPSONG_TEST_BACKEND=postgres` (scripts/test runs the whole suite that way too,
/// against the servers `scripts/test-servers` starts), a new database of its own on the
/// test Postgres and a key prefix of its own in the test S3 bucket.
pub struct Backend {
    pub database_url: String,
    pub storage: String,
}

impl Backend {
    pub fn postgres() -> bool {
        std::env::var("SNAPSONG_TEST_BACKEND").is_ok_and(|b| b == "postgres")
    }

    pub async fn new(dir: &std::path::Path) -> Backend {
        if !Self::postgres() {
            return Backend {
                database_url: format!("sqlite:{}", dir.join("db.sqlite").display()),
                storage: dir.join("media").display().to_string(),
            };
        }
        let (server, bucket) = (env("SNAPSONG_TEST_POSTGRES"), env("SNAPSONG_TEST_S3"));
        let name = format!("t{}", snapsong::server::ids::new_id());
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
            .await
            .expect("the test Postgres answers");
        sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create a test database");
        let base = server.rsplit_once('/').expect("a database URL").0;
        Backend {
            database_url: format!("{base}/{name}"),
            storage: format!("{bucket}/{name}"),
        }
    }

    /// Every song's files in the store: name → last change, by song id.
    pub async fn media(&self) -> BTreeMap<String, BTreeMap<String, i64>> {
        let location = Location::parse(&self.storage).expect("a storage location");
        Storage::open(location)
            .expect("open the store")
            .list()
            .await
            .expect("list the store")
    }

    /// The flags that point a server at this backend.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--database-url".into(),
            self.database_url.clone(),
            "--storage".into(),
            self.storage.clone(),
        ]
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the Postgres + S3 tests through scripts/test")
    })
}

/// How a test server makes songs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Makes {
    /// `serve`: the web app and its in-process worker (the default deployment).
    InProcess,
    /// A web node (`--no-worker`) and no worker: songs wait.
    Nothing,
    /// A web node, and a worker of its own (as `snapsong worker`) on the same database
    /// and store: the web node follows the songs through the rows and the store only.
    Elsewhere,
}

/// As `start`, with extra flags, and with or without the worker taking jobs (without:
/// a web node, `--no-worker`, as in a scaled-out deployment).
pub async fn start_with(extra: &[&str], worker: bool) -> Server {
    let makes = if worker {
        Makes::InProcess
    } else {
        Makes::Nothing
    };
    start_making(extra, makes).await
}

/// A server whose songs are made as `makes` says, with extra flags.
pub async fn start_making(extra: &[&str], makes: Makes) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = Backend::new(dir.path()).await;
    let media = dir.path().join("media");
    let flags = backend.flags();
    let config = |web_only: bool| {
        Cfg::parse_from(
            [
                "test",
                "--tiny-models",
                "--media-dir",
                media.to_str().expect("utf-8 path"),
                "--max-upload-bytes",
                "2000000",
            ]
            .into_iter()
            .chain(flags.iter().map(String::as_str))
            .chain(web_only.then_some("--no-worker"))
            .chain(extra.iter().copied()),
        )
        .serve
    };
    let web = build(config(makes != Makes::InProcess), Role::Serve)
        .await
        .expect("server builds");
    let state = web.state.clone();
    let worker = match makes {
        Makes::InProcess => web.worker.map(|w| (state.queue.clone(), w)),
        Makes::Nothing => None,
        Makes::Elsewhere => {
            let other = build(config(false), Role::Worker)
                .await
                .expect("worker builds");
            other.worker.map(|w| (other.state.queue.clone(), w))
        }
    };
    if let Some((queue, w)) = worker {
        tokio::spawn(queue.work(w.models, w.threads, w.batch));
    }
    Server {
        app: router(state.clone()),
        state,
        _dir: dir,
    }
}

/// (part name, file name, bytes)
pub type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

pub fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = "snapsongtestboundary";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, body)
}

pub async fn post_song(app: &axum::Router, parts: &[Part<'_>]) -> (StatusCode, serde_json::Value) {
    let (ctype, body) = multipart(parts);
    let req = Request::post("/api/songs")
        .header(header::CONTENT_TYPE, ctype)
        .header(header::HOST, "songs.test")
        .body(Body::from(body))
        .expect("request");
    let (status, body) = send(app, req).await;
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

pub async fn get_json(app: &axum::Router, uri: &str) -> (StatusCode, serde_json::Value) {
    let req = Request::get(uri)
        .header(header::HOST, "songs.test")
        .body(Body::empty())
        .expect("request");
    let (status, body) = send(app, req).await;
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

pub async fn song_count(state: &AppState) -> i64 {
    let (n,): (i64,) = state
        .db()
        .fetch_one(sqlx::query_as("SELECT COUNT(*) FROM songs"))
        .await
        .expect("count");
    n
}

/// How many songs have media in the store.
pub async fn media_entries(state: &AppState) -> usize {
    state.storage().list().await.expect("list the media").len()
}

pub const PHOTO: &[u8] = include_bytes!("../fixtures/photos/landscape.jpg");

/// A request as a browser page on this site would send it (Host, Origin and
/// Sec-Fetch-Site same-origin), with an owner cookie if given.
pub fn same_origin(
    req: axum::http::request::Builder,
    cookie: Option<&str>,
) -> axum::http::request::Builder {
    let req = req
        .header(header::HOST, "songs.test")
        .header(header::ORIGIN, "http://songs.test")
        .header("sec-fetch-site", "same-origin");
    match cookie {
        Some(token) => req.header(header::COOKIE, format!("snapsong_owner={token}")),
        None => req,
    }
}

/// Call a server function (form-encoded arguments) from this site's pages.
pub async fn server_fn(
    app: &axum::Router,
    name: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, String) {
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let req = same_origin(Request::post(format!("/api/fn/{name}")), cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("request");
    let (status, body) = send(app, req).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Wait (up to 30 s) until a song is ready or failed; returns its status JSON.
pub async fn wait_done(app: &axum::Router, id: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..300 {
        last = get_json(app, &format!("/api/songs/{id}")).await.1;
        if last["status"] == "ready" || last["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last
}

/// GET a page as a browser on songs.test would: (status, HTML).
pub async fn get_page(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let req = Request::get(uri)
        .header(header::HOST, "songs.test")
        .body(Body::empty())
        .expect("request");
    let (status, body) = send(app, req).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The committed fixtures. Relative to the working directory, which cargo sets to the
/// package root when it runs tests, so a test binary carried to another machine (a GPU
/// one) finds them in that machine's checkout.
pub fn fixtures() -> std::path::PathBuf {
    std::path::PathBuf::from("tests/fixtures")
}

/// The device the parity and batching tests run their models on: the CPU, or
/// `SNAPSONG_TEST_DEVICE` (`cuda`) when a CUDA build of this binary runs on a GPU machine
/// (`scripts/bench/gpu`); CI has no GPU and leaves it unset.
pub fn model_device() -> candle_core::Device {
    let name = std::env::var("SNAPSONG_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    snapsong::ml::nn::device::parse_device(&name).expect("SNAPSONG_TEST_DEVICE")
}
