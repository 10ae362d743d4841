//! The threads songs are made on: a rayon pool of their own (candle's and our matrix
//! products run on the pool they are called from), at a lower CPU priority so that page
//! views and API calls are answered first when the machine is short of CPU. Songs still
//! get every cycle the web does not want. Uploaded photos are decoded and re-encoded on a
//! pool like it (`intake`), for the same reason.

use std::sync::OnceLock;

use anyhow::{Context, Result};
use rayon::ThreadPool;

/// Build the pool: `threads` workers (0: one per core), each reniced to `nice`.
pub fn pool(threads: usize, nice: u8) -> Result<ThreadPool> {
    named_pool("song-worker", threads, nice)
}

/// The pool uploads are decoded on: one thread per core, reniced to `nice`, started on
/// the first upload (a worker process, which takes none, never starts it).
pub struct Intake {
    nice: u8,
    pool: OnceLock<ThreadPool>,
}

impl Intake {
    pub fn new(nice: u8) -> Self {
        Self {
            nice,
            pool: OnceLock::new(),
        }
    }

    /// Run `f` on the intake threads (`run_on`).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let pool = match self.pool.get() {
            Some(pool) => pool,
            // Two first uploads at once may both build one; the second is dropped.
            None => {
                let _ = self.pool.set(named_pool("photo-intake", 0, self.nice)?);
                self.pool
                    .get()
                    .context("the intake threads did not start")?
            }
        };
        run_on(pool, f).await
    }
}

fn named_pool(name: &'static str, threads: usize, nice: u8) -> Result<ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{name}-{i}"))
        .start_handler(move |_| lower_priority(nice))
        .build()
        .with_context(|| format!("cannot start the {name} threads"))
}

/// Run `f` on `pool`, waiting for it without holding up an async thread.
async fn run_on<T: Send + 'static>(
    pool: &ThreadPool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.context("a pool thread stopped before it answered")
}

/// The calling thread's niceness.
#[cfg(target_os = "linux")]
fn niceness() -> i32 {
    // SAFETY: reads the calling thread's own priority (-1 is also a valid niceness; the
    // call cannot fail for our own id).
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

/// Renice the calling thread to at least `nice` (never raise its priority: that needs
/// privileges). Linux keeps a niceness per thread, so this leaves the server's other
/// threads alone. Failure only costs responsiveness: log it.
#[cfg(target_os = "linux")]
fn lower_priority(nice: u8) {
    let nice = i32::from(nice);
    if niceness() >= nice {
        return;
    }
    // SAFETY: a plain syscall on the calling thread's own id.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if rc != 0 {
        tracing::warn!(
            "cannot lower a background thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: u8) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::niceness;

    #[test]
    fn pool_threads_run_at_a_lower_priority_and_the_caller_does_not() {
        let before = niceness();
        let pool = super::pool(2, 7).expect("pool");
        let in_pool = pool.install(niceness);
        assert_eq!(in_pool, before.max(7));
        assert_eq!(niceness(), before);
    }
}
