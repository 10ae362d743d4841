//! Hostile requests through the real router: each gets a clear 4xx (never a 500, never a
//! hang) and stores nothing; text meant to inject SQL or HTML is kept and shown as text.
#![cfg(feature = "ssr")]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};

use crate::support::{
    get_json, get_page, media_entries, post_song, same_origin, send, server_fn, song_count,
    start_web_node, wait_done, Part, PHOTO,
};

const BOMB: &[u8] = include_bytes!("../fixtures/photos/bomb.png");

/// A real 100-megapixel PNG (10000×10000 grey): small on the wire, 100 MB decoded.
fn hundred_megapixels() -> Vec<u8> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    // Best compression: one flat colour then fits far below the test's 2 MB upload limit.
    use image::{ExtendedColorType, ImageEncoder};
    let pixels = vec![128u8; 10_000 * 10_000];
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::NoFilter)
        .write_image(&pixels, 10_000, 10_000, ExtendedColorType::L8)
        .expect("encode");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_images_and_crowded_requests_are_refused() {
    let s = start_web_node().await;
    let huge = hundred_megapixels();
    let many: Vec<Part> = (0..50).map(|_| ("image", Some("a.jpg"), PHOTO)).collect();
    let cases: Vec<(&str, Vec<Part>, u16)> = vec![
        (
            "PNG declaring 50000×50000",
            vec![("image", Some("a.png"), BOMB)],
            413,
        ),
        ("100 megapixels", vec![("image", Some("a.png"), &huge)], 413),
        ("50 files in one request", many, 400),
    ];
    for (what, parts, want) in cases {
        let (status, body) = post_song(&s.app, &parts).await;
        assert_eq!(status.as_u16(), want, "{what}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {body}"
        );
    }
    assert_eq!(song_count(&s.state).await, 0);
    assert_eq!(media_entries(&s.state).await, 0);
    assert_eq!(
        snapsong::api::types::DEFAULT_MAX_UPLOAD_BYTES,
        20 * 1024 * 1024,
        "the documented default upload limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_strings_are_stored_and_shown_as_text() {
    let s = start_web_node().await;
    let evil = r#"'); DROP TABLE songs; -- </title><script>alert(1)</script> <img src=x onerror=alert(2)>"#;
    let options = serde_json::json!({ "text": evil, "genre": "jazz", "duration": 5 }).to_string();
    let (status, made) = post_song(&s.app, &[("options", None, options.as_bytes())]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{made}");
    let id = made["id"].as_str().expect("id");
    let slug = made["slug"].as_str().expect("slug");
    let done = wait_done(&s.app, id).await;
    assert_eq!(done["status"], "ready", "{done}");
    assert_eq!(song_count(&s.state).await, 1, "the table is still there");

    let (code, html) = get_page(&s.app, &format!("/s/{slug}")).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        !html.contains("<script>alert(1)"),
        "script tag rendered raw"
    );
    assert!(!html.contains("<img src=x"), "img tag rendered raw");
    assert_eq!(
        html.matches("</title>").count(),
        1,
        "the title was broken out of"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the words are shown"
    );

    // A playlist title is text too.
    let short = "'; DROP TABLE playlists; --</title><script>alert(1)</script>";
    let (code, pl) = server_fn(
        &s.app,
        "create_playlist",
        Some(&"c".repeat(64)),
        &[("title", short)],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{pl}");
    let pl_slug: String = serde_json::from_str(&pl).expect("slug");
    let (code, view) = get_json(&s.app, &format!("/api/playlists/{pl_slug}")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(view["title"], short, "kept as it was written");
    let (code, html) = get_page(&s.app, &format!("/p/{pl_slug}")).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        !html.contains("<script>alert(1)"),
        "playlist title rendered raw"
    );
    assert_eq!(
        html.matches("</title>").count(),
        1,
        "the title was broken out of"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlists_change_only_with_their_owner_token() {
    let s = start_web_node().await;
    let owner = "a".repeat(64);
    let (code, pl) = server_fn(
        &s.app,
        "create_playlist",
        Some(&owner),
        &[("title", "Mine")],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{pl}");
    let slug: String = serde_json::from_str(&pl).expect("slug");
    let stranger = "b".repeat(64);
    for cookie in [None, Some(stranger.as_str()), Some("not-a-token")] {
        let (code, body) = server_fn(
            &s.app,
            "rename_playlist",
            cookie,
            &[("slug", &slug), ("title", "Stolen")],
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{cookie:?}");
        assert!(body.contains("owner"), "{cookie:?}: {body}");
    }
    let (_, view) = get_json(&s.app, &format!("/api/playlists/{slug}")).await;
    assert_eq!(view["title"], "Mine");
    let (code, _) = server_fn(
        &s.app,
        "rename_playlist",
        Some(&owner),
        &[("slug", &slug), ("title", "Still mine")],
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let (_, view) = get_json(&s.app, &format!("/api/playlists/{slug}")).await;
    assert_eq!(view["title"], "Still mine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_are_refused_and_pages_carry_security_headers() {
    let s = start_web_node().await;
    let options = br#"{"genre":"jazz","duration":5}"#;
    let (ctype, body) = crate::support::multipart(&[("options", None, options)]);
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let req = Request::post("/api/songs")
            .header(header::HOST, "songs.test")
            .header(header::CONTENT_TYPE, &ctype)
            .header(name, value)
            .body(Body::from(body.clone()))
            .expect("req");
        let (code, text) = send(&s.app, req).await;
        assert_eq!(
            code,
            StatusCode::FORBIDDEN,
            "{name}: {}",
            String::from_utf8_lossy(&text)
        );
        let req = Request::post("/api/fn/create_playlist")
            .header(header::HOST, "songs.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(name, value)
            .body(Body::from("title=x"))
            .expect("req");
        assert_eq!(send(&s.app, req).await.0, StatusCode::FORBIDDEN, "{name}");
    }
    assert_eq!(song_count(&s.state).await, 0);
    let (n,): (i64,) = s
        .state
        .db()
        .fetch_one(sqlx::query_as("SELECT COUNT(*) FROM playlists"))
        .await
        .expect("count");
    assert_eq!(n, 0);
    // The same request from the site itself goes through.
    let req = same_origin(Request::post("/api/songs"), None)
        .header(header::CONTENT_TYPE, &ctype)
        .body(Body::from(body))
        .expect("req");
    assert_eq!(send(&s.app, req).await.0, StatusCode::ACCEPTED);

    // Security headers, and a CSP nonce that is the one on the page's scripts.
    let res = tower::ServiceExt::oneshot(
        s.app.clone(),
        Request::get("/").body(Body::empty()).expect("req"),
    )
    .await
    .expect("res");
    let h = res.headers().clone();
    let csp = h[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp")
        .to_string();
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(
        h[header::REFERRER_POLICY],
        "strict-origin-when-cross-origin"
    );
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("'wasm-unsafe-eval'"));
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("a nonce in the policy");
    let html = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    let html = String::from_utf8_lossy(&html);
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "scripts lack the nonce"
    );
}
