//! The OpenAPI document at /api/openapi.json against the real router: every documented
//! operation is answered by a real route (never axum's "no such route"), the REST routes
//! are all there, and the documented shapes have exactly the fields the real bodies have.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use crate::support::{get_json, post_song, same_origin, send, start};

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_matches_the_real_routes_and_bodies() {
    let s = start().await;
    let (status, doc) = get_json(&s.app, "/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );

    let documented: BTreeSet<String> = keys(&doc["paths"]);
    let want: BTreeSet<String> = [
        "/api/songs",
        "/api/songs/{id}",
        "/api/songs/{id}/events",
        "/api/songs/{id}/live/{index}",
        "/api/songs/{id}/retry",
        "/api/playlists/{slug}",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(documented, want);

    // Each documented operation reaches a real handler: its refusals are ours (a JSON
    // body), never the router's empty 404 or 405.
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in keys(ops) {
            let uri = path
                .replace("{id}", "0123456789abcdef")
                .replace("{slug}", "abcdefghijk2")
                .replace("{index}", "0");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let req = same_origin(Request::builder().method(m).uri(&uri), None)
                .body(Body::empty())
                .expect("req");
            let (status, body) = send(&s.app, req).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            assert!(
                status != StatusCode::NOT_FOUND || body.starts_with(b"{\"error\""),
                "{method} {uri}: no route ({status})"
            );
        }
    }

    // The shapes: SongOptions has exactly the type's fields; a real status body has
    // exactly SongStatus's.
    let schemas = &doc["components"]["schemas"];
    let options = serde_json::to_value(snapsong::api::types::SongOptions::default()).expect("json");
    assert_eq!(keys(&schemas["SongOptions"]["properties"]), keys(&options));
    let event = serde_json::to_value(snapsong::api::types::Progress::idle()).expect("json");
    assert_eq!(keys(&schemas["Progress"]["properties"]), keys(&event));
    let (status, made) = post_song(
        &s.app,
        &[("options", None, br#"{"genre":"jazz","duration":5}"#)],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(keys(&schemas["Created"]["properties"]), keys(&made));
    let (_, song) = get_json(
        &s.app,
        &format!("/api/songs/{}", made["id"].as_str().expect("id")),
    )
    .await;
    assert_eq!(keys(&schemas["SongStatus"]["properties"]), keys(&song));
}
