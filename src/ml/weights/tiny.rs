//! A tiny MusicGen with random weights, made locally with no download, so the app, demos
//! and tests can run the real pipeline end to end. Its output is noise, and it says so.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::ml::musicgen::decoder::MusicgenDecoder;
use crate::ml::musicgen::encodec::EncodecDecoder;
use crate::ml::musicgen::MusicgenConfig;
use crate::ml::nn::device::Precision;
use crate::ml::nn::linear::Linear;
use crate::ml::vision::blip::text::TextDecoder;
use crate::ml::vision::blip::vision::VisionModel;
use crate::ml::vision::blip::BlipConfig;
use crate::ml::vision::clip::ClipJson;

/// A small T5-style (unigram, `</s>`-terminated) tokenizer, made by
/// `scripts/parity/make_fixtures.py` with the tokenizers library.
const TOKENIZER_JSON: &str = include_str!("../../../tests/fixtures/tiny_tokenizer.json");

/// Marks a tiny model so every surface can tell people its songs are noise.
pub const TINY_MARKER: &str = "snapsong-tiny-random";

/// The shapes: small enough to load in milliseconds, with every part of the real model.
pub fn tiny_config_json() -> serde_json::Value {
    serde_json::json!({
        "model_type": "musicgen",
        "_name_or_path": TINY_MARKER,
        "text_encoder": {
            "model_type": "t5", "vocab_size": 256, "d_model": 32, "d_kv": 8, "d_ff": 64,
            "num_layers": 2, "num_heads": 4, "relative_attention_num_buckets": 8,
            "relative_attention_max_distance": 16, "feed_forward_proj": "relu",
            "layer_norm_epsilon": 1e-6, "pad_token_id": 0, "eos_token_id": 1
        },
        "audio_encoder": {
            "model_type": "encodec", "sampling_rate": 32000, "audio_channels": 1,
            "hidden_size": 16, "num_filters": 4, "num_residual_layers": 1,
            "upsampling_ratios": [8, 5, 4, 4], "norm_type": "weight_norm",
            "kernel_size": 7, "last_kernel_size": 7, "residual_kernel_size": 3,
            "dilation_growth_rate": 2, "use_causal_conv": false, "pad_mode": "reflect",
            "compress": 2, "num_lstm_layers": 2, "trim_right_ratio": 1.0,
            "codebook_size": 64, "codebook_dim": 16, "use_conv_shortcut": false,
            "target_bandwidths": [2.2], "chunk_length_s": null
        },
        "decoder": {
            "model_type": "musicgen_decoder", "vocab_size": 64, "max_position_embeddings": 2048,
            "num_hidden_layers": 2, "ffn_dim": 64, "num_attention_heads": 4,
            "activation_function": "gelu", "hidden_size": 32, "num_codebooks": 4,
            "audio_channels": 1, "pad_token_id": 64, "bos_token_id": 64
        }
    })
}

/// Write a tiny random MusicGen (config.json, model.safetensors, tokenizer.json) to `dir`.
pub fn write_tiny_musicgen(dir: &Path, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = tiny_config_json();
    let cfg: MusicgenConfig = serde_json::from_value(json.clone())?;

    // Loading through a VarMap registers every tensor the loaders ask for, with its name
    // and shape; the values are then replaced by seeded noise.
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let t5 = candle_transformers::models::t5::T5EncoderModel::load(
        vb.pp("text_encoder"),
        &serde_json::from_value(serde_json::json!({
            "vocab_size": 256, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2,
            "num_heads": 4, "relative_attention_num_buckets": 8,
            "relative_attention_max_distance": 16, "dropout_rate": 0.0,
            "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0, "feed_forward_proj": "relu",
            "is_encoder_decoder": false, "pad_token_id": 0, "eos_token_id": 1
        }))?,
    )?;
    drop(t5);
    Linear::load(vb.pp("enc_to_dec_proj"), 32, 32, true)?;
    MusicgenDecoder::load(vb.pp("decoder"), &cfg.decoder, Precision::F32)?;
    EncodecDecoder::load(
        vb.pp("audio_encoder"),
        &cfg.audio_encoder,
        cfg.decoder.num_codebooks,
        Precision::F32,
    )?;

    randomize(&varmap, seed)?;
    varmap.save(dir.join("model.safetensors"))?;
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    std::fs::write(dir.join("tokenizer.json"), TOKENIZER_JSON)?;
    Ok(())
}

