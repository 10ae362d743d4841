//! Crash safety with the real `snapsong serve` process (tiny models; SQLite and a folder,
//! or Postgres and S3 with SNAPSONG_TEST_BACKEND=postgres): SIGKILL it while a song is
//! being made, ten times in a row; after every restart the killed song is made again, and
//! no song, playlist or media file is lost or left half-written. Then a SIGTERM mid-song:
//! the server stops cleanly and the song goes back to the queue.
#![cfg(unix)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::procs::{block_on, http, launch, new_song, status, wait_for, Running};
use crate::support::{Backend, SONG_FILES};

/// Each restart listens on a new port, so under a new worker name: the killed song's
/// lease must run out first. A short one keeps ten rounds quick.
const LEASE: &[&str] = &["--lease-secs", "2"];

/// One server of the test: the shared backend, its own folder for tiny models and logs.
fn start(dir: &Path, backend: &Backend, log: &str, extra: &[&str]) -> Running {
    let flags: Vec<&str> = LEASE.iter().chain(extra).copied().collect();
    launch("serve", backend, &dir.join("local"), &dir.join(log), &flags)
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

/// Every song's media in the store belong to a known song, and are whole files with the
/// names a song's files have (a local store keeps a write in progress under a temporary
/// name it never lists; the sweep removes old ones, see `storage::tests`).
fn media_is_clean(backend: &Backend, ids: &[String]) -> Result<(), String> {
    for (id, files) in block_on(backend.media()) {
        if !ids.contains(&id) {
            return Err(format!("media without a song: {id}"));
        }
        if let Some(f) = files.keys().find(|f| !SONG_FILES.contains(&f.as_str())) {
            return Err(format!("a half-written or stray file: {id}/{f}"));
        }
    }
    Ok(())
}

#[test]
fn sigkill_mid_song_ten_times_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = block_on(Backend::new(dir.path()));
    let mut server = start(dir.path(), &backend, "server-0.log", &[]);
    let (mut songs, mut playlists) = (Vec::new(), Vec::new());
    let mut survived = 0;
    for round in 0..10 {
        playlists.push(new_playlist(server.port, round));
        let id = new_song(server.port, 30);
        songs.push(id.clone());
        let running = wait_for(server.port, &id, 60, |s| s["status"] == "running");
        assert_eq!(running["status"], "running", "round {round}: {running}");
        // Kill at a different point of the job each round.
        std::thread::sleep(Duration::from_millis(40 * round as u64));
        server.child.kill().expect("SIGKILL");
        let _ = server.child.wait();

        server = start(
            dir.path(),
            &backend,
            &format!("server-{}.log", round + 1),
            &[],
        );
        media_is_clean(&backend, &songs).unwrap_or_else(|e| panic!("round {round}: {e}"));
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
    let id = new_song(server.port, 30);
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
    let server = start(
        dir.path(),
        &backend,
        "server-11.log",
        &["--log-format", "json"],
    );
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
