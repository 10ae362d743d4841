//! CLIP zero-shot logits against transformers on a tiny random model
//! (scripts/parity/make_clip_fixtures.py): same token ids, logits within 1e-4.
#![cfg(feature = "ssr")]

use crate::support::model_device;
use snapsong::ml::hub;
use snapsong::ml::nn::device::Precision;
use snapsong::ml::vision::clip::{softmax, ClipScorer};

#[test]
fn zero_shot_logits_match_transformers() {
    let dir = crate::support::fixtures().join("clip/tiny");
    let files = hub::resolve(dir.to_str().expect("utf-8 path")).expect("resolve");
    let clip = ClipScorer::load(&files, Precision::F32, &model_device()).expect("load");
    let refs = candle_core::safetensors::load(dir.join("reference.safetensors"), &model_device())
        .expect("references");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference.json")).expect("json"))
            .expect("parse");
    let labels: Vec<String> = serde_json::from_value(json["labels"].clone()).expect("labels");
    let ids: Vec<Vec<u32>> = serde_json::from_value(json["ids"].clone()).expect("ids");
    for (label, want) in labels.iter().zip(&ids) {
        assert_eq!(&clip.token_ids(label).expect("tokenize"), want, "{label}");
    }
    let texts: Vec<&str> = labels.iter().map(String::as_str).collect();
    let image = clip.image_embedding(&refs["pixel_values"]).expect("image");
    let logits = clip.logits(&image, &texts).expect("logits");
    let want: Vec<f32> = refs["logits_per_image"]
        .flatten_all()
        .expect("flat")
        .to_vec1()
        .expect("vec");
    for (got, want) in logits.iter().zip(&want) {
        assert!(
            (got - want).abs() <= 1e-4,
            "logit {got} vs transformers {want}"
        );
    }
    // Cached text embeddings give the same answer the second time.
    assert_eq!(clip.logits(&image, &texts).expect("again"), logits);
    let p = softmax(&logits);
    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn eight_bit_image_weights_keep_the_logits() {
    // q8_0 on the CPU puts the image tower's projections in 8 bits (the text tower stays
    // f32); the tiny model's 96-wide MLP input is the one whole number of 32-blocks.
    let dir = crate::support::fixtures().join("clip/tiny");
    let files = hub::resolve(dir.to_str().expect("utf-8 path")).expect("resolve");
    let refs = candle_core::safetensors::load(dir.join("reference.safetensors"), &model_device())
        .expect("references");
    let labels = ["a calm lake", "a loud city", "a dark forest"];
    let logits = |p| {
        let clip = ClipScorer::load(&files, p, &model_device()).expect("load");
        let image = clip.image_embedding(&refs["pixel_values"]).expect("image");
        clip.logits(&image, &labels).expect("logits")
    };
    let (want, got) = (logits(Precision::F32), logits(Precision::Q8_0));
    assert_ne!(got, want, "the 8-bit weights were used");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() <= 0.02 * scale.max(1.0),
            "q8_0 logit {g} vs f32 {w}"
        );
    }
}
