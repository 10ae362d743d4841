//! What the benchmark binaries share: the command line's positional arguments, a median
//! timer, and how close two sets of logits are. (The allocator is the `snapsong`
//! binary's: the library sets it, see `src/alloc.rs`.) Each binary uses some of these.
#![allow(dead_code)]

use std::time::Instant;

use anyhow::Result;

/// The arguments after the program name, flags left out (cargo bench passes "--bench").
pub fn positional_args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect()
}

/// Median wall time of `reps` runs of `f`, in ms, after one warm-up run.
pub fn median_ms<T>(reps: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut last = f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        last = f()?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], last))
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Index of the largest value.
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::MIN),
            |b, (i, x)| if *x > b.1 { (i, *x) } else { b },
        )
        .0
}

/// "same/total": how many codes of `codes` equal those of `reference`, position by
/// position.
pub fn codes_agreement(codes: &[Vec<u32>], reference: &[Vec<u32>]) -> String {
    let same = codes
        .iter()
        .flatten()
        .zip(reference.iter().flatten())
        .filter(|(a, b)| a == b)
        .count();
    format!("{same}/{}", reference.iter().map(Vec::len).sum::<usize>())
}

/// Step `songs` together until every one is done (each leaves when it ends); the number
/// of passes it took.
pub fn decode_together(
    model: &mut snapsong::ml::MusicGen,
    songs: &mut [snapsong::ml::Decoding],
) -> Result<usize> {
    let mut passes = 0;
    loop {
        let mut batch: Vec<_> = songs.iter_mut().filter(|d| !d.is_done()).collect();
        if batch.is_empty() {
            return Ok(passes);
        }
        model.step(&mut batch)?;
        passes += 1;
    }
}

/// How teacher-forced logits compare with the f32 ones, position by position: the
/// worst and mean cosine, and how many positions pick f32's token.
pub fn logits_agreement(got: &[Vec<f32>], reference: &[Vec<f32>]) -> serde_json::Value {
    let cos: Vec<f64> = got
        .iter()
        .zip(reference)
        .map(|(a, b)| cosine(a, b))
        .collect();
    let agree = got
        .iter()
        .zip(reference)
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    serde_json::json!({
        "logits_cosine_min": cos.iter().cloned().fold(1.0, f64::min),
        "logits_cosine_mean": cos.iter().sum::<f64>() / cos.len().max(1) as f64,
        "teacher_forced_argmax_equal": format!("{agree}/{}", got.len()),
    })
}

/// Read bandwidth of main memory with every thread (STREAM-style: a sum over a buffer far
/// larger than the caches), in GB/s; the best of five passes.
pub fn read_bandwidth() -> f64 {
    use rayon::prelude::*;
    let buf = vec![1u64; 1 << 27]; // 1 GiB
    let mut best = 0f64;
    for _ in 0..5 {
        let t = Instant::now();
        let sum: u64 = buf
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
            .sum();
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(sum);
        best = best.max(buf.len() as f64 * 8.0 / s / 1e9);
    }
    best
}

/// What a bench ran on: the kernel path, the threads and the read `bandwidth` (GB/s).
pub fn machine(bandwidth: f64) -> serde_json::Value {
    serde_json::json!({
        "kernel": snapsong::ml::kernels::isa::describe(),
        "threads": rayon::current_num_threads(),
        "read_gb_per_s": bandwidth,
    })
}
