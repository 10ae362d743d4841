//! The allocator of every server-side binary (the `snapsong` binary, its tests and
//! benchmarks): jemalloc.
//!
//! Page views allocate many small, short-lived blocks on every tokio thread. jemalloc
//! hands a thread back the block it freed last, still in cache. Measured against the
//! others under `scripts/bench/load` (two web nodes on Postgres, 60 s runs alternated on
//! a 2-core AMD EPYC): glibc malloc was ~20 % of the web nodes' CPU; mimalloc, which
//! reuses a page's freed blocks only after all its other blocks, spent 11-14 % on cache
//! misses reading its free lists, and served 3835 and 4204 requests/s (p99 135 and 106 ms)
//! where jemalloc served 4220 and 4931 (p99 104 and 83 ms). Model speed is the same within
//! the machine's noise (MusicGen step, EnCodec).

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`.
/// - `oversize_threshold:0`: no separate arena for blocks over 8 MiB, which hands their
///   pages back to the system at once; EnCodec and weight loading allocate such blocks
///   over and over, and each new one was page-faulted in afresh (weight loading took twice
///   as long).
/// - `thp:always`: jemalloc asks for transparent huge pages (madvise) on all its memory,
///   which works where the kernel's setting is `always` or `madvise`. EnCodec's signals
///   are up to 120 MB each, fresh on every decode: with 4 KB pages, faulting them in was a
///   fifth of decoding 15 s of audio (599 → 474 ms, 2-core AMD EPYC); the decoder step
///   reads its 1.4 GB of weights with fewer TLB misses too (16.3/15.7 → 15.6/15.3 ms).
#[export_name = "_rjem_malloc_conf"]
#[used]
static MALLOC_CONF: &[u8; 32] = b"oversize_threshold:0,thp:always\0";

#[cfg(test)]
mod tests {
    use std::ffi::c_void;

    #[test]
    fn jemalloc_reads_our_options() {
        let mut threshold: usize = usize::MAX;
        let mut len = std::mem::size_of::<usize>();
        // SAFETY: a read of a size_t option into a size_t, with its size given.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"opt.oversize_threshold".as_ptr(),
                (&mut threshold as *mut usize).cast::<c_void>(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(rc, 0, "mallctl");
        assert_eq!(threshold, 0);

        let mut thp: *const std::ffi::c_char = std::ptr::null();
        let mut len = std::mem::size_of::<*const std::ffi::c_char>();
        // SAFETY: a read of a const char* option into a pointer, with its size given;
        // jemalloc's option strings live for the whole process.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"opt.thp".as_ptr(),
                (&mut thp as *mut *const std::ffi::c_char).cast::<c_void>(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(rc, 0, "mallctl");
        // SAFETY: jemalloc returned a NUL-terminated static string.
        let thp = unsafe { std::ffi::CStr::from_ptr(thp) };
        assert_eq!(thp.to_str(), Ok("always"));
    }
}
