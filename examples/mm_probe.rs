use candle_core::{Device, Tensor};
use std::time::Instant;
fn main() -> candle_core::Result<()> {
    let d = Device::Cpu;
    for (m, k, n) in [
        (50usize, 768usize, 3072usize),
        (50, 3072, 768),
        (10, 512, 2048),
        (577, 1024, 4096),
    ] {
        let x = Tensor::randn(0f32, 1., (m, k), &d)?;
        let w = Tensor::randn(0f32, 1., (n, k), &d)?;
        let wt = w.t()?.contiguous()?;
        let hw = snapsong::ml::host_matmul::HostWeight::F32(w.flatten_all()?.to_vec1()?);
        let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let reps = if m > 100 { 3 } else { 30 };
        let time = |f: &dyn Fn() -> candle_core::Result<()>| -> candle_core::Result<f64> {
            f()?;
            let t = Instant::now();
            for _ in 0..reps {
                f()?;
            }
            Ok(t.elapsed().as_secs_f64() * 1000.0 / reps as f64)
        };
        let a = time(&|| {
            x.matmul(&w.t()?)?;
            Ok(())
        })?;
        let b = time(&|| {
            x.matmul(&wt)?;
            Ok(())
        })?;
        let c = time(&|| {
            snapsong::ml::host_matmul::matmul_t(&hw, &xs, m, k, n);
            Ok(())
        })?;
        let gf = 2.0 * (m * k * n) as f64 / 1e6;
        println!("{m}x{k}x{n}: view {a:.2} ms ({:.0} GF/s), contiguous {b:.2} ms ({:.0}), host {c:.2} ms ({:.0})", gf / a, gf / b, gf / c);
    }
    Ok(())
}
