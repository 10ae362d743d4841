//! Keeping the thread pool's other workers awake through a decoding pass.
//!
//! Why: a decoder step is ~200 parallel loops (every product, every attention) with a
//! little serial work between them (layer norms, residual adds, the next product's
//! input). A rayon worker that finds no work yields ~32 times and then sleeps, and the
//! gaps (10–60 µs) are longer than that: the other worker fell asleep before nearly every
//! loop and had to be woken by a futex, 50–75 times a step, each wake late for the loop
//! it was woken for. `keep_awake` has every other worker of the calling thread's pool
//! look for work without sleeping until it has found none for `IDLE_LIMIT`, so each
//! loop's tasks are taken at once.
//!
//! Why a time limit and not a flag the caller clears: the looking runs as a rayon job,
//! and a worker waiting inside another job (a join whose other half was stolen) may pick
//! it up there. The job it waits in cannot go on until the looking ends, and that job may
//! be one the caller waits for. Ending when no work comes bounds that stall to
//! `IDLE_LIMIT`; a flag held by the waiting caller would never be cleared.
//!
//! The looking threads give the core away every `YIELD_EVERY` idle looks, and the
//! server's song threads run at a low priority (`worker::threads`): what they spin on is
//! time nothing else wanted.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long a worker looks for work that does not come before it goes back to sleeping:
/// longer than the serial gaps inside a decoder step (10–60 µs), short against a step.
const IDLE_LIMIT: Duration = Duration::from_micros(200);

/// Idle looks between two `sched_yield`s (and clock reads): often enough that another
/// process's thread on the core gets it within microseconds, rarely enough that a look
/// for work stays cheaper than a system call.
const YIELD_EVERY: u32 = 64;

thread_local! {
    /// Whether this thread is already looking (further down its stack).
    static LOOKING: Cell<bool> = const { Cell::new(false) };
}

/// Have the calling pool's other workers look for work without sleeping until none has
/// come for `IDLE_LIMIT`. Nothing outside a pool's worker (such a caller blocks for its
/// loops anyway) or in a pool of one thread.
pub fn keep_awake() {
    let Some(me) = rayon::current_thread_index() else {
        return;
    };
    if rayon::current_num_threads() < 2 {
        return;
    }
    // A broadcast job runs on the thread it was made for, never stolen by another: the
    // caller's own returns at once.
    rayon::spawn_broadcast(move |ctx| {
        if ctx.index() != me {
            look_for_work();
        }
    });
}

/// Run the pool's jobs as they come until none has come for `IDLE_LIMIT`. A second call
/// on a thread that is already looking returns at once: the first goes on looking.
fn look_for_work() {
    if LOOKING.replace(true) {
        return;
    }
    /// Clears `LOOKING` however the loop ends.
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            LOOKING.set(false);
        }
    }
    let _done = Done;
    let mut idle = 0u32;
    let mut idle_since = Instant::now();
    loop {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => idle = 0,
            Some(rayon::Yield::Idle) => {
                if idle == 0 {
                    idle_since = Instant::now();
                }
                idle += 1;
                if !idle.is_multiple_of(YIELD_EVERY) {
                    std::hint::spin_loop();
                } else if idle_since.elapsed() >= IDLE_LIMIT {
                    return;
                } else {
                    std::thread::yield_now();
                }
            }
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn loops_give_the_same_results_and_the_looking_ends() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        pool.install(|| {
            for n in [1usize, 100, 10_000] {
                keep_awake();
                let sum: usize = (0..n).into_par_iter().map(|i| i % 7).sum();
                assert_eq!(sum, (0..n).map(|i| i % 7).sum::<usize>());
            }
        });
        // Every worker ends its looking: a job made for it then runs outside the loop.
        // (A loaded machine may keep a looking thread off its core for a while: ask
        // again until a generous deadline, far past `IDLE_LIMIT`.)
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut looking = pool.broadcast(|_| LOOKING.get());
        while looking.contains(&true) && Instant::now() < deadline {
            std::thread::sleep(IDLE_LIMIT * 10);
            looking = pool.broadcast(|_| LOOKING.get());
        }
        assert_eq!(looking, vec![false; 3]);
    }

    #[test]
    fn a_looking_worker_nested_in_a_job_someone_waits_for_does_not_hang() {
        // Nested joins on two workers with a request to look before each: some of the
        // looking lands inside a join's wait. Every call must still return.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        fn tree(depth: u32) -> u64 {
            keep_awake();
            match depth {
                0 => 1,
                _ => {
                    let (a, b) = rayon::join(|| tree(depth - 1), || tree(depth - 1));
                    a + b
                }
            }
        }
        for _ in 0..50 {
            assert_eq!(pool.install(|| tree(8)), 256);
        }
    }

    #[test]
    fn nothing_happens_outside_a_pool_or_in_a_pool_of_one() {
        keep_awake();
        assert!(!LOOKING.get());
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        one.install(keep_awake);
        assert_eq!(one.broadcast(|_| LOOKING.get()), vec![false]);
    }
}
