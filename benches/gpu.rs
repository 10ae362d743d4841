//! Our side of the GPU benchmark (scripts/bench/gpu runs it next to transformers on the
//! same GPU and weights). For one MusicGen: per precision, ms per decoder step (greedy,
//! guidance 3) and, against f32, the teacher-forced logits' cosine and argmax agreement;
//! a 15 s song end to end (T5, decoding, EnCodec) in SONG_DTYPE; EnCodec for 15 s on the
//! device and with the CPU kernels; songs per minute with N songs decoded together; and,
//! given a BLIP, its caption latency. Prints one JSON line.
//!
//!     cargo bench --features ssr,cuda --bench gpu -- \
//!         DEVICE MODEL_DIR STEPS DTYPES SONG_DTYPE SIZES [BLIP_DIR PHOTO]

mod common;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use serde_json::{json, Map, Value};
use snapsong::ml::musicgen::encodec::{EncodecDecoder, Engine};
use snapsong::ml::musicgen::MusicgenConfig;
use snapsong::ml::nn::device::{parse_device, parse_precision, Precision};
use snapsong::ml::{hub, Captioner, GenerateOptions, Length, MusicGen, SamplingConfig};

const PROMPT: &str = "warm lofi hip hop beat with mellow piano, soft drums and vinyl crackle";

/// Different prompts for the songs of a batch, so their texts differ in length.
const PROMPTS: [&str; 4] = [
    PROMPT,
    "fast techno",
    "calm orchestral strings with a slow build, cinematic and hopeful",
    "upbeat funk with slap bass and brass",
];

/// Timed runs per figure; the median is reported.
const REPS: usize = 3;

/// Seconds of audio in the song and EnCodec figures.
const SONG_SECONDS: f64 = 15.0;

/// Caption budget (the bench BLIP never emits [SEP], so every run makes this many).
const CAPTION_TOKENS: usize = 20;

fn options(length: Length, greedy: bool, seed: u64) -> GenerateOptions {
    GenerateOptions {
        length,
        guidance_scale: 3.0,
        sampling: SamplingConfig {
            greedy,
            seed,
            ..SamplingConfig::default()
        },
        prompt_codes: Vec::new(),
    }
}

fn main() -> Result<()> {
    let args = common::positional_args();
    let (device, model_dir, steps, dtypes, song_dtype, sizes, blip) = match args.as_slice() {
        [d, m, st, dt, sd, si] => (d, m, st, dt, sd, si, None),
        [d, m, st, dt, sd, si, b, p] => (d, m, st, dt, sd, si, Some((b, p))),
        _ => anyhow::bail!(
            "usage: gpu DEVICE MODEL_DIR STEPS DTYPES SONG_DTYPE SIZES [BLIP_DIR PHOTO]"
        ),
    };
    let device = parse_device(device)?;
    let steps: usize = steps.parse().context("STEPS")?;
    let files = hub::resolve(model_dir)?;
    let mut out = Map::new();
    // Each part is also written to stderr when measured, so a run cut short still tells.
    let mut part = |name: &str, value: Value| {
        eprintln!("{name}: {value}");
        out.insert(name.into(), value);
    };
    part("device", format!("{device:?}").into());
    part("precisions", precisions(&files, &device, steps, dtypes)?);
    let song_precision = parse_precision(song_dtype)?;
    let mut model = MusicGen::load(&files, song_precision, &device)?;
    part("batch", batches(&mut model, sizes, song_precision)?);
    part("encodec_15s", encodec(&files, &device, &model)?);
    part("song_15s", song(&mut model, song_precision)?);
    if let Some((blip_dir, photo)) = blip {
        part("blip", captions(blip_dir, photo, &device)?);
    }
    println!("{}", Value::Object(out));
    Ok(())
}

