//! Progress while a song is made: the in-process hub the song pages' event streams follow,
//! and the tracker that turns the pipeline's stage reports into published progress.

use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::Queue;
use crate::api::types::{Progress, Stage, Status};

/// Live progress, by song id. `QUEUE_MOVED` tells waiting songs their position changed.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<(String, Progress)>,
}

/// The id under which "the queue moved" is published (waiting songs re-read their place).
pub const QUEUE_MOVED: &str = "*";

impl Default for Hub {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
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
        }
    }

    pub fn report(&mut self, stage: Stage, step: u32, total: u32) {
        let changed = self.stage != Some(stage);
        if changed {
            self.stage = Some(stage);
            self.stage_started = Instant::now();
        }
        let done = if total > 0 {
            step as f32 / total as f32
        } else {
            0.0
        };
        let eta_s = (step > 0 && total > 0).then(|| {
            let per_step = self.stage_started.elapsed().as_secs_f32() / step as f32;
            per_step * (total - step.min(total)) as f32
        });
        let p = Progress {
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
            if let Err(e) = self.rt.block_on(self.queue.db.set_progress(&self.id, &p)) {
                tracing::warn!("cannot store progress: {e:#}");
            }
        }
    }
}
