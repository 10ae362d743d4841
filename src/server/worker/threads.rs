//! The threads songs are made on: a rayon pool of their own (candle's and our matrix
//! products run on the pool they are called from), at a lower CPU priority so that page
//! views and API calls are answered first when the machine is short of CPU. Songs still
//! get every cycle the web does not want. Uploaded photos are decoded and re-encoded on a
//! pool like it (`intake`), for the same reason, but keep a share of the CPU: the person
//! who uploaded is waiting for the answer.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use rayon::ThreadPool;

/// How the threads that make songs give way to the web (`--worker-priority`, Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// The idle scheduling class (SCHED_IDLE): the threads run only on CPU that no other
    /// thread wants, so a busy web is slowed by songs hardly at all. A niceness still
    /// takes its share: at 10, a tenth of a core the web wanted, and the page views'
    /// tail under load was a fifth longer.
    Idle,
    /// A niceness, 0–19: songs keep that share of the CPU when the web is busy too.
    Nice(u8),
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "idle" {
            return Ok(Self::Idle);
        }
        match s.parse::<u8>() {
            Ok(n) if n <= 19 => Ok(Self::Nice(n)),
            _ => Err(format!(
                "`{s}` is neither `idle` nor a niceness from 0 to 19"
            )),
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Idle => f.write_str("idle"),
            Self::Nice(n) => write!(f, "{n}"),
        }
    }
}

/// Build the pool: `threads` workers (0: one per core), each at `priority`.
pub fn pool(threads: usize, priority: Priority) -> Result<ThreadPool> {
    named_pool("song-worker", threads, priority)
}

/// The intake threads' priority: below the web, so that a burst of uploads does not
/// stall page views, but never `Idle`: in the idle class an upload answered only when
/// the load ended (31 s under `scripts/bench/load`'s two-node run, against 1–3 s here).
const INTAKE_PRIORITY: Priority = Priority::Nice(10);

/// The pool uploads are decoded on: one thread per core, at `INTAKE_PRIORITY`, started
/// on the first upload (a worker process, which takes none, never starts it).
#[derive(Default)]
pub struct Intake {
    pool: OnceLock<ThreadPool>,
}

impl Intake {
    /// Run `f` on the intake threads (`run_on`).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let pool = match self.pool.get() {
            Some(pool) => pool,
            // Two first uploads at once may both build one; the second is dropped.
            None => {
                let _ = self
                    .pool
                    .set(named_pool("photo-intake", 0, INTAKE_PRIORITY)?);
                self.pool
                    .get()
                    .context("the intake threads did not start")?
            }
        };
        run_on(pool, f).await
    }
}

fn named_pool(name: &'static str, threads: usize, priority: Priority) -> Result<ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{name}-{i}"))
        .start_handler(move |_| lower_priority(priority))
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

/// Lower the calling thread to `priority` (never raise it: that needs privileges). Linux
/// keeps the policy and niceness per thread, so this leaves the server's other threads
/// alone. Failure only costs responsiveness: log it.
#[cfg(target_os = "linux")]
fn lower_priority(priority: Priority) {
    let rc = match priority {
        Priority::Idle => {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: a plain syscall on the calling thread (pid 0) with a valid param.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) }
        }
        Priority::Nice(nice) => {
            let nice = i32::from(nice);
            if niceness() >= nice {
                return;
            }
            // SAFETY: a plain syscall on the calling thread's own id.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) }
        }
    };
    if rc != 0 {
        tracing::warn!(
            "cannot lower a background thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_priority: Priority) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::{niceness, Priority};

    fn policy() -> i32 {
        // SAFETY: reads the calling thread's own policy.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn pool_threads_run_at_a_lower_priority_and_the_caller_does_not() {
        let before = (niceness(), policy());
        let pool = super::pool(2, Priority::Nice(7)).expect("pool");
        let in_pool = pool.install(niceness);
        assert_eq!(in_pool, before.0.max(7));
        let idle = super::pool(2, Priority::Idle).expect("pool");
        assert_eq!(idle.install(policy), libc::SCHED_IDLE);
        assert_eq!((niceness(), policy()), before);
    }

    #[test]
    fn priorities_read_and_print_as_the_flag_takes_them() {
        for (text, p) in [
            ("idle", Priority::Idle),
            ("0", Priority::Nice(0)),
            ("19", Priority::Nice(19)),
        ] {
            assert_eq!(text.parse::<Priority>(), Ok(p));
            assert_eq!(p.to_string(), text);
        }
        for bad in ["20", "-1", "low", ""] {
            let err = bad.parse::<Priority>().expect_err(bad);
            assert!(err.contains("idle"), "{err}");
        }
    }
}
