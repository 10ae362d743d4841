//! Abuse limits through the real router: the per-client rate limit (429 + Retry-After),
//! the queue bounds per client and in total, the body limit and the request time limit.
#![cfg(feature = "ssr")]

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use tower::ServiceExt;

use crate::support::{multipart, song_count, start_with};

/// A words-only song request from the given client address; returns status and headers.
async fn ask(app: &axum::Router, client: [u8; 4]) -> (StatusCode, HeaderMap, serde_json::Value) {
    let (ctype, body) = multipart(&[("options", None, br#"{"genre":"ambient","duration":5}"#)]);
    let mut req = Request::post("/api/songs")
        .header(header::HOST, "songs.test")
        .header(header::CONTENT_TYPE, ctype)
        .body(Body::from(body))
        .expect("request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((client, 40000))));
    let res = app.clone().oneshot(req).await.expect("response");
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or_default(),
    )
}

fn retry_after(h: &HeaderMap) -> u64 {
    h.get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_makes_songs_too_fast_is_told_when_to_come_back() {
    let s = start_with(&["--songs-burst", "2", "--songs-per-minute", "1"], false).await;
    for _ in 0..2 {
        assert_eq!(ask(&s.app, [192, 0, 2, 1]).await.0, StatusCode::ACCEPTED);
    }
    let (status, headers, body) = ask(&s.app, [192, 0, 2, 1]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let wait = retry_after(&headers);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("try again")),
        "{body}"
    );
    // Someone else is not held back by it.
    assert_eq!(ask(&s.app, [192, 0, 2, 2]).await.0, StatusCode::ACCEPTED);
    assert_eq!(
        song_count(&s.state).await,
        3,
        "the refused request stored nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_bounded_per_client_and_in_total() {
    // No worker: every accepted song stays queued.
    let flags = [
        "--songs-burst",
        "100",
        "--max-queued-per-client",
        "2",
        "--max-queued",
        "3",
    ];
    let s = start_with(&flags, false).await;
    for _ in 0..2 {
        assert_eq!(ask(&s.app, [198, 51, 100, 1]).await.0, StatusCode::ACCEPTED);
    }
    let (status, headers, body) = ask(&s.app, [198, 51, 100, 1]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(retry_after(&headers) > 0);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("waiting")),
        "{body}"
    );
    assert_eq!(ask(&s.app, [198, 51, 100, 2]).await.0, StatusCode::ACCEPTED);
    let (status, headers, body) = ask(&s.app, [198, 51, 100, 3]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(retry_after(&headers) > 0);
    assert_eq!(song_count(&s.state).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_at_the_same_moment_never_overfill_the_queue() {
    // Counting and adding are one transaction: 24 requests at once from one client with
    // room for 3, then from 24 clients with room for 5 in all.
    let flags = [
        "--songs-burst",
        "100",
        "--max-queued-per-client",
        "3",
        "--max-queued",
        "8",
    ];
    let s = start_with(&flags, false).await;
    let one_client =
        futures::future::join_all((0..24).map(|_| ask(&s.app, [198, 51, 100, 7]))).await;
    let accepted = one_client
        .iter()
        .filter(|r| r.0 == StatusCode::ACCEPTED)
        .count();
    assert_eq!(
        accepted,
        3,
        "{:?}",
        one_client.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(one_client
        .iter()
        .all(|r| r.0 == StatusCode::ACCEPTED || r.0 == StatusCode::TOO_MANY_REQUESTS));
    let many = futures::future::join_all((0..24u8).map(|i| ask(&s.app, [203, 0, 113, i]))).await;
    let accepted = many.iter().filter(|r| r.0 == StatusCode::ACCEPTED).count();
    assert_eq!(
        accepted,
        5,
        "{:?}",
        many.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(many
        .iter()
        .all(|r| r.0 == StatusCode::ACCEPTED || r.0 == StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(song_count(&s.state).await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_bounded_in_size_and_time() {
    let s = start_with(&["--request-timeout-secs", "1"], false).await;
    // A server function with a body over the limit (2 MB in tests): refused unread.
    let big = format!("title={}", "x".repeat(3_000_000));
    let req = Request::post("/api/fn/create_playlist")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big))
        .expect("request");
    let res = s.app.clone().oneshot(req).await.expect("response");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // An upload that starts and never finishes is cut off by the time limit.
    let never = futures::stream::pending::<Result<Vec<u8>, std::io::Error>>();
    let req = Request::post("/api/songs")
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=x")
        .body(Body::from_stream(never))
        .expect("request");
    let res = tokio::time::timeout(Duration::from_secs(20), s.app.clone().oneshot(req))
        .await
        .expect("the server answered instead of hanging")
        .expect("response");
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(song_count(&s.state).await, 0);
}
