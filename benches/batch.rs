//! Our side of the batching benchmark (scripts/bench/batch runs it next to transformers):
//! N songs decoded together, one decoder pass per step for all of them (`MusicGen::step`),
//! for each N given. Prints one JSON line: per N, ms per pass and what that makes of
//! 15-second songs per minute.
//!
//!     cargo bench --features ssr --bench batch -- MODEL_DIR STEPS SIZES DTYPE [DEVICE]
//!
//! DEVICE is cpu (the default) or cuda[:N] (a build with the cuda feature).

mod common;

use std::time::Instant;

use anyhow::{Context, Result};
use snapsong::ml::nn::device::{parse_device, parse_precision};
use snapsong::ml::{hub, GenerateOptions, Length, MusicGen, SamplingConfig};

/// Different prompts, so the songs' texts differ in length as they would in a server.
const PROMPTS: [&str; 4] = [
    "warm lofi hip hop beat with mellow piano, soft drums and vinyl crackle",
    "fast techno",
    "calm orchestral strings with a slow build, cinematic and hopeful",
    "upbeat funk with slap bass and brass",
];

fn main() -> Result<()> {
    // On a worker of the pool, as the server's decoding runs.
    rayon::scope(|_| run())
}

fn run() -> Result<()> {
    let args = common::positional_args();
    let (model_dir, steps, sizes, dtype, device) = match args.as_slice() {
        [m, st, si, d] => (m, st, si, d, "cpu"),
        [m, st, si, d, dev] => (m, st, si, d, dev.as_str()),
        _ => anyhow::bail!("usage: batch MODEL_DIR STEPS SIZES(1,2,4) DTYPE [DEVICE]"),
    };
    let steps: usize = steps.parse().context("STEPS")?;
    let precision = parse_precision(dtype)?;
    let device = parse_device(device)?;
    let mut model = MusicGen::load(&hub::resolve(model_dir)?, precision, &device)?;
    let opts = |seed: u64| GenerateOptions {
        length: Length::MaxNewTokens(steps),
        guidance_scale: 3.0,
        sampling: SamplingConfig {
            seed,
            ..SamplingConfig::default()
        },
        prompt_codes: Vec::new(),
    };
    // A 15 s song: 750 frames, plus the delay pattern's tail.
    let song_steps = (15.0 * model.frame_rate()).round() + model.num_codebooks() as f64 - 1.0;
    let mut out = serde_json::Map::new();
    out.insert(
        "kernel".into(),
        snapsong::ml::kernels::isa::describe().into(),
    );
    // Warm-up: the first pass maps and touches every weight.
    let mut warm = model.start_decoding(PROMPTS[0], &opts(0))?;
    for _ in 0..5 {
        model.step(&mut [&mut warm])?;
    }
    for n in sizes.split(',') {
        let n: usize = n.trim().parse().context("SIZES")?;
        let mut songs = (0..n)
            .map(|i| model.start_decoding(PROMPTS[i % PROMPTS.len()], &opts(i as u64)))
            .collect::<Result<Vec<_>>>()?;
        let t = Instant::now();
        let passes = common::decode_together(&mut model, &mut songs)?;
        let ms_per_pass = t.elapsed().as_secs_f64() * 1000.0 / passes as f64;
        let songs_per_min = n as f64 * 60_000.0 / (song_steps * ms_per_pass);
        out.insert(
            n.to_string(),
            serde_json::json!({"ms_per_pass": ms_per_pass, "songs_per_min_15s": songs_per_min}),
        );
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
