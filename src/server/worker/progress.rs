//! Progress while a song is made: the in-process hub the song pages' event streams follow,
//! and the tracker that turns the pipeline's stage reports into published progress.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::live::{pcm16_le, LiveAudio, LiveChunk};
use super::pipeline::Heard;
use super::Queue;
use crate::api::live::Live;
use crate::api::types::{Progress, Stage, Status};
use crate::server::metrics::{DECODER_MS_PER_STEP, STAGE_SECONDS};

/// Live progress, by song id, and the audio of songs being made. `QUEUE_MOVED` tells
/// waiting songs their position changed. Songs made by this process publish their
/// progress here; for the others, `changed` carries the ids whose rows another node
/// changed (Postgres notifications), for the event streams to re-read.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<(String, Progress)>,
    changed: broadcast::Sender<String>,
    /// Songs this process is making now.
    local: Arc<Mutex<HashSet<String>>>,
    pub live: LiveAudio,
}

/// The id under which "the queue moved" is published (waiting songs re-read their place).
pub const QUEUE_MOVED: &str = "*";

impl Default for Hub {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
            changed: broadcast::channel(1024).0,
            local: Arc::default(),
            live: LiveAudio::default(),
        }
    }
}

impl Hub {
    pub fn publish(&self, id: &str, p: Progress) {
        // No subscribers is fine: nobody is watching.
        let _ = self.tx.send((id.to_string(), p));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<(String, Progress)> {
        self.tx.subscribe()
    }

    /// Another node changed this song's row.
    pub fn row_changed(&self, id: &str) {
        let _ = self.changed.send(id.to_string());
    }

    pub fn subscribe_changes(&self) -> broadcast::Receiver<String> {
        self.changed.subscribe()
    }

    /// Mark a song as made (or no longer made) by this process.
    pub fn set_local(&self, id: &str, making: bool) {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if making {
            local.insert(id.to_string());
        } else {
            local.remove(id);
        }
    }

    /// Whether this process is making the song (its progress comes through `subscribe`).
    pub fn is_local(&self, id: &str) -> bool {
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }
}

/// Turns stage reports into published progress with an ETA, and writes it to the row at
/// most twice a second (and at every stage change).
pub struct Tracker {
    id: String,
    queue: Queue,
    rt: tokio::runtime::Handle,
    stage: Option<Stage>,
    stage_started: Instant,
    last_write: Option<Instant>,
    /// The last decoder step reported (for ms per step).
    last_step: u32,
    /// Chunks heard so far; seconds of audio generated here (a continued song's earlier
    /// part left out), once known; audio seconds made per second, as last measured.
    chunks: u32,
    new_s: Option<f32>,
    made_per_s: f32,
}

impl Tracker {
    pub fn new(id: String, queue: Queue, rt: tokio::runtime::Handle) -> Self {
        Self {
            id,
            queue,
            rt,
            stage: None,
            stage_started: Instant::now(),
            last_write: None,
            last_step: 0,
            chunks: 0,
            new_s: None,
            made_per_s: 0.0,
        }
    }

    /// The stage under way is over: its seconds (and, for generation, the milliseconds per
    /// decoder step) go to the metrics.
    pub fn finish(&mut self) {
        let Some(stage) = self.stage else {
            return;
        };
        let secs = self.stage_started.elapsed().as_secs_f64();
        metrics::histogram!(STAGE_SECONDS, "stage" => stage.as_str()).record(secs);
        if stage == Stage::Generating && self.last_step > 0 {
            metrics::histogram!(DECODER_MS_PER_STEP).record(secs * 1000.0 / self.last_step as f64);
        }
    }

    /// Keep a chunk of audio for the song pages (they fetch it when the next progress
    /// says it exists).
    pub fn heard(&mut self, h: &Heard) {
        let rate = h.sample_rate as f32;
        let total_s = h.total_samples as f32 / rate;
        self.new_s = Some(total_s - h.prompt_samples as f32 / rate);
        self.chunks += 1;
        let info = Live {
            chunks: self.chunks,
            ready_s: (h.start_sample as f32 + h.samples.len() as f32) / rate,
            total_s,
            made_per_s: self.made_per_s,
            sample_rate: h.sample_rate,
        };
        let chunk = LiveChunk {
            start_sample: h.start_sample,
            pcm: pcm16_le(h.samples),
        };
        let pcm = chunk.pcm.clone();
        self.queue.hub.live.push(&self.id, chunk, info);
        // And in the store, for web nodes in other processes (the row says it is there
        // from the next progress write on).
        let kept = self.rt.block_on(self.queue.storage.put_live_chunk(
            &self.id,
            self.chunks - 1,
            h.start_sample,
            h.sample_rate,
            &pcm,
        ));
        if let Err(e) = kept {
            tracing::warn!("cannot keep a live chunk in the store: {e:#}");
        }
    }

    pub fn report(&mut self, stage: Stage, step: u32, total: u32) {
        let changed = self.stage != Some(stage);
        if changed {
            self.finish();
            self.stage = Some(stage);
            self.stage_started = Instant::now();
        }
        self.last_step = step;
        let done = if total > 0 {
            step as f32 / total as f32
        } else {
            0.0
        };
        let eta_s = (step > 0 && total > 0).then(|| {
            let per_step = self.stage_started.elapsed().as_secs_f32() / step as f32;
            per_step * (total - step.min(total)) as f32
        });
        // Audio seconds made per second so far (steps are nearly proportional to frames).
        let live = match (stage, self.new_s) {
            (Stage::Generating, Some(new_s)) if step > 0 && total > 0 => {
                let secs = self.stage_started.elapsed().as_secs_f32().max(1e-3);
                self.made_per_s = new_s * step as f32 / total as f32 / secs;
                self.queue.hub.live.update(&self.id, self.made_per_s)
            }
            _ => None,
        };
        let p = Progress {
            live,
            status: Status::Running,
            stage,
            progress: stage.overall(done),
            step,
            total,
            eta_s,
            queue_position: None,
            error: None,
        };
        self.queue.hub.publish(&self.id, p.clone());
        let due = self
            .last_write
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500));
        if changed || due {
            self.last_write = Some(Instant::now());
            if let Err(e) = self.rt.block_on(self.queue.db.set_progress(
                &self.id,
                &self.queue.lease.worker,
                &p,
            )) {
                tracing::warn!("cannot store progress: {e:#}");
            }
        }
    }
}
