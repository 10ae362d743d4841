//! Long songs and listening while they are made (scripts/bench/long-songs runs it):
//!
//! 1. chunked vs whole EnCodec decode: SNR (dB) and max |Δ| for several contexts;
//! 2. time to first sound for a 30 s song: before (generate, then decode the whole song)
//!    and now (chunks decoded as frames arrive, as the server does), with the earliest
//!    start from which playback never catches up with generation;
//! 3. a long song (e.g. 120 s): ms per step and resident memory per window.
//!
//! Prints one JSON line.
//!
//!     cargo bench --features ssr --bench long_songs -- MODEL_DIR PROMPT SECONDS

mod common;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context as _, Result};
use candle_core::Device;
use snapsong::ml::musicgen::encodec::chunked::{
    snr_db, Context, LiveDecoder, LIVE_CHUNK_SECONDS, LIVE_FIRST_CHUNK_SECONDS,
};
use snapsong::ml::{hub, DtypeChoice, GenerateOptions, Length, MusicGen, SamplingConfig};

/// Resident memory of this process, in MB (Linux).
fn resident_mb() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |pages| pages * 4096.0 / 1e6)
}

fn options(seconds: f64) -> GenerateOptions {
    GenerateOptions {
        length: Length::Seconds(seconds),
        sampling: SamplingConfig {
            seed: 42,
            ..SamplingConfig::default()
        },
        ..GenerateOptions::default()
    }
}

fn main() -> Result<()> {
    rayon::scope(|_| run())
}

fn run() -> Result<()> {
    let args = common::positional_args();
    let [model_dir, prompt, seconds] = args.as_slice() else {
        anyhow::bail!("usage: long_songs MODEL_DIR PROMPT SECONDS");
    };
    let seconds: f64 = seconds.parse().context("SECONDS")?;
    let device = Device::Cpu;
    let precision = DtypeChoice::Auto.resolve(&device);
    let mut model = MusicGen::load(&hub::resolve(model_dir)?, precision, &device)?;
    let codec = model.codec();
    let rate = model.frame_rate();
    let never = AtomicBool::new(false);
    let mut out = serde_json::Map::new();
    out.insert("precision".into(), format!("{precision:?}").into());

    // 2, before: make a 30 s song, then decode it whole.
    let t = Instant::now();
    let codes = model.generate_codes(prompt, &options(30.0), &mut |_, _| Ok(()), &never)?;
    let generate_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let whole = model.decode(&codes)?;
    let decode_s = t.elapsed().as_secs_f64();
    out.insert(
        "before".into(),
        serde_json::json!({ "generate_s": generate_s, "decode_s": decode_s,
                            "first_sound_s": generate_s + decode_s }),
    );

    // 1: the same codes in chunks, with several contexts (frames left, right).
    let hop = codec.config().hop_length();
    let chunk = (LIVE_CHUNK_SECONDS * rate).round() as usize;
    let mut contexts = Vec::new();
    for (left, right) in [
        (0, 0),
        (5, 5),
        (10, 5),
        (25, 10),
        (50, 10),
        (50, 25),
        (100, 50),
    ] {
        let ctx = Context { left, right };
        let mut live = LiveDecoder::new(ctx, chunk, chunk);
        let mut stitched = Vec::with_capacity(whole.len());
        let t = Instant::now();
        while let Some(c) = live.poll(&codec, &codes, codes[0].len())? {
            stitched.extend(c.samples);
        }
        let secs = t.elapsed().as_secs_f64();
        let max = whole
            .iter()
            .zip(&stitched)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        contexts.push(serde_json::json!({
            "left": left, "right": right, "snr_db": snr_db(&whole, &stitched),
            "max_abs_diff": max, "decode_s": secs, "same_length": stitched.len() == whole.len(),
        }));
    }
    out.insert("chunk_frames".into(), chunk.into());
    out.insert("hop".into(), hop.into());
    out.insert("contexts".into(), contexts.into());

    // 2, now: the same song with chunks decoded as frames arrive, as the server does.
    let ctx = Context::for_frame_rate(rate);
    let first = (LIVE_FIRST_CHUNK_SECONDS * rate).round() as usize;
    let mut live = LiveDecoder::new(ctx, first, chunk);
    let mut ready = Vec::new(); // (seconds since start, chunk start in s)
    let t = Instant::now();
    let total = (30.0 * rate).round() as usize;
    model.generate_codes(
        prompt,
        &options(30.0),
        &mut |_, song| {
            while let Some(c) = live.poll(&codec, song, total)? {
                ready.push((t.elapsed().as_secs_f64(), c.start_frame as f64 / rate));
            }
            Ok(())
        },
        &never,
    )?;
    let done_s = t.elapsed().as_secs_f64();
    // Playback started at time s plays second x at s + x: every chunk must be ready then.
    let safe_start = ready.iter().map(|(at, x)| at - x).fold(0f64, f64::max);
    out.insert(
        "now".into(),
        serde_json::json!({
            "first_sound_s": ready.first().map(|r| r.0), "safe_start_s": safe_start,
            "generate_and_chunks_s": done_s, "chunks": ready.len(),
            "context_frames": [ctx.left, ctx.right], "first_chunk_frames": first,
        }),
    );

    // 3: a long song, window by window.
    let plan = model.plan(&Length::Seconds(seconds), 0)?;
    let mut bounds = Vec::new();
    let mut end = 0;
    for w in &plan.windows {
        end += w.steps(model.num_codebooks());
        bounds.push(end);
    }
    let mut windows = Vec::new();
    let (mut since, mut from, mut first_ms) = (Instant::now(), 0, 0.0);
    model.generate_codes(
        prompt,
        &options(seconds),
        &mut |p, _| {
            if p.step == from + 1 {
                // The window's first pass: its context (none in the first) goes in whole.
                first_ms = since.elapsed().as_secs_f64() * 1000.0;
            }
            if bounds.contains(&p.step) {
                let steps = p.step - from;
                let rest_ms = since.elapsed().as_secs_f64() * 1000.0 - first_ms;
                windows.push(serde_json::json!({
                    "steps": steps,
                    "first_pass_ms": first_ms,
                    "ms_per_step": rest_ms / (steps - 1) as f64,
                    "resident_mb": resident_mb(),
                }));
                (since, from) = (Instant::now(), p.step);
            }
            Ok(())
        },
        &never,
    )?;
    out.insert("seconds".into(), seconds.into());
    out.insert("windows".into(), windows.into());
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