/// Replace every registered tensor with seeded noise, in name order (so the same seed
/// gives the same model).
fn randomize(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("var map poisoned"))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (i, name) in names.into_iter().enumerate() {
        let var = &data[name];
        let noise = seeded_noise(
            var.as_tensor().shape().elem_count(),
            seed.wrapping_add(i as u64),
        );
        var.set(&Tensor::from_vec(
            noise,
            var.as_tensor().shape(),
            &Device::Cpu,
        )?)?;
    }
    Ok(())
}

/// Tiny BLIP and CLIP: the committed parity fixtures' shapes and tokenizers, fresh noise.
const BLIP_CONFIG: &str = include_str!("../../../tests/fixtures/blip/wide_vision/config.json");
const BLIP_TOKENIZER: &str =
    include_str!("../../../tests/fixtures/blip/wide_vision/tokenizer.json");
const CLIP_CONFIG: &str = include_str!("../../../tests/fixtures/clip/tiny/config.json");
const CLIP_TOKENIZER: &str = include_str!("../../../tests/fixtures/clip/tiny/tokenizer.json");

fn marked(config: &str) -> Result<String> {
    let mut json: serde_json::Value = serde_json::from_str(config)?;
    json["_name_or_path"] = TINY_MARKER.into();
    Ok(serde_json::to_string_pretty(&json)?)
}

fn save(dir: &Path, varmap: &VarMap, config: String, tokenizer: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    varmap.save(dir.join("model.safetensors"))?;
    std::fs::write(dir.join("config.json"), config)?;
    std::fs::write(dir.join("tokenizer.json"), tokenizer)?;
    Ok(())
}

/// Write a tiny random BLIP captioner to `dir`.
pub fn write_tiny_blip(dir: &Path, seed: u64) -> Result<()> {
    let cfg: BlipConfig = serde_json::from_str(BLIP_CONFIG)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    VisionModel::load(vb.pp("vision_model"), &cfg.vision_config, Precision::F32)?;
    TextDecoder::load(vb.pp("text_decoder"), &cfg.text_config, Precision::F32)?;
    randomize(&varmap, seed)?;
    save(dir, &varmap, marked(BLIP_CONFIG)?, BLIP_TOKENIZER)
}

/// Write a tiny random CLIP to `dir`.
pub fn write_tiny_clip(dir: &Path, seed: u64) -> Result<()> {
    let json: ClipJson = serde_json::from_str(CLIP_CONFIG)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    crate::ml::vision::clip::model::ClipModel::load(vb, &json.to_config()?, Precision::F32)?;
    randomize(&varmap, seed)?;
    save(dir, &varmap, marked(CLIP_CONFIG)?, CLIP_TOKENIZER)
}

/// Where `ensure_tiny_set` put the three models.
pub struct TinySet {
    pub musicgen: PathBuf,
    pub blip: PathBuf,
    pub clip: PathBuf,
}

/// Make the tiny model set under `root` unless it is already there.
pub fn ensure_tiny_set(root: &Path) -> Result<TinySet> {
    let set = TinySet {
        musicgen: root.join("musicgen"),
        blip: root.join("blip"),
        clip: root.join("clip"),
    };
    let missing = |d: &Path| !d.join("model.safetensors").exists();
    if missing(&set.musicgen) {
        write_tiny_musicgen(&set.musicgen, 1)?;
    }
    if missing(&set.blip) {
        write_tiny_blip(&set.blip, 2)?;
    }
    if missing(&set.clip) {
        write_tiny_clip(&set.clip, 3)?;
    }
    Ok(set)
}

/// Deterministic noise in [-0.5, 0.5) × 0.4 (xorshift), independent of any global RNG:
/// the tiny models' weights, and benches' inputs.
pub fn seeded_noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.4
        })
        .collect()
}

/// Whether a model directory is one of ours (so the UI can label its output as noise).
pub fn is_tiny(config_path: &Path) -> bool {
    std::fs::read_to_string(config_path).is_ok_and(|s| s.contains(TINY_MARKER))
}
