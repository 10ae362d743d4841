//! Our side of the photo-understanding benchmark (scripts/bench/vision runs it next to
//! transformers): BLIP caption latency per model and precision, CLIP scoring latency, and
//! the preprocessing each needs. Prints one JSON line.
//!
//!     cargo bench --features ssr --bench vision -- PHOTO REPS CLIP_DIR BLIP_DIR[:DTYPES]…

mod common;

use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use serde_json::{json, Map, Value};
use snapsong::ml::hub;
use snapsong::ml::nn::device::parse_precision;
use snapsong::ml::Captioner;
use snapsong::ml::ClipScorer;
use snapsong::photo;
use snapsong::prompt::vocabulary::{GENRES, MOODS};

/// Caption budget: both sides generate exactly this many tokens (the bench models never
/// emit [SEP]).
const TOKENS: usize = 20;

fn main() -> Result<()> {
    let args = common::positional_args();
    let [photo_path, reps, clip_dir, blips @ ..] = args.as_slice() else {
        anyhow::bail!("usage: vision PHOTO REPS CLIP_DIR BLIP_DIR[:f32,bf16]…");
    };
    let reps: usize = reps.parse().context("REPS")?;
    let bytes = std::fs::read(photo_path).with_context(|| format!("reading {photo_path}"))?;
    let photo = photo::decode(&bytes, &photo::Limits::default())?.image;
    let mut out = Map::new();

    let labels: Vec<&str> = MOODS
        .iter()
        .map(|m| m.clip)
        .chain(GENRES.iter().map(|g| g.clip))
        .collect();
    let clip = ClipScorer::load(&hub::resolve(clip_dir)?, &Device::Cpu)?;
    // Label embeddings are computed once per process: time that first call on its own.
    let t = Instant::now();
    clip.text_embeddings(&labels)?;
    let labels_ms = t.elapsed().as_secs_f64() * 1000.0;
    let (preprocess_ms, pixels) = common::median_ms(reps, || clip.pixels(&photo))?;
    let (score_ms, logits) = common::median_ms(reps, || {
        let image = clip.image_embedding(&pixels)?;
        clip.logits(&image, &labels)
    })?;
    out.insert(
        "clip".into(),
        json!({"labels": labels, "labels_ms": labels_ms, "preprocess_ms": preprocess_ms,
               "score_ms": score_ms, "logits": logits}),
    );

    for spec in blips {
        let (dir, dtypes) = spec.split_once(':').unwrap_or((spec, "f32"));
        let files = hub::resolve(dir)?;
        let mut runs = Map::new();
        for name in dtypes.split(',') {
            let captioner = Captioner::load(&files, parse_precision(name)?, &Device::Cpu)?;
            let (preprocess_ms, pixels) = common::median_ms(reps, || captioner.pixels(&photo))?;
            let (vision_ms, _) = common::median_ms(reps, || captioner.image_states(&pixels))?;
            let (caption_ms, caption) =
                common::median_ms(reps, || captioner.caption_pixels(&pixels, TOKENS))?;
            runs.insert(
                name.to_string(),
                json!({"preprocess_ms": preprocess_ms, "vision_ms": vision_ms,
                       "caption_ms": caption_ms, "tokens": caption.tokens}),
            );
        }
        out.insert(dir.to_string(), Value::Object(runs));
    }
    println!("{}", Value::Object(out));
    Ok(())
}
