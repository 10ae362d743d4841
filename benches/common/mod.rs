//! What every benchmark binary shares: the allocator the `snapsong` binary runs with, and
//! the command line's positional arguments.

/// As src/main.rs: large tensors are reused from its heaps instead of being mapped and
/// zeroed afresh on every call.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The arguments after the program name, flags left out (cargo bench passes "--bench").
pub fn positional_args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect()
}
