//! BLIP captioning against transformers on tiny random models
//! (scripts/parity/make_blip_fixtures.py): same pixel tensor in, same greedy tokens out.
#![cfg(feature = "ssr")]

use std::path::PathBuf;

use candle_core::Tensor;

use crate::support::model_device;
use snapsong::ml::hub;
use snapsong::ml::Captioner;
use snapsong::ml::Precision;

fn fixture(name: &str) -> PathBuf {
    crate::support::fixtures().join("blip").join(name)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let a: Vec<f32> = a.flatten_all().expect("flat").to_vec1().expect("vec");
    let b: Vec<f32> = b.flatten_all().expect("flat").to_vec1().expect("vec");
    assert_eq!(a.len(), b.len(), "element count");
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn greedy_captions_match_transformers() {
    for name in ["wide_vision", "same_width"] {
        let dir = fixture(name);
        let files = hub::resolve(dir.to_str().expect("utf-8 path")).expect("resolve");
        let model = Captioner::load(&files, Precision::F32, &model_device()).expect("load");
        let refs =
            candle_core::safetensors::load(dir.join("reference.safetensors"), &model_device())
                .expect("references");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("reference.json")).expect("json"))
                .expect("parse");
        let want: Vec<u32> = serde_json::from_value(json["tokens"].clone()).expect("tokens");
        let max_new = json["max_new_tokens"].as_u64().expect("max") as usize;

        let pixels = &refs["pixel_values"];
        let image = model.image_states(pixels).expect("vision");
        let d = max_abs_diff(&image.squeeze(0).expect("squeeze"), &refs["image_embeds"]);
        assert!(d <= 1e-4, "{name}: vision states max |Δ| {d}");
        let first = model.first_logits(&image).expect("first step");
        let d = max_abs_diff(&first, &refs["first_logits"]);
        assert!(d <= 1e-4, "{name}: first logits max |Δ| {d}");

        let caption = model.caption_pixels(pixels, max_new).expect("caption");
        assert_eq!(caption.tokens, want, "{name}: greedy tokens");
        assert!(!caption.text.is_empty(), "{name}: decoded text");
    }
}

#[test]
fn lower_precisions_stay_close() {
    for name in ["wide_vision", "same_width"] {
        let dir = fixture(name);
        let files = hub::resolve(dir.to_str().expect("utf-8 path")).expect("resolve");
        let refs =
            candle_core::safetensors::load(dir.join("reference.safetensors"), &model_device())
                .expect("references");
        let f32_model = Captioner::load(&files, Precision::F32, &model_device()).expect("f32");
        let image = f32_model
            .image_states(&refs["pixel_values"])
            .expect("vision");
        let reference = f32_model.first_logits(&image).expect("f32 logits");
        let scale = max_abs_diff(&reference, &reference.zeros_like().expect("zeros"));
        for p in [Precision::F16, Precision::BF16, Precision::Q8_0] {
            let m = Captioner::load(&files, p, &model_device()).expect("load");
            // q8_0 also changes the vision transformer's weights (on the CPU, layers whose
            // width is a whole number of 32-blocks): run the image through it too.
            let image = match p {
                Precision::Q8_0 => m.image_states(&refs["pixel_values"]).expect("vision"),
                _ => image.clone(),
            };
            let logits = m.first_logits(&image).expect("logits");
            let d = max_abs_diff(&logits, &reference);
            assert!(
                d <= 0.02 * scale,
                "{name} {p:?}: max |Δ| {d} vs logit scale {scale}"
            );
        }
    }
}

#[test]
fn a_photo_is_captioned_end_to_end() {
    let dir = fixture("same_width");
    let files = hub::resolve(dir.to_str().expect("utf-8 path")).expect("resolve");
    let model = Captioner::load(&files, Precision::F32, &model_device()).expect("load");
    let bytes =
        std::fs::read(crate::support::fixtures().join("photos/landscape.jpg")).expect("photo");
    let photo = snapsong::photo::decode(&bytes, &Default::default()).expect("decode");
    let a = model.caption(&photo.image, 8).expect("caption");
    let b = model.caption(&photo.image, 8).expect("caption again");
    assert_eq!(a, b, "greedy captions are deterministic");
    assert!(!a.tokens.is_empty() && a.tokens.len() <= 8);
}
