//! Our side of the MusicGen benchmark (scripts/bench/musicgen runs it next to
//! transformers): ms per decoder step, T5 and EnCodec time, and how close reduced
//! precision stays to f32, the machine's memory bandwidth and each precision's step time
//! against the time it takes to read its weights once. Prints one JSON line.
//!
//!     cargo bench --features ssr --bench musicgen -- MODEL_DIR PROMPT STEPS FRAMES DTYPES

mod common;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use snapsong::ml::hub;
use snapsong::ml::musicgen::encodec::chunked::snr_db;
use snapsong::ml::nn::device::{parse_precision, Precision};
use snapsong::ml::SamplingConfig;
use snapsong::ml::{GenerateOptions, Length, MusicGen};

/// Timed generations per precision; the median is reported.
const RUNS: usize = 3;
/// Timed EnCodec decodes per precision; the median is reported (one decode swung by
/// ±15 % with the machine's neighbours).
const DECODES: usize = 5;

fn main() -> Result<()> {
    // On a worker of the pool, as songs are made in the server (worker::threads): the
    // products' parallel loops then start on the calling thread instead of waking it.
    rayon::scope(|_| run())
}

fn run() -> Result<()> {
    let args = common::positional_args();
    let [model_dir, prompt, steps, frames, dtypes] = args.as_slice() else {
        anyhow::bail!("usage: musicgen MODEL_DIR PROMPT STEPS FRAMES DTYPES(f32,bf16,…)");
    };
    let steps: usize = steps.parse().context("STEPS")?;
    let frames: usize = frames.parse().context("FRAMES")?;
    let files = hub::resolve(model_dir)?;
    let opts = GenerateOptions {
        length: Length::MaxNewTokens(steps),
        guidance_scale: 3.0,
        sampling: SamplingConfig {
            greedy: true,
            ..SamplingConfig::default()
        },
        prompt_codes: Vec::new(),
    };
    let never = AtomicBool::new(false);
    let mut out = serde_json::Map::new();
    let bandwidth = common::read_bandwidth();
    out.insert("machine".into(), common::machine(bandwidth));
    let mut f32_codes = None;
    let mut f32_logits = None;
    let mut f32_audio: Option<Vec<f32>> = None;
    for name in dtypes.split(',') {
        let precision = parse_precision(name)?;
        let t = Instant::now();
        let mut model = MusicGen::load(&files, precision, &Device::Cpu)?;
        let load_s = t.elapsed().as_secs_f64();
        model.encode_prompt(prompt)?; // warm-up
        let t = Instant::now();
        model.encode_prompt(prompt)?;
        let t5_ms = t.elapsed().as_secs_f64() * 1000.0;
        let warm = GenerateOptions {
            length: Length::MaxNewTokens(8),
            ..opts.clone()
        };
        model.generate_codes(prompt, &warm, &mut |_, _| Ok(()), &never)?;
        // The median of three runs: this shared machine's neighbours come and go.
        let mut runs = Vec::new();
        let mut codes = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            codes = model.generate_codes(prompt, &opts, &mut |_, _| Ok(()), &never)?;
            runs.push(t.elapsed().as_secs_f64() * 1000.0 - t5_ms);
        }
        runs.sort_by(f64::total_cmp);
        let gen_ms = runs[RUNS / 2];
        let ms_per_step = gen_ms / steps as f64;
        // The floor: reading every weight a step needs once at the measured bandwidth.
        let bytes = model.step_weight_bytes();
        let floor_ms = bytes as f64 / (bandwidth * 1e9) * 1000.0;
        let mut r = serde_json::json!({
            "load_s": load_s, "t5_ms": t5_ms, "ms_per_step": ms_per_step,
            "weight_mb_per_step": bytes as f64 / 1e6, "bandwidth_floor_ms": floor_ms,
            "fraction_of_bandwidth": floor_ms / ms_per_step,
        });
        // EnCodec on random codes (FRAMES 0: not timed), the median of DECODES: f32 but for
        // the LSTM's recurrent weights (f16) and the large products (16-bit integers) at
        // the reduced precisions; how far that moves the waveform from f32's.
        let mut audio = None;
        if frames > 0 {
            let k = model.num_codebooks();
            let random: Vec<Vec<u32>> = (0..k)
                .map(|c| {
                    (0..frames)
                        .map(|f| ((f * 7919 + c * 104729) % 2048) as u32)
                        .collect()
                })
                .collect();
            let mut decoded = model.decode(&random[..])?; // warm-up (first-touch allocations)
            let mut times = Vec::with_capacity(DECODES);
            for _ in 0..DECODES {
                let t = Instant::now();
                decoded = model.decode(&random)?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            r["encodec_ms"] = times[DECODES / 2].into();
            r["encodec_samples"] = decoded.len().into();
            if let Some(reference) = &f32_audio {
                r["encodec_snr_db_vs_f32"] = snr_db(reference, &decoded).into();
            }
            audio = Some(decoded);
        }
        if precision == Precision::F32 {
            f32_audio = audio;
            r["greedy_codes"] = serde_json::to_value(&codes)?;
            f32_logits = Some(model.teacher_forced_logits(prompt, &codes, 3.0)?);
            f32_codes = Some(codes);
        } else if let (Some(ref_codes), Some(ref_logits)) = (&f32_codes, &f32_logits) {
            r["codes_equal_to_f32"] = common::codes_agreement(&codes, ref_codes).into();
            let logits = model.teacher_forced_logits(prompt, ref_codes, 3.0)?;
            let agreement = common::logits_agreement(&logits, ref_logits);
            if let (Some(r), Some(a)) = (r.as_object_mut(), agreement.as_object()) {
                r.extend(a.clone());
            }
        }
        out.insert(name.to_string(), r);
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
