//! Real `snapsong` processes for the tests that kill, restart or spread them: start one,
//! talk HTTP/1.1 to it, wait for a song.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::Backend;

/// A running server and its port; killed if a failing test drops it.
pub struct Running {
    pub child: Child,
    pub port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Start `snapsong ROLE` (serve or worker) with tiny models on `backend`, listening on a
/// free port, its output in `log`; returns once /healthz answers.
pub fn launch(role: &str, backend: &Backend, media: &Path, log: &Path, extra: &[&str]) -> Running {
    let port = free_port();
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_snapsong"))
        .args([role, "--tiny-models", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .args(backend.flags())
        .arg("--media-dir")
        .arg(media)
        .args(["--songs-burst", "1000", "--max-queued-per-client", "1000"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start snapsong");
    let r = Running { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(r.port, "GET", "/healthz", None).map(|(c, _)| c) != Some(200) {
        assert!(Instant::now() < deadline, "snapsong {role} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    r
}

/// A minimal HTTP/1.1 client (one request per connection): (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> Option<(u16, String)> {
    let (code, _, bytes) = http_raw(port, method, path, &[], body)?;
    Some((code, String::from_utf8_lossy(&bytes).into_owned()))
}

/// As `http`, with extra request headers: (status, response headers, body bytes).
pub fn http_raw(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Option<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        req += &format!("{name}: {value}\r\n");
    }
    if let Some((ctype, bytes)) = body {
        req += &format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
            bytes.len()
        );
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).ok()?;
    if let Some((_, bytes)) = body {
        s.write_all(bytes).ok()?;
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let split = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, head, out[split + 4..].to_vec()))
}

/// A response header's value, from `http_raw`'s headers.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// Follow a server-sent event stream until `last` says an event is the last one (or
/// `secs` pass): every event's JSON, in order.
pub fn events(
    port: u16,
    path: &str,
    secs: u64,
    last: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut got = Vec::new();
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return got;
    };
    // HTTP/1.0: the stream comes unchunked, so every line is as sent.
    let req =
        format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return got;
    }
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => continue,
        }
        // Whole lines only; a partial one waits for the next read.
        while let Some(end) = text.find('\n') {
            let line: String = text.drain(..=end).collect();
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                let event: serde_json::Value =
                    serde_json::from_str(data.trim()).unwrap_or_default();
                let done = last(&event);
                got.push(event);
                if done {
                    return got;
                }
            }
        }
    }
    got
}

pub fn json_of(body: &str) -> serde_json::Value {
    // Bodies may come chunked: the JSON is the part between the outer braces.
    match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if b > a => serde_json::from_str(&body[a..=b]).unwrap_or_default(),
        _ => serde_json::Value::Null,
    }
}

pub fn status(port: u16, id: &str) -> serde_json::Value {
    http(port, "GET", &format!("/api/songs/{id}"), None)
        .map(|(_, b)| json_of(&b))
        .unwrap_or_default()
}

/// Ask for a words-only song of `secs` seconds; returns its id.
pub fn new_song(port: u16, secs: u32) -> String {
    let (ctype, body) = crate::support::multipart(&[(
        "options",
        None,
        format!(r#"{{"genre":"ambient","mood":"calm","duration":{secs}}}"#).as_bytes(),
    )]);
    let (code, body) = http(port, "POST", "/api/songs", Some((&ctype, &body))).expect("upload");
    assert_eq!(code, 202, "{body}");
    json_of(&body)["id"].as_str().expect("id").to_string()
}

/// Wait until `done` says yes about the song's status JSON (or the time is up).
pub fn wait_for(
    port: u16,
    id: &str,
    secs: u64,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = status(port, id);
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run a future to its end from a plain test.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
}
