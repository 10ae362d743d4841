//! The CPU cache against the f32 definition.

use super::*;
use crate::ml::kernels::decode_attention::attend_one_on;
use crate::ml::kernels::decode_attention::tests::{max_abs_diff, vector_path};
use crate::ml::kernels::host_matmul::tests::data;

#[test]
fn attends_as_the_f32_cache_within_rounding_on_every_path() {
    let dev = Device::Cpu;
    // Head sizes around the vector widths and not a multiple of the key pass's row
    // sets; lengths around the vector widths and its blocks (a line of keys: 32
    // positions in f16, 64 in 8 bits); positions appended one at a time and several
    // at once.
    for element in [KvElement::F16, KvElement::I8] {
        for (rows, heads, dh, steps) in [
            (1, 1, 8, [1, 1, 1]),
            (2, 3, 20, [5, 1, 11]),
            (2, 2, 64, [17, 1, 1]),
            (1, 2, 7, [70, 1, 60]),
        ] {
            let total: usize = steps.iter().sum();
            let mut cache = CpuKvCache::new(element, rows, heads, dh, total + 2);
            let mut written = 0;
            for (i, s) in steps.into_iter().enumerate() {
                let shape = (rows, heads, s, dh);
                let n = rows * heads * s * dh;
                let k = Tensor::from_vec(data(n, 20 + i as u32), shape, &dev).expect("k");
                let v = Tensor::from_vec(data(n, 30 + i as u32), shape, &dev).expect("v");
                cache.append(&k, &v).expect("append");
                written += s;
                assert_eq!(cache.len(), written);
                let (kt, vv) = cache.widened().expect("widen");
                assert_eq!(kt.dims(), [rows, heads, dh, written]);
                let q = Tensor::from_vec(
                    data(rows * heads * dh, 40 + i as u32),
                    (rows, 1, heads * dh),
                    &dev,
                )
                .expect("q");
                // The f32 kernel over the widened cache is the definition.
                let want = attend_one_on(Isa::Portable, &q, &kt, &vv, None, 0.3)
                    .expect("runs")
                    .expect("takes f32");
                for isa in Isa::available() {
                    let got = cache.attend_one_on(isa, &q, 0.3).expect("attends");
                    let diff = max_abs_diff(&got, &want);
                    assert!(
                        diff < 1e-5,
                        "{element:?} {isa} ({rows}, {heads}, {dh}, {written}): max |Δ| {diff}"
                    );
                    let (keys, values) = cache.heads();
                    assert!(
                        isa < Isa::Avx2 || vector_path(isa, &keys, &values, written, dh),
                        "{element:?} {isa}: the cache is not on the vector kernels"
                    );
                }
            }
            let k = Tensor::zeros((rows, heads, 3, dh), candle_core::DType::F32, &dev).expect("k");
            assert!(
                cache.append(&k, &k).is_err(),
                "appending past the end is an error"
            );
        }
    }
}

#[test]
fn widened_values_are_within_rounding_of_the_originals() {
    let dev = Device::Cpu;
    let (rows, heads, s, dh) = (2, 2, 70, 16);
    let mut x = data(rows * heads * s * dh, 50);
    x[..dh].fill(0.0); // a position of zeros keeps a zero scale
    let k = Tensor::from_vec(x, (rows, heads, s, dh), &dev).expect("k");
    let top = k
        .abs()
        .and_then(|a| a.max_all())
        .and_then(|m| m.to_scalar::<f32>())
        .expect("max");
    // Half an 8-bit step of the largest value; half an f16 ulp of it (2⁻¹¹ relative).
    for (element, bound) in [
        (KvElement::I8, top / 127.0 / 2.0 * 1.0001),
        (KvElement::F16, top / 2048.0),
    ] {
        let mut cache = CpuKvCache::new(element, rows, heads, dh, s);
        cache.append(&k, &k).expect("append");
        let (kt, v) = cache.widened().expect("widen");
        let kt = kt.transpose(2, 3).expect("t");
        for got in [&kt, &v] {
            let err = max_abs_diff(got, &k);
            assert!(err <= bound, "{element:?}: error {err} past {bound}");
        }
    }
}

#[test]
fn appending_with_attention_is_appending_then_attending() {
    let dev = Device::Cpu;
    // Lengths across a tile's end (64 positions in 8 bits, 32 in f16), after a pass of
    // several positions; head sizes around the vector widths.
    for element in [KvElement::F16, KvElement::I8] {
        for (rows, heads, dh, first) in [(2, 3, 64, 1), (1, 2, 20, 30), (2, 1, 7, 62)] {
            let steps = 70;
            for isa in Isa::available() {
                let mut apart = CpuKvCache::new(element, rows, heads, dh, first + steps);
                let mut fused = CpuKvCache::new(element, rows, heads, dh, first + steps);
                let n = rows * heads * first * dh;
                let k = Tensor::from_vec(data(n, 60), (rows, heads, first, dh), &dev).expect("k");
                for cache in [&mut apart, &mut fused] {
                    cache.append(&k, &k).expect("first pass");
                }
                for i in 0..steps as u32 {
                    let shape = (rows, heads, 1, dh);
                    let n = rows * heads * dh;
                    let k = Tensor::from_vec(data(n, 70 + i), shape, &dev).expect("k");
                    let v = Tensor::from_vec(data(n, 170 + i), shape, &dev).expect("v");
                    let q =
                        Tensor::from_vec(data(n, 270 + i), (rows, 1, heads * dh), &dev).expect("q");
                    apart.append(&k, &v).expect("append");
                    let want = apart.attend_one_on(isa, &q, 0.3).expect("attends");
                    let got = fused
                        .append_and_attend_on(isa, &q, (&k, &v), 0.3)
                        .expect("appends and attends");
                    let diff = max_abs_diff(&got, &want);
                    assert!(
                        diff == 0.0,
                        "{element:?} {isa} at {}: |Δ| {diff}",
                        fused.len()
                    );
                }
                let (a, b) = (
                    apart.widened().expect("widen"),
                    fused.widened().expect("widen"),
                );
                assert_eq!(max_abs_diff(&a.0, &b.0), 0.0, "{element:?} {isa}: keys");
                assert_eq!(max_abs_diff(&a.1, &b.1), 0.0, "{element:?} {isa}: values");
            }
        }
    }
    // Several positions, a wrong shape, a full cache: errors, and nothing written.
    let mut cache = CpuKvCache::new(KvElement::I8, 1, 2, 8, 1);
    let q = Tensor::zeros((1, 1, 16), candle_core::DType::F32, &dev).expect("q");
    let two = Tensor::zeros((1, 2, 2, 8), candle_core::DType::F32, &dev).expect("k");
    assert!(cache.append_and_attend(&q, (&two, &two), 1.0).is_err());
    let one = two.narrow(2, 0, 1).expect("one");
    assert!(
        cache.append_and_attend(&two, (&one, &one), 1.0).is_err(),
        "query"
    );
    assert_eq!(cache.len(), 0);
    cache
        .append_and_attend(&q, (&one, &one), 1.0)
        .expect("fits");
    assert!(
        cache.append_and_attend(&q, (&one, &one), 1.0).is_err(),
        "full"
    );
    assert_eq!(cache.len(), 1);
}
