//! What the EnCodec layer tests share: deterministic noise, configs and weight-normed
//! conv tensors with the effective weight they stand for.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::EncodecConfig;

/// Deterministic values in [-1, 1).
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// transformers' defaults, causal or not.
pub fn config(causal: bool) -> EncodecConfig {
    let mut cfg: EncodecConfig = serde_json::from_str("{}").expect("defaults");
    cfg.use_causal_conv = causal;
    cfg
}

/// Weight-norm tensors (g, v) and a bias, named as under a conv's `conv.` (returned as a
/// map so a test can nest them deeper), plus the effective weight and the bias.
pub fn tensors(
    shape: (usize, usize, usize),
    bias: usize,
    seed: u64,
) -> (HashMap<String, Tensor>, Vec<f32>, Vec<f32>) {
    let (a, b, c) = shape;
    let v = noise(a * b * c, seed);
    let g = noise(a, seed + 1);
    let bias_v = noise(bias, seed + 2);
    let mut w = v.clone();
    for (i, rows) in w.chunks_exact_mut(b * c).enumerate() {
        let norm = rows.iter().map(|x| x * x).sum::<f32>().sqrt();
        rows.iter_mut().for_each(|x| *x *= g[i] / norm);
    }
    let dev = Device::Cpu;
    let t = |data: &[f32], shape: &[usize]| Tensor::from_slice(data, shape, &dev).expect("tensor");
    let map = HashMap::from([
        ("conv.weight_v".to_string(), t(&v, &[a, b, c])),
        ("conv.weight_g".to_string(), t(&g, &[a, 1, 1])),
        ("conv.bias".to_string(), t(&bias_v, &[bias])),
    ]);
    (map, w, bias_v)
}

/// `tensors` as a VarBuilder.
pub fn weights(
    shape: (usize, usize, usize),
    bias: usize,
    seed: u64,
) -> (VarBuilder<'static>, Vec<f32>, Vec<f32>) {
    let (map, w, b) = tensors(shape, bias, seed);
    (
        VarBuilder::from_tensors(map, DType::F32, &Device::Cpu),
        w,
        b,
    )
}

/// `got` within `min_db` of `want` (signal to noise): what 16-bit products must meet.
pub fn near(got: &[f32], want: &[f32], min_db: f64) {
    assert_eq!(got.len(), want.len());
    let snr = super::chunked::snr_db(want, got);
    assert!(snr >= min_db, "SNR {snr:.1} dB, want ≥ {min_db}");
}

pub fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "max |Δ| {worst}");
}
