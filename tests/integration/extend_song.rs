//! "Extend this song" through the real router and worker (tiny models): the longer song
//! starts with the original's codes, keeps its prompt, has exactly its length, and links
//! back; what cannot be extended is refused in words.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::support::{get_json, get_page, post_song, send, server_fn, start, wait_done};

async fn codes(app: &axum::Router, id: &str) -> Vec<Vec<u32>> {
    let (status, v) = get_json(app, &format!("/media/{id}/codes.json")).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_value(v["codes"].clone()).expect("codes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_continues_the_song_it_extends() {
    let s = start().await;
    let (status, made) = post_song(
        &s.app,
        &[(
            "options",
            None,
            br#"{"genre":"jazz","duration":5,"seed":4}"#,
        )],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{made}");
    let (id, slug) = (made["id"].as_str().unwrap(), made["slug"].as_str().unwrap());
    let first = wait_done(&s.app, id).await;
    assert_eq!(first["status"], "ready", "{first}");

    // The page's button (a server function), then the REST API.
    let (status, body) = server_fn(
        &s.app,
        "extend_song",
        None,
        &[("slug", slug), ("duration", "8")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_slug: String = serde_json::from_str(&body).expect("slug");
    let options = format!(r#"{{"extends":"{slug}","duration":7}}"#);
    let (status, by_api) = post_song(&s.app, &[("options", None, options.as_bytes())]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{by_api}");

    let original = codes(&s.app, id).await;
    assert_eq!(original[0].len(), 5 * 50);
    let new_id = s
        .state
        .db()
        .song_by_slug(&new_slug)
        .await
        .expect("db")
        .map(|row| row.id);
    for (id, seconds) in [(by_api["id"].as_str().map(str::to_string), 7), (new_id, 8)] {
        let id = id.expect("the new song's id");
        let done = wait_done(&s.app, &id).await;
        assert_eq!(done["status"], "ready", "{done}");
        assert_eq!(done["prompt"], first["prompt"], "the same text condition");
        let longer = codes(&s.app, &id).await;
        assert_eq!(longer[0].len(), seconds * 50);
        for (a, b) in longer.iter().zip(&original) {
            assert!(
                a.starts_with(b),
                "the extension starts with the original's codes"
            );
        }
        let (_, wav) = send(
            &s.app,
            Request::get(format!("/media/{id}/song.wav"))
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_eq!(wav.len(), 44 + seconds * 32_000 * 2);
    }
    let (_, html) = get_page(&s.app, &format!("/s/{new_slug}")).await;
    assert!(html.contains(&format!(r#"href="/s/{slug}""#)), "links back");
    assert!(html.contains("(extended)"));

    // Refusals: not longer, an unknown song, not a slug.
    let refused = |options: String| {
        let app = s.app.clone();
        async move { post_song(&app, &[("options", None, options.as_bytes())]).await }
    };
    let (status, body) = refused(format!(r#"{{"extends":"{slug}","duration":5}}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap_or("").contains("longer than"),
        "{body}"
    );
    let (status, _) = refused(r#"{"extends":"abcdefghijk2","duration":9}"#.into()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = refused(r#"{"extends":"../etc","duration":9}"#.into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
