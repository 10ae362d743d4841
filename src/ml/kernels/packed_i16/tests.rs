use super::*;
use crate::ml::kernels::host_matmul::tests::data;

/// W (k, n) row-major, from `data` with a spread of column magnitudes.
fn weight(k: usize, n: usize, seed: u32) -> Vec<f32> {
    let w = data(k * n, seed);
    w.iter()
        .enumerate()
        .map(|(i, v)| v * (1.0 + (i % n) as f32 / 7.0))
        .collect()
}

/// The product of what the integers stand for, in f64: x's and W's quantized values
/// times their scales. The kernel must give this up to f32 rounding.
fn dequantized(x: &[f32], ldx: usize, rows: usize, w: &PackedI16, r: usize, c: usize) -> f64 {
    let k = w.k;
    let row = &x[r * ldx..r * ldx + k];
    assert!(r < rows);
    let (pairs, blocks) = (k.div_ceil(2), k.div_ceil(KC));
    let (p, cc) = (c / NR, c % NR);
    (0..k)
        .map(|i| {
            let block = &row[i - i % KC..k.min(i - i % KC + KC)];
            let (xs, xinv) = quantize::scales(block.iter().fold(0f32, |m, v| m.max(v.abs())));
            let q = w.panels[(p * pairs + i / 2) * NR * 2 + cc * 2 + i % 2] as f64;
            let ws = w.scales[(p * blocks + i / KC) * NR + cc] as f64;
            quantize::level(row[i], xinv) as f64 * xs as f64 * q * ws
        })
        .sum()
}

#[test]
fn every_path_gives_the_dequantized_product_at_every_edge() {
    // Rows around MR and a task's rows, columns around NR, odd depths and depths across
    // KC; rows of x that overlap (a convolution's windows) and rows of y apart.
    for (rows, k, n, ldx, ldy) in [
        (1, 1, 1, 1, 1),
        (5, 3, 17, 3, 17),
        (6, 64, 32, 64, 32),
        (7, 513, 16, 513, 20),
        (13, 96, 70, 32, 75),
        (97, 1100, 33, 1100, 33),
        (200, 40, 15, 40, 15),
    ] {
        let x = data((rows - 1) * ldx + k, 3);
        let w = weight(k, n, 4);
        let packed = PackedI16::pack_cols(&w, n, k, n);
        let before = data((rows - 1) * ldy + n, 5);
        for isa in Isa::available() {
            for accumulate in [false, true] {
                let mut y = before.clone();
                packed.matmul_t_par_on(isa, &x, ldx, rows, &mut y, ldy, accumulate);
                let mut here = before.clone();
                packed.matmul_t_here(&x, ldx, rows, &mut here, ldy, accumulate);
                for (i, (got, was)) in y.iter().zip(&before).enumerate() {
                    let (r, c) = (i / ldy, i % ldy);
                    let want = match (c < n, accumulate) {
                        (false, _) => *was as f64,
                        (true, true) => *was as f64 + dequantized(&x, ldx, rows, &packed, r, c),
                        (true, false) => dequantized(&x, ldx, rows, &packed, r, c),
                    };
                    let tol = 1e-5 * (1.0 + want.abs()) * (k as f64).sqrt();
                    assert!(
                        (*got as f64 - want).abs() <= tol,
                        "{isa} ({rows},{k},{n}) acc {accumulate} at ({r},{c}): {got} vs {want}"
                    );
                    let other = here[i] as f64;
                    assert!(
                        (other - *got as f64).abs() <= tol,
                        "one thread and all differ"
                    );
                }
            }
        }
    }
}

/// Pseudo-random values in [-1, 1) (an LCG): `data`'s hashed values are too regular
/// for a product's error to be typical.
fn uniform(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005) | 1;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

#[test]
fn error_against_f32_stays_far_below_the_signal() {
    // Uniform data: the product's error from 12-bit rows and columns, as a signal to
    // noise ratio over the whole output (each value alone keeps ~72 dB).
    let (rows, k, n) = (60, 512, 48);
    let (x, w) = (uniform(rows * k, 7), uniform(k * n, 8));
    let mut y = vec![0f32; rows * n];
    PackedI16::pack_cols(&w, n, k, n).matmul_t_here(&x, k, rows, &mut y, n, false);
    let (mut signal, mut noise) = (0f64, 0f64);
    for r in 0..rows {
        for c in 0..n {
            let want: f64 = (0..k)
                .map(|i| x[r * k + i] as f64 * w[i * n + c] as f64)
                .sum();
            signal += want * want;
            noise += (y[r * n + c] as f64 - want).powi(2);
        }
    }
    let snr = 10.0 * (signal / noise).log10();
    assert!(snr > 72.0, "SNR {snr:.1} dB");
}

#[test]
fn the_largest_values_over_many_blocks_do_not_wrap() {
    // Every value at its row's and column's maximum, all one sign: the worst case for
    // the i32 sums, over depths that cross several k-blocks.
    let (rows, k, n) = (7, 3 * KC + 5, 18);
    let x = vec![-3.0f32; rows * k];
    let w = vec![-0.5f32; k * n];
    let packed = PackedI16::pack_cols(&w, n, k, n);
    for isa in Isa::available() {
        let mut y = vec![0f32; rows * n];
        packed.matmul_t_par_on(isa, &x, k, rows, &mut y, n, false);
        for v in y {
            assert!((v - 1.5 * k as f32).abs() < 1e-3 * k as f32, "{isa}: {v}");
        }
    }
}

#[test]
fn a_row_of_zeros_gives_zeros_not_nan() {
    let (rows, k, n) = (3, 10, 16);
    let mut x = data(rows * k, 9);
    x[k..2 * k].fill(0.0);
    let packed = PackedI16::pack_cols(&weight(k, n, 1), n, k, n);
    let mut y = vec![f32::NAN; rows * n];
    packed.matmul_t_here(&x, k, rows, &mut y, n, false);
    assert!(y[n..2 * n].iter().all(|v| *v == 0.0));
    assert!(y.iter().all(|v| v.is_finite()));
}
