//! EnCodec decoding alone (scripts/bench/musicgen prints the same figure once, next to
//! transformers): only the `audio_encoder.*` weights are loaded, SECONDS of random codes
//! are decoded REPS times after a warm-up, and every run's time is printed with the
//! median, plus the multiply-adds the decoder does and the rate that makes. DTYPE is the
//! LM's precision the decoder is loaded for (default auto: q8_0 on a CPU with AVX2, where
//! the LSTM keeps its recurrent weights in f16 and the large products multiply in 16-bit
//! integers). Prints one JSON line.
//!
//!     cargo bench --features ssr --bench encodec -- MODEL_DIR SECONDS REPS [DTYPE]

mod common;

use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use snapsong::ml::hub;
use snapsong::ml::musicgen::encodec::EncodecDecoder;
use snapsong::ml::musicgen::MusicgenConfig;
use snapsong::ml::nn::device::DtypeChoice;

fn main() -> Result<()> {
    // On a worker of the pool, as songs are decoded in the server (worker::threads).
    rayon::scope(|_| run())
}

fn run() -> Result<()> {
    let args = common::positional_args();
    let (model_dir, seconds, reps, dtype) = match args.as_slice() {
        [m, s, r] => (m, s, r, "auto"),
        [m, s, r, d] => (m, s, r, d.as_str()),
        _ => anyhow::bail!("usage: encodec MODEL_DIR SECONDS REPS [DTYPE]"),
    };
    let precision = dtype.parse::<DtypeChoice>()?.resolve(&Device::Cpu);
    let seconds: f64 = seconds.parse().context("SECONDS")?;
    let reps: usize = reps.parse().context("REPS")?;
    let files = hub::resolve(model_dir)?;
    let cfg: MusicgenConfig = files.read_config()?;
    let vb = files.var_builder(DType::F32, &Device::Cpu)?;
    let codec = EncodecDecoder::load(
        vb.pp("audio_encoder"),
        &cfg.audio_encoder,
        cfg.decoder.num_codebooks,
        precision,
    )?;
    let frames = (seconds * codec.config().frame_rate()).round() as usize;
    let size = codec.config().codebook_size;
    let codes: Vec<Vec<u32>> = (0..cfg.decoder.num_codebooks)
        .map(|c| {
            (0..frames)
                .map(|f| ((f * 7919 + c * 104729) % size) as u32)
                .collect()
        })
        .collect();
    codec.decode(&codes)?; // warm-up (first-touch allocations)
    let mut runs = Vec::new();
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        std::hint::black_box(codec.decode(&codes)?);
        runs.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let macs = codec.multiply_adds(frames);
    println!(
        "{}",
        serde_json::json!({
            "kernel": snapsong::ml::kernels::isa::describe(),
            "threads": rayon::current_num_threads(),
            "dtype": precision.to_string(),
            "seconds": seconds, "frames": frames, "runs_ms": runs, "median_ms": median,
            "gmacs": macs as f64 / 1e9,
            "gflops_per_s": 2.0 * macs as f64 / (median / 1000.0) / 1e9,
        })
    );
    Ok(())
}
