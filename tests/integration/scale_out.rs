//! Past one machine: two web nodes (`serve --no-worker`) and two workers (`snapsong
//! worker`), real processes on one database and one store: SQLite and a shared folder, or
//! (SNAPSONG_TEST_BACKEND=postgres, as scripts/test runs it) Postgres and SeaweedFS's S3.
//! A song asked of node A is followed live on node B; the worker making it is SIGKILLed
//! mid-song and the other one makes it, once; its media are all in the store and none on
//! any node's disk; node B serves the WAV with Range.
#![cfg(unix)]

use std::path::Path;
use std::time::Instant;

use crate::procs::{block_on, events, header, http, http_raw, json_of, launch, wait_for, Running};
use crate::support::{multipart, Backend, PHOTO, SONG_FILES};
use snapsong::server::db::Db;

/// Workers hold a song this long without a heartbeat: the killed one's song waits this
/// long for the other worker.
const LEASE_SECS: u64 = 2;

/// The worker's name and the times it was taken (from the row).
async fn holder(database_url: &str, id: &str) -> (Option<String>, i64) {
    let db = Db::connect(database_url).await.expect("the test database");
    let row: (Option<String>, i64) = db
        .fetch_one(sqlx::query_as("SELECT worker, attempts FROM songs WHERE id = $1").bind(id))
        .await
        .expect("the song's row");
    db.close().await;
    row
}

/// Lines of a process's log that are about a song's job and say `what`.
fn job_lines(log: &Path, id: &str, what: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(id) && l.contains(what))
        .count()
}

#[test]
fn two_web_nodes_and_two_workers_share_one_queue_and_one_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = block_on(Backend::new(dir.path()));
    let lease = LEASE_SECS.to_string();
    let start = |name: &str, role: &str, extra: &[&str]| -> Running {
        let own = dir.path().join(name);
        launch(
            role,
            &backend,
            &own,
            &dir.path().join(format!("{name}.log")),
            extra,
        )
    };
    let a = start("web-a", "serve", &["--no-worker"]);
    let b = start("web-b", "serve", &["--no-worker"]);
    // Songs at twice real time: a 16 s song takes about 8 s, time enough to kill a worker.
    let worker_flags = ["--lease-secs", lease.as_str(), "--pace", "2"];
    let mut workers = [
        start("worker-1", "worker", &worker_flags),
        start("worker-2", "worker", &worker_flags),
    ];

    // A song with a photo, asked of node A.
    let (ctype, body) = multipart(&[
        ("image", Some("a.jpg"), PHOTO),
        ("options", None, br#"{"mood":"calm","duration":16}"#),
    ]);
    let (code, reply) = http(a.port, "POST", "/api/songs", Some((&ctype, &body))).expect("upload");
    assert_eq!(code, 202, "{reply}");
    let id = json_of(&reply)["id"].as_str().expect("id").to_string();

    // Followed live on node B, which makes nothing itself.
    let follow = {
        let (port, path) = (b.port, format!("/api/songs/{id}/events"));
        std::thread::spawn(move || {
            events(port, &path, 180, |e| {
                e["status"] == "ready" || e["status"] == "failed"
            })
        })
    };

    // Kill the worker making it, a quarter of the way in.
    let mid = wait_for(b.port, &id, 60, |s| {
        s["status"] == "running" && s["progress"].as_f64().unwrap_or(0.0) > 0.25
    });
    assert_eq!(mid["status"], "running", "{mid}");
    let (name, attempts) = block_on(holder(&backend.database_url, &id));
    assert_eq!(attempts, 1);
    let name = name.expect("a worker holds the running song");
    let pid: u32 = name
        .rsplit('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a pid");
    let killed = workers
        .iter()
        .position(|w| w.child.id() == pid)
        .expect("the song's worker is one of ours");
    let killed_at = Instant::now();
    workers[killed].child.kill().expect("SIGKILL");
    let _ = workers[killed].child.wait();

    // The other worker takes it once the lease is out, and makes it.
    let done = wait_for(b.port, &id, 120, |s| {
        s["status"] == "ready" || s["status"] == "failed"
    });
    assert_eq!(done["status"], "ready", "{done}");
    let (_, attempts) = block_on(holder(&backend.database_url, &id));
    assert_eq!(attempts, 2, "taken by the killed worker, then by the other");
    let logs = |n: usize| dir.path().join(format!("worker-{}.log", n + 1));
    let other = 1 - killed;
    assert_eq!(job_lines(&logs(killed), &id, "job done"), 0);
    assert_eq!(job_lines(&logs(other), &id, "job started"), 1);
    assert_eq!(job_lines(&logs(other), &id, "job done"), 1);
    eprintln!(
        "scale-out: the song was made again {:.1} s after its worker was killed",
        killed_at.elapsed().as_secs_f32()
    );

    // What node B's stream showed: progress made elsewhere, through to the end.
    let seen = follow.join().expect("the event stream");
    let running: Vec<f64> = seen
        .iter()
        .filter(|e| e["status"] == "running")
        .filter_map(|e| e["progress"].as_f64())
        .collect();
    assert!(
        running.iter().any(|&p| p > 0.0 && p < 1.0),
        "live progress on node B: {seen:?}"
    );
    assert_eq!(
        seen.last().map(|e| e["status"].clone()),
        Some("ready".into())
    );

    // Every file in the store, none on any node's own disk.
    let media = block_on(backend.media());
    let files: Vec<&str> = media[&id].keys().map(String::as_str).collect();
    let mut want = SONG_FILES.to_vec();
    want.sort();
    assert_eq!(files, want);
    for node in ["web-a", "web-b", "worker-1", "worker-2"] {
        assert!(
            !dir.path().join(node).join("songs").exists(),
            "{node} kept media on its own disk"
        );
    }

    // Node B serves the WAV, whole and by range.
    let wav = format!("/media/{id}/song.wav");
    let (code, _, whole) = http_raw(b.port, "GET", &wav, &[], None).expect("the WAV");
    assert_eq!(code, 200);
    let (code, head, part) =
        http_raw(b.port, "GET", &wav, &[("Range", "bytes=100-1123")], None).expect("a range");
    assert_eq!(code, 206, "{head}");
    assert_eq!(
        header(&head, "content-range"),
        Some(format!("bytes 100-1123/{}", whole.len()))
    );
    assert_eq!(part, whole[100..1124]);
    let (code, head, _) =
        http_raw(b.port, "GET", &wav, &[("Range", "bytes=99999999-")], None).expect("a range");
    assert_eq!(code, 416, "{head}");
    let (code, _, _) = http_raw(
        a.port,
        "GET",
        &format!("/media/{id}/nothing.txt"),
        &[],
        None,
    )
    .expect("404");
    assert_eq!(code, 404);
    // Workers answer health and metrics only.
    let (code, metrics) = http(workers[other].port, "GET", "/metrics", None).expect("metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("snapsong_songs_finished"), "{metrics}");
    let (code, _) = http(workers[other].port, "GET", "/", None).expect("no pages");
    assert_eq!(code, 404);
}
