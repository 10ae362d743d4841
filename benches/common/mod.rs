//! What every benchmark binary shares: the command line's positional arguments. (The
//! allocator is the `snapsong` binary's: the library sets it, see `src/alloc.rs`.)

/// The arguments after the program name, flags left out (cargo bench passes "--bench").
pub fn positional_args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect()
}