/// Per precision: load time, T5 ms, ms per step; against f32, the logits and codes.
fn precisions(
    files: &hub::ModelFiles,
    device: &Device,
    steps: usize,
    dtypes: &str,
) -> Result<Value> {
    let never = AtomicBool::new(false);
    let opts = options(Length::MaxNewTokens(steps), true, 0);
    let mut out = Map::new();
    // f32's greedy codes and its teacher-forced logits over them.
    type Reference = (Vec<Vec<u32>>, Vec<Vec<f32>>);
    let mut reference: Option<Reference> = None;
    for name in dtypes.split(',') {
        let precision = parse_precision(name)?;
        let t = Instant::now();
        let mut model = MusicGen::load(files, precision, device)?;
        let load_s = t.elapsed().as_secs_f64();
        let (t5_ms, _) = common::median_ms(REPS, || model.encode_prompt(PROMPT))?;
        let warm = options(Length::MaxNewTokens(8), true, 0);
        model.generate_codes(PROMPT, &warm, &mut |_, _| Ok(()), &never)?;
        let (gen_ms, codes) = common::median_ms(REPS, || {
            model.generate_codes(PROMPT, &opts, &mut |_, _| Ok(()), &never)
        })?;
        let mut r = json!({
            "load_s": load_s, "t5_ms": t5_ms, "ms_per_step": (gen_ms - t5_ms) / steps as f64,
        });
        match &reference {
            None if precision == Precision::F32 => {
                let logits = model.teacher_forced_logits(PROMPT, &codes, 3.0)?;
                reference = Some((codes, logits));
            }
            Some((ref_codes, ref_logits)) => {
                r["codes_equal_to_f32"] = common::codes_agreement(&codes, ref_codes).into();
                let logits = model.teacher_forced_logits(PROMPT, ref_codes, 3.0)?;
                let agreement = common::logits_agreement(&logits, ref_logits);
                if let (Some(r), Some(a)) = (r.as_object_mut(), agreement.as_object()) {
                    r.extend(a.clone());
                }
            }
            None => {}
        }
        out.insert(name.to_string(), r);
    }
    Ok(Value::Object(out))
}

/// A 15 s song as `snapsong generate` makes it: T5 and the decoder (sampling), then
/// EnCodec. T5 is also timed alone.
fn song(model: &mut MusicGen, precision: Precision) -> Result<Value> {
    let never = AtomicBool::new(false);
    let opts = options(Length::Seconds(SONG_SECONDS), false, 7);
    let (t5_ms, _) = common::median_ms(REPS, || model.encode_prompt(PROMPT))?;
    let mut parts = Vec::new();
    let (total_ms, _) = common::median_ms(REPS, || {
        let t = Instant::now();
        let codes = model.generate_codes(PROMPT, &opts, &mut |_, _| Ok(()), &never)?;
        let generate = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        let audio = model.decode(&codes)?;
        let encodec = t.elapsed().as_secs_f64() * 1000.0;
        parts.push((generate, encodec, codes[0].len(), audio.len()));
        Ok(())
    })?;
    parts.sort_by(|a, b| (a.0 + a.1).total_cmp(&(b.0 + b.1)));
    let (generate, encodec, frames, samples) = parts[parts.len() / 2];
    Ok(json!({
        "dtype": precision.to_string(), "total_ms": total_ms, "t5_ms": t5_ms,
        "generate_ms": generate, "encodec_ms": encodec, "frames": frames, "samples": samples,
    }))
}

/// EnCodec over 15 s of codes: on the model's device (what songs use there) and with the
/// CPU kernels on this machine's cores.
fn encodec(files: &hub::ModelFiles, device: &Device, model: &MusicGen) -> Result<Value> {
    let cfg: MusicgenConfig = files.read_config()?;
    let frames = (SONG_SECONDS * model.frame_rate()).round() as usize;
    let books = cfg.decoder.num_codebooks;
    let size = cfg.audio_encoder.codebook_size;
    let codes: Vec<Vec<u32>> = (0..books)
        .map(|c| {
            (0..frames)
                .map(|f| ((f * 7919 + c * 104729) % size) as u32)
                .collect()
        })
        .collect();
    let mut out = Map::new();
    for (name, dev, engine) in [
        ("device_ms", device.clone(), Engine::TensorOps),
        ("cpu_kernels_ms", Device::Cpu, Engine::HostKernels),
    ] {
        let vb = files.var_builder(DType::F32, &dev)?.pp("audio_encoder");
        // f32 on both: the CPU kernels as a GPU host's would run them beside an f32 model.
        let codec =
            EncodecDecoder::load_with(vb, &cfg.audio_encoder, books, engine, Precision::F32)?;
        let (ms, _) = common::median_ms(REPS, || codec.decode(&codes))?;
        out.insert(name.into(), ms.into());
    }
    out.insert("cpu_threads".into(), rayon::current_num_threads().into());
    Ok(Value::Object(out))
}

