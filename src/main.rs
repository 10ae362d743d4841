//! The `snapsong` binary: everything is in `snapsong::cli`.

/// Pages allocate many small short-lived strings on every tokio thread; mimalloc's
/// per-thread heaps cut the allocator's share of CPU under load (glibc malloc was ~20 %).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if let Err(e) = snapsong::cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
