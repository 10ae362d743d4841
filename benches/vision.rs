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
    let [photo_path, reps, clip_spec, blips @ ..] = args.as_slice() else {
        anyhow::bail!("usage: vision PHOTO REPS CLIP_DIR[:f32,q8_0] BLIP_DIR[:f32,bf16]…");
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
    let (clip_dir, clip_dtypes) = clip_spec.split_once(':').unwrap_or((clip_spec, "f32"));
    let clip_files = hub::resolve(clip_dir)?;
    let mut clip_runs = Map::new();
    for name in clip_dtypes.split(',') {
        let clip = ClipScorer::load(&clip_files, parse_precision(name)?, &Device::Cpu)?;
        // Label embeddings are computed once per process: time that first call on its own.
        let t = Instant::now();
        clip.text_embeddings(&labels)?;
        let labels_ms = t.elapsed().as_secs_f64() * 1000.0;
        let (preprocess_ms, pixels) = common::median_ms(reps, || clip.pixels(&photo))?;
        let (score_ms, logits) = common::median_ms(reps, || {
            let image = clip.image_embedding(&pixels)?;
            clip.logits(&image, &labels)
        })?;
        clip_runs.insert(
            name.to_string(),
            json!({"labels_ms": labels_ms, "preprocess_ms": preprocess_ms,
                   "score_ms": score_ms, "logits": logits}),
        );
    }
    out.insert("clip".into(), json!({"labels": labels, "runs": clip_runs}));

    for spec in blips {
        let (dir, dtypes) = spec.split_once(':').unwrap_or((spec, "f32"));
        let files = hub::resolve(dir)?;
        let mut runs = Map::new();
        // The first precision's tokens and logits along them: the others are fed the same
        // tokens (teacher forcing) and compared position by position.
        let mut reference: Option<(Vec<u32>, Vec<Vec<f32>>)> = None;
        for name in dtypes.split(',') {
            let captioner = Captioner::load(&files, parse_precision(name)?, &Device::Cpu)?;
            let (preprocess_ms, pixels) = common::median_ms(reps, || captioner.pixels(&photo))?;
            let (vision_ms, _) = common::median_ms(reps, || captioner.image_states(&pixels))?;
            let (caption_ms, caption) =
                common::median_ms(reps, || captioner.caption_pixels(&pixels, TOKENS))?;
            let mut run = json!({"preprocess_ms": preprocess_ms, "vision_ms": vision_ms,
                                 "caption_ms": caption_ms, "tokens": caption.tokens});
            match &reference {
                None => {
                    let along = captioner.logits_along(&pixels, &caption.tokens)?;
                    reference = Some((caption.tokens.clone(), along));
                }
                Some((tokens, want)) => {
                    let got = captioner.logits_along(&pixels, tokens)?;
                    let agree = got
                        .iter()
                        .zip(want)
                        .filter(|(a, b)| common::argmax(a) == common::argmax(b));
                    let cosine = got
                        .iter()
                        .zip(want)
                        .map(|(a, b)| common::cosine(a, b))
                        .fold(1f64, f64::min);
                    // Where the picks differ: how far apart the reference put the two
                    // tokens, against the logits' spread (a near tie, or not).
                    let gaps: Vec<f64> = got
                        .iter()
                        .zip(want)
                        .filter(|(a, b)| common::argmax(a) != common::argmax(b))
                        .map(|(a, b)| {
                            let (mine, theirs) = (common::argmax(b), common::argmax(a));
                            ((b[mine] - b[theirs]) as f64) / spread(b)
                        })
                        .collect();
                    run["forced_agree"] = json!(agree.count());
                    run["gaps_in_spread"] = json!(gaps);
                    run["forced_of"] = json!(tokens.len());
                    run["cosine_min"] = json!(cosine);
                }
            }
            runs.insert(name.to_string(), run);
        }
        out.insert(dir.to_string(), Value::Object(runs));
    }
    println!("{}", Value::Object(out));
    Ok(())
}

/// The standard deviation of a logit vector.
fn spread(v: &[f32]) -> f64 {
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}
