//! What the server tests share: a real server on a temp dir, multipart bodies, requests.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use clap::Parser;
use http_body_util::BodyExt;
use snapsong::server::config::ServeConfig;
use snapsong::server::{build, router, AppState};
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

/// The real server (router, SQLite in a temp dir, media, worker) with tiny models; song
/// limits are lifted unless a test sets its own (`extra` flags come last and win).
pub async fn start() -> Server {
    start_with(
        &["--songs-burst", "1000", "--max-queued-per-client", "1000"],
        true,
    )
    .await
}

/// As `start`, with extra flags, and with or without the worker taking jobs.
pub async fn start_with(extra: &[&str], worker: bool) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite:{}", dir.path().join("db.sqlite").display());
    let media = dir.path().join("media");
    let cfg = Cfg::parse_from(
        [
            "test",
            "--tiny-models",
            "--database-url",
            &db,
            "--media-dir",
            media.to_str().expect("utf-8 path"),
            "--max-upload-bytes",
            "2000000",
        ]
        .into_iter()
        .chain(extra.iter().copied()),
    );
    let built = build(cfg.serve).await.expect("server builds");
    let state = built.state.clone();
    if worker {
        tokio::spawn(state.queue.clone().work(built.models, built.workers));
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
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM songs")
        .fetch_one(state.db().pool())
        .await
        .expect("count");
    n
}

pub fn media_entries(state: &AppState) -> usize {
    std::fs::read_dir(state.storage().songs_dir())
        .map(|d| d.count())
        .unwrap_or(0)
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