/// N songs decoded together (sampling, guidance 3, different prompts), for each N: ms per
/// pass and 15 s songs per minute, of the decoder alone and end to end (adding each
/// song's T5 and EnCodec, run one song at a time).
fn batches(model: &mut MusicGen, sizes: &str, precision: Precision) -> Result<Value> {
    let steps = 100;
    let opts = |seed: u64| options(Length::MaxNewTokens(steps), false, seed);
    let song_steps =
        (SONG_SECONDS * model.frame_rate()).round() + model.num_codebooks() as f64 - 1.0;
    let (t5_ms, _) = common::median_ms(REPS, || model.encode_prompt(PROMPT))?;
    let frames = (SONG_SECONDS * model.frame_rate()).round() as usize;
    let codes = vec![vec![0u32; frames]; model.num_codebooks()];
    let (encodec_ms, _) = common::median_ms(REPS, || model.decode(&codes))?;
    let mut out = Map::new();
    out.insert("dtype".into(), precision.to_string().into());
    for n in sizes.split(',') {
        let n: usize = n.trim().parse().context("SIZES")?;
        let start = |model: &mut MusicGen| {
            (0..n)
                .map(|i| model.start_decoding(PROMPTS[i % PROMPTS.len()], &opts(i as u64)))
                .collect::<Result<Vec<_>>>()
        };
        // A warm-up pass at this size (the allocator's first blocks of these shapes).
        let mut warm = start(model)?;
        model.step(&mut warm.iter_mut().collect::<Vec<_>>())?;
        drop(warm);
        let mut songs = start(model)?;
        let t = Instant::now();
        let passes = common::decode_together(model, &mut songs)?;
        let ms_per_pass = t.elapsed().as_secs_f64() * 1000.0 / passes as f64;
        let decoder_ms = song_steps * ms_per_pass;
        let whole_ms = decoder_ms + n as f64 * (t5_ms + encodec_ms);
        out.insert(
            n.to_string(),
            json!({"ms_per_pass": ms_per_pass,
                   "songs_per_min_decoder": n as f64 * 60_000.0 / decoder_ms,
                   "songs_per_min_end_to_end": n as f64 * 60_000.0 / whole_ms}),
        );
    }
    Ok(Value::Object(out))
}

/// BLIP caption latency (CAPTION_TOKENS tokens) per precision on the device.
fn captions(dir: &str, photo: &str, device: &Device) -> Result<Value> {
    let files = hub::resolve(dir)?;
    let bytes = std::fs::read(photo).with_context(|| format!("reading {photo}"))?;
    let photo = snapsong::photo::decode(&bytes, &Default::default())?.image;
    let mut out = Map::new();
    for precision in [Precision::F32, Precision::BF16, Precision::F16] {
        let captioner = Captioner::load(&files, precision, device)?;
        let pixels = captioner.pixels(&photo)?;
        let (vision_ms, _) = common::median_ms(REPS, || {
            let states = captioner.image_states(&pixels)?;
            // Read a value back: a GPU's work is only done once its result is.
            let first = states
                .flatten_all()?
                .narrow(0, 0, 1)?
                .to_dtype(DType::F32)?;
            Ok(first.to_vec1::<f32>()?)
        })?;
        let (caption_ms, caption) =
            common::median_ms(REPS, || captioner.caption_pixels(&pixels, CAPTION_TOKENS))?;
        out.insert(
            precision.to_string(),
            json!({"vision_ms": vision_ms, "caption_ms": caption_ms, "tokens": caption.tokens}),
        );
    }
    Ok(Value::Object(out))
}
