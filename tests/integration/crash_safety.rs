//! Crash safety with the real `snapsong serve` process (tiny models, SQLite): SIGKILL it
//! while a song is being made, ten times in a row; after every restart the killed song is
//! made again, and no song, playlist or media file is lost or left half-written. Then a
//! SIGTERM mid-song: the server stops cleanly and the song goes back to the queue.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A running server and its port; killed if a failing test drops it.
struct Running {
    child: Child,
    port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn launch(dir: &Path, log: &str) -> Running {
    launch_with(dir, log, &[])
}

fn launch_with(dir: &Path, log: &str, extra: &[&str]) -> Running {
    let port = free_port();
    let log = std::fs::File::create(dir.join(log)).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_snapsong"))
        .args(["serve", "--tiny-models", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--database-url")
        .arg(format!("sqlite:{}", dir.join("db.sqlite").display()))
        .arg("--media-dir")
        .arg(dir.join("media"))
        .args(["--songs-burst", "1000", "--max-queued-per-client", "1000"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start snapsong serve");
    let r = Running { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(r.port, "GET", "/healthz", None).map(|(c, _)| c) != Some(200) {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    r
}

/// A minimal HTTP/1.1 client (one request per connection): (status, body).
fn http(port: u16, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
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
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

fn json_of(body: &str) -> serde_json::Value {
    // Bodies may come chunked: the JSON is the part between the outer braces.
    match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if b > a => serde_json::from_str(&body[a..=b]).unwrap_or_default(),
        _ => serde_json::Value::Null,
    }
}

fn status(port: u16, id: &str) -> serde_json::Value {
    http(port, "GET", &format!("/api/songs/{id}"), None)
        .map(|(_, b)| json_of(&b))
        .unwrap_or_default()
}

fn new_song(port: u16) -> String {
    let (ctype, body) = crate::support::multipart(&[(
        "options",
        None,
        br#"{"genre":"ambient","mood":"calm","duration":30}"#,
    )]);
    let (code, body) = http(port, "POST", "/api/songs", Some((&ctype, &body))).expect("upload");
    assert_eq!(code, 202, "{body}");
    json_of(&body)["id"].as_str().expect("id").to_string()
}

fn new_playlist(port: u16, n: usize) -> String {
    let form = format!("title=List+{n}");
    let (code, body) = http(
        port,
        "POST",
        "/api/fn/create_playlist",
        Some(("application/x-www-form-urlencoded", form.as_bytes())),
    )
    .expect("create playlist");
    assert_eq!(code, 200, "{body}");
    let a = body.find('"').expect("slug");
    let b = body.rfind('"').expect("slug");
    body[a + 1..b].to_string()
}

/// Wait until `done` says yes about the song's status JSON (or the time is up).
fn wait_for(
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

/// Every song folder belongs to a known song and holds no half-written file.
fn media_is_clean(dir: &Path, ids: &[String]) -> Result<(), String> {
    for entry in std::fs::read_dir(dir.join("media/songs")).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !ids.contains(&name) {
            return Err(format!("a media folder without a song: {name}"));
        }
        for f in std::fs::read_dir(&path).map_err(|e| e.to_string())? {
            let f = f.map_err(|e| e.to_string())?.path();
            if f.extension().is_some_and(|e| e == "part") {
                return Err(format!("a half-written file: {}", f.display()));
            }
        }
    }
    Ok(())
}

#[test]
fn sigkill_mid_song_ten_times_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = launch(dir.path(), "server-0.log");
    let (mut songs, mut playlists) = (Vec::new(), Vec::new());
    let mut survived = 0;
    for round in 0..10 {
        playlists.push(new_playlist(server.port, round));
        let id = new_song(server.port);
        songs.push(id.clone());
        let running = wait_for(server.port, &id, 60, |s| s["status"] == "running");
        assert_eq!(running["status"], "running", "round {round}: {running}");
        // Kill at a different point of the job each round.
        std::thread::sleep(Duration::from_millis(40 * round as u64));
        server.child.kill().expect("SIGKILL");
        let _ = server.child.wait();

        server = launch(dir.path(), &format!("server-{}.log", round + 1));
        media_is_clean(dir.path(), &songs).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let after = wait_for(server.port, &id, 120, |s| {
            s["status"] == "ready" || s["status"] == "failed"
        });
        let every_song_there = songs.iter().all(|s| status(server.port, s)["id"] == **s);
        let every_list_there = playlists.iter().all(|p| {
            http(server.port, "GET", &format!("/api/playlists/{p}"), None).map(|r| r.0) == Some(200)
        });
        if after["status"] == "ready" && every_song_there && every_list_there {
            survived += 1;
        } else {
            eprintln!("round {round}: {after} songs={every_song_there} lists={every_list_there}");
        }
    }
    eprintln!("crash safety: {survived}/10 songs made again after SIGKILL, nothing lost");
    assert_eq!(survived, 10);

    // SIGTERM mid-song: a clean stop, and the song is back in the queue, then made.
    let id = new_song(server.port);
    let running = wait_for(server.port, &id, 60, |s| s["status"] == "running");
    assert_eq!(running["status"], "running");
    let term = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let code = server.child.wait().expect("wait");
    assert!(code.success(), "exit {code:?}");
    let log = std::fs::read_to_string(dir.path().join("server-10.log")).unwrap_or_default();
    assert!(log.contains("stopped cleanly"), "{log}");
    let server = launch_with(dir.path(), "server-11.log", &["--log-format", "json"]);
    let after = wait_for(server.port, &id, 120, |s| s["status"] == "ready");
    assert_eq!(after["status"], "ready", "{after}");
    drop(server);

    // The logs went to files: no colour codes in any. In JSON, every line is an object,
    // and the job's lines carry its song id.
    for n in 0..=11 {
        let log =
            std::fs::read_to_string(dir.path().join(format!("server-{n}.log"))).unwrap_or_default();
        assert!(!log.contains('\u{1b}'), "colour codes in server-{n}.log");
    }
    let log = std::fs::read_to_string(dir.path().join("server-11.log")).unwrap_or_default();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let job: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("job "))
        })
        .collect();
    assert!(job.len() >= 2, "job started and done: {log}");
    assert!(job.iter().all(|l| l["span"]["song"] == id), "{log}");
}
