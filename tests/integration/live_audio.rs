//! A song heard while it is made, through the real router and worker (tiny models, made
//! at real time with `--pace 1`): chunks exist before the song is ready, follow each other
//! sample for sample, add up to the finished WAV and sound like it; bad chunk requests get
//! a clear 4xx.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::support::{get_json, post_song, send, server_fn, start_making, start_with, Makes};

/// (status, start sample, content type, PCM samples) of one chunk.
async fn chunk(app: &axum::Router, id: &str, n: usize) -> (StatusCode, u64, String, Vec<i16>) {
    let res = app
        .clone()
        .oneshot(
            Request::get(format!("/api/songs/{id}/live/{n}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("res");
    let status = res.status();
    let h = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (start, kind) = (h("x-start-sample").parse().unwrap_or(0), h("content-type"));
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let pcm = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    (status, start, kind, pcm)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_song_can_be_heard_chunk_by_chunk_while_it_is_made() {
    heard_while_made(Makes::InProcess).await;
}

/// On a web node, the chunks come from the store and their count from the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_node_plays_a_song_made_by_a_worker_elsewhere_while_it_is_made() {
    heard_while_made(Makes::Elsewhere).await;
}

async fn heard_while_made(makes: Makes) {
    let s = start_making(
        &[
            "--songs-burst",
            "100",
            "--max-queued-per-client",
            "100",
            "--pace",
            "1",
        ],
        makes,
    )
    .await;
    let (status, made) = post_song(
        &s.app,
        &[(
            "options",
            None,
            br#"{"genre":"jazz","duration":8,"seed":3}"#,
        )],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{made}");
    let id = made["id"].as_str().expect("id").to_string();

    let mut pcm: Vec<i16> = Vec::new();
    let (mut heard_while_running, mut n) = (false, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        assert!(Instant::now() < deadline, "the song took too long");
        let (_, song) = get_json(&s.app, &format!("/api/songs/{id}")).await;
        let (status, start, kind, samples) = chunk(&s.app, &id, n).await;
        if status == StatusCode::OK {
            assert_eq!(kind, "audio/L16;rate=32000;channels=1");
            assert_eq!(start, pcm.len() as u64, "chunk {n} follows the one before");
            heard_while_running |= song["status"] == "running";
            if song["status"] == "running" {
                // What the event stream tells pages: this process's word on a song it
                // makes; the row's (a moment behind the store) on one made elsewhere.
                let row = s
                    .state
                    .db()
                    .song_by_id(&id)
                    .await
                    .expect("row")
                    .expect("song");
                let info = match makes {
                    Makes::InProcess => s.state.queue.hub.live.info(&id),
                    _ => row.progress(None).live,
                };
                if let Some(info) = info {
                    assert!((info.total_s - 8.0).abs() < 1e-3, "{info:?}");
                    assert!(makes != Makes::InProcess || info.chunks as usize > n);
                } else {
                    assert!(makes != Makes::InProcess, "live info while running");
                }
            }
            pcm.extend(samples);
            n += 1;
            continue;
        }
        assert_eq!(status, StatusCode::NOT_FOUND);
        if song["status"] == "ready" {
            break song;
        }
        assert_ne!(song["status"], "failed", "{song}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        heard_while_running,
        "no chunk came before the song was ready"
    );
    assert!(n >= 4, "8 s in 1 s + 2 s chunks: {n}");

    // Every chunk of the song, then the finished WAV: the same length, the same sound (the
    // WAV is scaled as a whole, the chunks are not; compare after the best gain).
    let url = done["audio_url"].as_str().expect("url");
    let (status, wav) = send(
        &s.app,
        Request::get(url.trim_start_matches("http://songs.test"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let wav: Vec<f64> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f64)
        .collect();
    assert_eq!(pcm.len(), 8 * 32_000);
    assert_eq!(pcm.len(), wav.len());
    let live: Vec<f64> = pcm.iter().map(|v| *v as f64).collect();
    let gain = wav.iter().zip(&live).map(|(a, b)| a * b).sum::<f64>()
        / live.iter().map(|b| b * b).sum::<f64>();
    let noise: f64 = wav
        .iter()
        .zip(&live)
        .map(|(a, b)| (a - gain * b).powi(2))
        .sum();
    let snr = 10.0 * (wav.iter().map(|a| a * a).sum::<f64>() / noise).log10();
    assert!(snr > 40.0, "live audio vs the WAV: {snr:.1} dB");

    // Bad requests.
    let bad = |uri: String| {
        let app = s.app.clone();
        async move {
            send(&app, Request::get(uri).body(Body::empty()).expect("req"))
                .await
                .0
        }
    };
    assert_eq!(
        bad(format!("/api/songs/{id}/live/x")).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        bad(format!("/api/songs/{id}/live/99999")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bad("/api/songs/nope/live/0".into()).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn songs_longer_than_the_servers_limit_are_refused_in_words() {
    let s = start_with(&["--max-duration", "20"], false).await;
    // The upload page's slider learns it.
    let (status, max) = server_fn(&s.app, "max_duration", None, &[]).await;
    assert_eq!((status, max.as_str()), (StatusCode::OK, "20.0"));
    let (status, body) = post_song(
        &s.app,
        &[("options", None, br#"{"genre":"jazz","duration":25}"#)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("at most 20 seconds"),
        "{body}"
    );
    let (status, body) = post_song(
        &s.app,
        &[("options", None, br#"{"genre":"jazz","duration":181}"#)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
