//! Prometheus metrics, served at `GET /metrics`: HTTP requests by route and status, songs
//! started, finished and failed, seconds per stage, decoder milliseconds per step and
//! songs per pass, the queue's depth and its oldest song's age, and live event-stream
//! clients. Every metric's name is defined here; the code that counts calls the `metrics`
//! macros with them.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "snapsong_http_requests_total";
pub const HTTP_SECONDS: &str = "snapsong_http_request_duration_seconds";
pub const SONGS_STARTED: &str = "snapsong_songs_started_total";
pub const SONGS_FINISHED: &str = "snapsong_songs_finished_total";
pub const SONGS_FAILED: &str = "snapsong_songs_failed_total";
pub const STAGE_SECONDS: &str = "snapsong_stage_duration_seconds";
pub const DECODER_MS_PER_STEP: &str = "snapsong_decoder_step_milliseconds";
/// Songs in the decoder's last pass (0 when idle).
pub const DECODER_BATCH_SONGS: &str = "snapsong_decoder_batch_songs";
pub const QUEUE_DEPTH: &str = "snapsong_queue_depth";
pub const QUEUE_OLDEST_AGE: &str = "snapsong_queue_oldest_age_seconds";
pub const SSE_CLIENTS: &str = "snapsong_sse_clients";

/// Histogram buckets: from a fast page view (ms) to a long song's generation (minutes);
/// decoder steps in ms.
const SECONDS_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 180.0, 600.0,
];
const STEP_MS_BUCKETS: [f64; 10] = [5.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0, 500.0];

/// The process's recorder, installed once (tests start many servers in one process).
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the recorder if this process has none yet; None if another one is in place.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(DECODER_MS_PER_STEP.into()),
                        &STEP_MS_BUCKETS,
                    )
                });
            match builder.and_then(|b| b.install_recorder()) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!("metrics are off: {e}");
                    None
                }
            }
        })
        .as_ref()
}

/// Counts every request by its route (the pattern, not the path: ids would make a series
/// each) and status, and times it.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!(HTTP_SECONDS, "route" => route).record(started.elapsed().as_secs_f64());
    res
}

/// One live event-stream client, counted while it lives.
pub struct SseClient;

impl SseClient {
    pub fn connected() -> Self {
        metrics::gauge!(SSE_CLIENTS).increment(1.0);
        SseClient
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        metrics::gauge!(SSE_CLIENTS).decrement(1.0);
    }
}
