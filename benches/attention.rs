//! A decoding step's self-attention alone, over musicgen-small's 24 layers of caches
//! filled to POSITIONS (a song's step late in its 30 s reads them all): ms a step for the
//! 8-bit cache (q8_0's) and the f16 one (f16/bf16's); the same with the step's new
//! position appended in the same loop, as the decoder runs it, and appended apart first;
//! the megabytes a step reads, the time the measured memory bandwidth needs for them (the
//! floor), and the fraction of it reached. Prints one JSON line.
//!
//!     cargo bench --features ssr --bench attention -- POSITIONS(,…) STEPS

mod common;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use snapsong::ml::kernels::decode_attention::{CpuKvCache, KvElement};
use snapsong::ml::weights::tiny::seeded_noise;

/// musicgen-small's decoder: layers, heads, head size; rows of a song with guidance.
const LAYERS: usize = 24;
const HEADS: usize = 16;
const HEAD_DIM: usize = 64;
const ROWS: usize = 2;
/// The most positions a cache is filled to: a 30 s window and its start token.
const MAX_POSITIONS: usize = 1503;

fn main() -> Result<()> {
    // On a worker of the pool, as songs are made in the server: attention's parallel loop
    // then starts on the calling thread instead of waiting on a latch for the pool.
    rayon::scope(|_| run())
}

fn run() -> Result<()> {
    let args = common::positional_args();
    let [positions, steps] = args.as_slice() else {
        anyhow::bail!("usage: attention POSITIONS(,…) STEPS");
    };
    let steps: usize = steps.parse().context("STEPS")?;
    let dev = Device::Cpu;
    let scale = (HEAD_DIM as f32).powf(-0.5);
    let bandwidth = common::read_bandwidth();
    let mut out = serde_json::Map::new();
    out.insert("machine".into(), common::machine(bandwidth));
    let queries: Vec<Tensor> = (0..LAYERS)
        .map(|l| {
            Tensor::from_vec(
                seeded_noise(ROWS * HEADS * HEAD_DIM, 1000 + l as u64),
                (ROWS, 1, HEADS * HEAD_DIM),
                &dev,
            )
        })
        .collect::<candle_core::Result<_>>()?;
    // A step's new keys and values (the same for every layer).
    let new = Tensor::from_vec(
        seeded_noise(ROWS * HEADS * HEAD_DIM, 999),
        (ROWS, HEADS, 1, HEAD_DIM),
        &dev,
    )?;
    for positions in positions.split(',') {
        let t: usize = positions.parse().context("POSITIONS")?;
        anyhow::ensure!(
            (1..=MAX_POSITIONS).contains(&t),
            "POSITIONS {t} is not in 1..={MAX_POSITIONS}"
        );
        let mut figures = serde_json::Map::new();
        for (name, element) in [("q8", KvElement::I8), ("f16", KvElement::F16)] {
            let fill = |l: usize| -> Result<CpuKvCache> {
                let shape = (ROWS, HEADS, t, HEAD_DIM);
                let n = ROWS * HEADS * t * HEAD_DIM;
                let k = Tensor::from_vec(seeded_noise(n, 2 * l as u64), shape, &dev)?;
                let v = Tensor::from_vec(seeded_noise(n, 2 * l as u64 + 1), shape, &dev)?;
                let mut cache = CpuKvCache::new(element, ROWS, HEADS, HEAD_DIM, t + steps + 1);
                cache.append(&k, &v)?;
                Ok(cache)
            };
            let caches = (0..LAYERS).map(fill).collect::<Result<Vec<_>>>()?;
            let (ms, _) = common::median_ms(steps, || {
                for (cache, q) in caches.iter().zip(&queries) {
                    std::hint::black_box(cache.attend_one(q, scale)?);
                }
                Ok(())
            })?;
            // As the decoder runs it: each step's new position written, then attended
            // over; and the same as two passes (a step grows the caches by one).
            let mut caches = (0..LAYERS).map(fill).collect::<Result<Vec<_>>>()?;
            let (with_append_ms, _) = common::median_ms(steps, || {
                for (cache, q) in caches.iter_mut().zip(&queries) {
                    std::hint::black_box(cache.append_and_attend(q, (&new, &new), scale)?);
                }
                Ok(())
            })?;
            let mut caches = (0..LAYERS).map(fill).collect::<Result<Vec<_>>>()?;
            let (append_apart_ms, _) = common::median_ms(steps, || {
                for (cache, q) in caches.iter_mut().zip(&queries) {
                    cache.append(&new, &new)?;
                    std::hint::black_box(cache.attend_one(q, scale)?);
                }
                Ok(())
            })?;
            // Keys and values; in 8 bits also a scale per position and head for each.
            let values = (LAYERS * ROWS * HEADS * t * HEAD_DIM) as f64;
            let bytes = match element {
                KvElement::I8 => 2.0 * values + 2.0 * (LAYERS * ROWS * HEADS * t * 4) as f64,
                KvElement::F16 => 2.0 * values * 2.0,
            };
            let floor_ms = bytes / (bandwidth * 1e9) * 1000.0;
            figures.insert(
                name.into(),
                serde_json::json!({
                    "ms_per_step": ms, "with_append_ms": with_append_ms,
                    "append_apart_ms": append_apart_ms, "mb_per_step": bytes / 1e6,
                    "bandwidth_floor_ms": floor_ms, "fraction_of_bandwidth": floor_ms / ms,
                }),
            );
        }
        out.insert(t.to_string(), serde_json::Value::Object(figures));
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
