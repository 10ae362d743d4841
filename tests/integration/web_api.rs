//! The REST API and pages through the real router, database (SQLite in a temp dir), media
//! storage and worker with the tiny random models: the happy path, and bad ids and bad
//! uploads (a clear 4xx, nothing stored).
#![cfg(feature = "ssr")]

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use snapsong::server::AppState;
use tower::ServiceExt;

use crate::support::{
    get_json, get_page, media_entries, post_song, send, song_count, start, wait_done, Part, PHOTO,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_becomes_a_song_and_every_url_answers() {
    let s = start().await;
    let (status, made) = post_song(
        &s.app,
        &[
            ("image", Some("a.jpg"), PHOTO),
            (
                "options",
                None,
                br#"{"genre":"jazz","bpm":96,"duration":5,"seed":7}"#,
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{made}");
    let id = made["id"].as_str().expect("id").to_string();
    let slug = made["slug"].as_str().expect("slug").to_string();
    assert_eq!(made["url"], format!("http://songs.test/s/{slug}"));

    let mut last = serde_json::Value::Null;
    for _ in 0..300 {
        let (status, body) = get_json(&s.app, &format!("/api/songs/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        last = body;
        if last["status"] == "ready" || last["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["status"], "ready", "{last}");
    assert_eq!(last["progress"], 1.0);
    assert_eq!(last["page_url"], format!("http://songs.test/s/{slug}"));
    assert!(
        last["prompt"]
            .as_str()
            .is_some_and(|p| p.contains("jazz") && p.contains("96 bpm")),
        "{last}"
    );
    let audio = last["audio_url"].as_str().expect("audio url");
    let path = audio.trim_start_matches("http://songs.test");

    // Media: whole file, a range, cache headers; the photo has no EXIF.
    let (status, wav) = send(&s.app, Request::get(path).body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&wav[..4], b"RIFF");
    let res = s
        .app
        .clone()
        .oneshot(
            Request::get(path)
                .header(header::RANGE, "bytes=10-19")
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("res");
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert!(res.headers()[header::CACHE_CONTROL]
        .to_str()
        .unwrap_or("")
        .contains("immutable"));
    let part = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&part[..], &wav[10..20]);
    // The MP3 beside it: listed by format, served as audio/mpeg, an MPEG frame first.
    assert_eq!(last["audio_urls"]["wav"], last["audio_url"]);
    let mp3 = last["audio_urls"]["mp3"].as_str().expect("mp3 url");
    let res = s
        .app
        .clone()
        .oneshot(
            Request::get(mp3.trim_start_matches("http://songs.test"))
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("res");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "audio/mpeg");
    let mp3 = res.into_body().collect().await.expect("body").to_bytes();
    assert!(
        mp3[0] == 0xFF && mp3[1] & 0xE0 == 0xE0,
        "an MPEG frame header"
    );
    assert!(
        mp3.len() < wav.len() / 2,
        "compressed: {} vs {}",
        mp3.len(),
        wav.len()
    );
    for f in ["photo.jpg", "cover.jpg", "share.jpg"] {
        let (status, _) = send(
            &s.app,
            Request::get(format!("/media/{id}/{f}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{f}");
    }

    // The song page: server-rendered share card.
    let (status, html) = get_page(&s.app, &format!("/s/{slug}")).await;
    assert_eq!(status, StatusCode::OK);
    for tag in [
        format!(r#"property="og:image" content="http://songs.test/media/{id}/share.jpg""#),
        format!(r#"property="og:audio" content="http://songs.test/media/{id}/song.mp3""#),
        r#"property="og:audio:type" content="audio/mpeg""#.to_string(),
        r#"name="twitter:card" content="summary_large_image""#.to_string(),
    ] {
        assert!(html.contains(&tag), "missing {tag}");
    }
    assert!(html.contains("tiny random models"), "noise is not labelled");

    // What an operator scrapes. (One recorder serves every server in this test process,
    // so only what this song must have added is checked, not exact counts.)
    let (status, text) = send(
        &s.app,
        Request::get("/metrics").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8_lossy(&text);
    for series in [
        "snapsong_songs_started_total ",
        "snapsong_songs_finished_total ",
        r#"snapsong_http_requests_total{route="/api/songs/{id}",status="200"}"#,
        r#"snapsong_http_request_duration_seconds_bucket{route="/s/{slug}",le="#,
        r#"snapsong_stage_duration_seconds_bucket{stage="generating",le="#,
        r#"snapsong_stage_duration_seconds_count{stage="mixing"}"#,
        "snapsong_decoder_step_milliseconds_count ",
        "snapsong_queue_depth ",
        "snapsong_queue_oldest_age_seconds ",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_and_bad_uploads_get_a_clear_4xx_and_store_nothing() {
    let s = start().await;
    for uri in [
        "/api/songs/0123456789abcdef0123456789abcdef",
        "/api/songs/not-an-id",
        "/api/songs/1%20OR%201=1",
        "/api/playlists/zzzzzzzzzzzz",
        "/api/playlists/..%2F..%2Fetc",
    ] {
        let (status, body) = get_json(&s.app, uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(body["error"].as_str().is_some(), "{uri}: {body}");
    }
    let (status, _) = send(
        &s.app,
        Request::get("/s/nope").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let truncated = &PHOTO[..PHOTO.len() / 2];
    let big = vec![0u8; 2_100_000];
    let long_text = format!(r#"{{"text":"{}"}}"#, "a".repeat(10_000));
    let cases: Vec<(&str, Vec<Part>, u16)> = vec![
        (
            "truncated jpeg",
            vec![("image", Some("a.jpg"), truncated)],
            400,
        ),
        (
            "text as jpeg",
            vec![("image", Some("a.jpg"), b"hello, I am not a photo at all")],
            415,
        ),
        (
            "svg",
            vec![(
                "image",
                Some("a.svg"),
                br#"<svg xmlns="http://www.w3.org/2000/svg"></svg>"#,
            )],
            415,
        ),
        ("empty file", vec![("image", Some("a.jpg"), b"")], 400),
        (
            "two images",
            vec![
                ("image", Some("a.jpg"), PHOTO),
                ("image", Some("b.jpg"), PHOTO),
            ],
            400,
        ),
        ("unknown part", vec![("file", Some("a.jpg"), PHOTO)], 400),
        (
            "bad json",
            vec![
                ("image", Some("a.jpg"), PHOTO),
                ("options", None, b"{genre:"),
            ],
            400,
        ),
        (
            "unknown option",
            vec![
                ("image", Some("a.jpg"), PHOTO),
                ("options", None, br#"{"colour":"red"}"#),
            ],
            400,
        ),
        (
            "invalid utf-8",
            vec![("options", None, b"{\"text\":\"\xff\xfe\"}")],
            400,
        ),
        (
            "duration 0",
            vec![
                ("image", Some("a.jpg"), PHOTO),
                ("options", None, br#"{"duration":0}"#),
            ],
            400,
        ),
        (
            "duration 500",
            vec![
                ("image", Some("a.jpg"), PHOTO),
                ("options", None, br#"{"duration":500}"#),
            ],
            400,
        ),
        (
            "bpm 5000",
            vec![
                ("image", Some("a.jpg"), PHOTO),
                ("options", None, br#"{"bpm":5000}"#),
            ],
            400,
        ),
        (
            "unknown genre",
            vec![
                ("image", Some("a.jpg"), PHOTO),
                ("options", None, br#"{"genre":"polka-metal"}"#),
            ],
            400,
        ),
        (
            "10 KB of text",
            vec![("options", None, long_text.as_bytes())],
            400,
        ),
        (
            "words-only with no words",
            vec![("options", None, b"{}")],
            400,
        ),
        (
            "over the size limit",
            vec![("image", Some("a.jpg"), &big)],
            413,
        ),
    ];
    for (what, parts, want) in cases {
        let (status, body) = post_song(&s.app, &parts).await;
        assert_eq!(status.as_u16(), want, "{what}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: no error text: {body}"
        );
    }
    assert_eq!(song_count(&s.state).await, 0, "a refused upload left a row");
    assert_eq!(
        media_entries(&s.state).await,
        0,
        "a refused upload left files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_song_says_why_and_only_its_owner_can_retry_it() {
    use snapsong::api::types::SongOptions;
    use snapsong::server::db::NewSong;
    use snapsong::server::ids::{new_id, new_slug, new_token, token_hash};
    let s = start().await;
    // A job whose photo is missing from storage fails in the worker.
    let (id, slug, token) = (new_id(), new_slug(), new_token());
    let options = SongOptions {
        duration: Some(5.0),
        ..Default::default()
    };
    let row = NewSong {
        id: &id,
        slug: &slug,
        owner_hash: &token_hash(&token),
        client_hash: "test",
        options: &options,
        seed: 1,
        has_photo: true,
        title: "lost photo",
        noise: true,
    };
    let room = snapsong::server::db::QueueBounds {
        total: 10,
        per_client: 10,
    };
    let added = s.state.db().insert_song_within(&row, room).await;
    assert_eq!(added.expect("insert"), snapsong::server::db::Admitted::Yes);
    s.state.queue.wake.notify_one();
    let failed = wait_done(&s.app, &id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );

    let retry = |cookie: Option<String>| {
        let mut req = Request::post(format!("/api/songs/{id}/retry"));
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        req.body(Body::empty()).expect("request")
    };
    let (code, _) = send(&s.app, retry(None)).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "a stranger retried it");
    let attempts = |state: AppState, id: String| async move {
        let (n,): (i64,) = state
            .db()
            .fetch_one(sqlx::query_as("SELECT attempts FROM songs WHERE id = $1").bind(id))
            .await
            .expect("attempts");
        n
    };
    assert_eq!(attempts(s.state.clone(), id.clone()).await, 1);
    let (code, _) = send(&s.app, retry(Some(format!("snapsong_owner={token}")))).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    // The worker takes it again (and, the photo still missing, it fails again).
    for _ in 0..100 {
        if attempts(s.state.clone(), id.clone()).await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(attempts(s.state.clone(), id.clone()).await, 2);
    assert_eq!(wait_done(&s.app, &id).await["status"], "failed");
}
