//! A stride-1, undilated correlation of r taps over a chunk's staged frames by Winograd's
//! F(m, r) (`winograd`): each group of m output frames from n = m + r − 1 products
//! instead of m · r. Each residual block's first conv (3 taps) and each transposed conv
//! (2 taps of s·cout columns: `transposed`) run on it.
//!
//! For a chunk of `groups` groups: the n transformed inputs of every group, as n
//! (groups, cin) matrices; n products with the transformed weights (k = cin, n = cols,
//! one GEMM each over every group of the chunk); then each output frame combined from
//! the n products of its group, with the bias or added to what the output holds. So
//! this pays only where the output fills the GEMM's columns
//! (`packed_gemm::columns_per_pass`), and the transforms are a few multiply-adds per
//! channel (`kernels::row_combinations`).

use super::buffers::{reused, WinogradScratch};
use super::signal::{ProductPrecision, Weight};
use super::winograd::Transform;
use crate::ml::kernels::row_combinations::{self as rows, Combination, Layout, Terms};

/// Output frames per group: F(6, r). Against F(4, r) it cuts the products' multiply-adds
/// by 7 % (the transposed convs') and 11 % (the blocks' 3-tap convs'); with the
/// transforms on their vector kernel that made the 15 s decode ~10 ms faster on the AVX2
/// path, while the transforms' share grew by 2 ms. (Against F(2, r), F(4, r) had cut
/// the multiply-adds by 13 %.)
const OUTPUTS_PER_GROUP: usize = 6;
/// Output frames per group where one point's matrix is over `STREAMED_POINT_FLOATS`.
const STREAMED_OUTPUTS_PER_GROUP: usize = 4;
/// A point's (cin, cols) matrix larger than this (8 MB) is read from memory by every
/// chunk, and the product is bound by that read: more points cost more than their
/// fewer multiply-adds save. EnCodec's first upsampling (16 MB a point) took as long
/// with F(6, 2) as with F(4, 2), and its weights grew from 84 to 117 MB.
const STREAMED_POINT_FLOATS: usize = 1 << 21;

/// m of the F(m, r) for a correlation of `cin` input and `cols` output channels.
pub fn outputs_per_group(cin: usize, cols: usize) -> usize {
    if cin * cols > STREAMED_POINT_FLOATS {
        STREAMED_OUTPUTS_PER_GROUP
    } else {
        OUTPUTS_PER_GROUP
    }
}

/// The transformed weights of F(m, r) and the transforms of inputs and outputs.
pub struct Winograd {
    m: usize,
    r: usize,
    /// One (cin, cols) matrix per point.
    weights: Vec<Weight>,
    /// Bᵀ's rows: each point's input from the group's n input frames.
    input: Vec<Terms>,
    /// Aᵀ's rows: each output frame from the group's n products.
    output: Vec<Terms>,
    cin: usize,
    cols: usize,
}

impl Winograd {
    /// F(m, r) over `taps`, r row-major (cin, cols) matrices: tap k weighs input frame
    /// t + k of output frame t.
    /// `products`: how the points' products multiply.
    pub fn new(
        taps: &[&[f32]],
        cin: usize,
        cols: usize,
        m: usize,
        products: ProductPrecision,
    ) -> Self {
        let r = taps.len();
        assert!(
            taps.iter().all(|t| t.len() == cin * cols),
            "Winograd taps are not (cin, cols)"
        );
        let t = Transform::new(m, r);
        let n = t.points();
        let weights = (0..n)
            .map(|j| {
                let g = &t.weight[j * r..(j + 1) * r];
                let w: Vec<f32> = (0..cin * cols)
                    .map(|e| {
                        let v: f64 = g.iter().zip(taps).map(|(c, tap)| c * tap[e] as f64).sum();
                        v as f32
                    })
                    .collect();
                Weight::with(&w, cin, cols, products)
            })
            .collect();
        let sparse = |rows: &[f64]| -> Vec<Terms> {
            rows.chunks_exact(n)
                .map(|row| {
                    let nonzero = row.iter().enumerate().filter(|(_, c)| **c != 0.0);
                    nonzero.map(|(i, c)| (i, *c as f32)).collect()
                })
                .collect()
        };
        Self {
            m,
            r,
            weights,
            input: sparse(&t.input),
            output: sparse(&t.output),
            cin,
            cols,
        }
    }

    /// Floats of scratch per output frame: the transformed inputs and the products.
    pub fn scratch_per_frame(&self) -> usize {
        (self.m + self.r - 1) * (self.cin + self.cols) / self.m
    }

    /// Output frames one row of the products makes (a group's).
    pub fn frames_per_row(&self) -> usize {
        self.m
    }

    /// Floats of the transformed weights (what a chunk reads).
    pub fn weight_floats(&self) -> usize {
        self.weights.len() * self.cin * self.cols
    }

    /// The correlation of `staged` (the rows + r − 1 input frames the rows read) into
    /// out (rows × cols), on this thread: written over out plus a bias, or added to it.
    pub fn run(
        &self,
        staged: &[f32],
        rows: usize,
        out: &mut [f32],
        start: Start,
        scratch: &mut WinogradScratch,
    ) {
        let (m, cin, cols) = (self.m, self.cin, self.cols);
        let groups = rows / m;
        if groups > 0 {
            let WinogradScratch {
                inputs, products, ..
            } = scratch;
            let out = &mut out[..groups * m * cols];
            self.groups(staged, groups, out, start, inputs, products);
        }
        let tail = rows - groups * m;
        if tail > 0 {
            // The last frames: a whole group over a copy of their window, zero past the
            // input, made in rows that start as the frames' own; only theirs are kept.
            let first = groups * m;
            let have = (tail + self.r - 1) * cin;
            let WinogradScratch {
                inputs,
                products,
                window,
                rows: y,
            } = scratch;
            window.clear();
            window.extend_from_slice(&staged[first * cin..first * cin + have]);
            window.resize((m + self.r - 1) * cin, 0.0);
            let out = &mut out[first * cols..rows * cols];
            y.clear();
            y.extend_from_slice(out);
            y.resize(m * cols, 0.0);
            // Read back at once: not streamed.
            self.groups(window, 1, y, start.cached(), inputs, products);
            out.copy_from_slice(&y[..tail * cols]);
        }
    }

    /// `run` over groups · m output frames (`staged`: groups · m + r − 1 frames).
    fn groups(
        &self,
        staged: &[f32],
        groups: usize,
        out: &mut [f32],
        start: Start,
        inputs: &mut Vec<f32>,
        products: &mut Vec<f32>,
    ) {
        let (m, cin, cols) = (self.m, self.cin, self.cols);
        let n = self.weights.len();
        // Point j's input for group g at d[(j · groups + g) · cin ..], from the group's
        // frames g · m + i.
        let d = reused(inputs, n * groups * cin);
        let frames = Layout {
            row: cin,
            group: m * cin,
        };
        let points = Layout {
            row: groups * cin,
            group: cin,
        };
        let transform = Combination {
            matrix: &self.input,
            from: frames,
            to: points,
            groups,
            width: cin,
            start: rows::Start::Zero,
            stream: false,
        };
        transform.run(staged, d);
        let p = reused(products, n * groups * cols);
        for (j, (w, p)) in self
            .weights
            .iter()
            .zip(p.chunks_exact_mut(groups * cols))
            .enumerate()
        {
            w.set_here(p, cols, &d[j * groups * cin..], cin, groups);
        }
        let products = Layout {
            row: groups * cols,
            group: cols,
        };
        let outputs = Layout {
            row: cols,
            group: m * cols,
        };
        let (start, stream) = match start {
            Start::Bias(bias) => (rows::Start::Row(bias), false),
            Start::StreamedBias(bias) => (rows::Start::Row(bias), true),
            Start::Accumulate => (rows::Start::Accumulate, false),
        };
        let transform = Combination {
            matrix: &self.output,
            from: products,
            to: outputs,
            groups,
            width: cols,
            start,
            stream,
        };
        transform.run(p, out);
    }
}

/// How a product treats its output: written over, starting from a bias (a conv's own
/// output), or added to what it holds.
#[derive(Clone, Copy)]
pub enum Start<'a> {
    Bias(&'a [f32]),
    /// `Bias`, stored past the caches (`row_combinations::Combination::stream`): a
    /// layer's output larger than the caches, which the next layer reads from memory.
    StreamedBias(&'a [f32]),
    Accumulate,
}

impl Start<'_> {
    /// The same start, stored through the caches.
    fn cached(self) -> Self {
        match self {
            Start::StreamedBias(bias) => Start::Bias(bias),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{near, noise};
    use super::*;

    /// The correlation by its definition: bias (or what out held) plus Σ_k x_{t+k} · g_k.
    fn direct(taps: &[Vec<f32>], x: &[f32], cin: usize, cols: usize, out: &mut [f32]) {
        for (t, y) in out.chunks_exact_mut(cols).enumerate() {
            for (k, g) in taps.iter().enumerate() {
                for c in 0..cin {
                    let v = x[(t + k) * cin + c];
                    for (o, w) in y.iter_mut().zip(&g[c * cols..(c + 1) * cols]) {
                        *o += v * w;
                    }
                }
            }
        }
    }

    #[test]
    fn every_length_matches_the_correlation_in_every_mode() {
        // Columns that are not a whole vector, groups of 2, 4 and 6, every tail.
        for (r, m, cin, cols) in [
            (2, 6, 5, 19),
            (3, 6, 7, 33),
            (2, 4, 5, 19),
            (3, 4, 7, 33),
            (3, 2, 4, 16),
            (2, 2, 3, 8),
        ] {
            let taps: Vec<Vec<f32>> = (0..r).map(|k| noise(cin * cols, 10 + k as u64)).collect();
            let slices: Vec<&[f32]> = taps.iter().map(Vec::as_slice).collect();
            let f = Winograd::new(&slices, cin, cols, m, ProductPrecision::F32);
            let bias = noise(cols, 3);
            let mut scratch = WinogradScratch::default();
            for rows in 1..=13 {
                let x = noise((rows + r - 1) * cin, rows as u64);
                let mut want: Vec<f32> = bias.repeat(rows);
                direct(&taps, &x, cin, cols, &mut want);
                let mut written = vec![f32::NAN; rows * cols];
                f.run(&x, rows, &mut written, Start::Bias(&bias), &mut scratch);
                let mut added = bias.repeat(rows);
                f.run(&x, rows, &mut added, Start::Accumulate, &mut scratch);
                let mut streamed = vec![f32::NAN; rows * cols];
                f.run(
                    &x,
                    rows,
                    &mut streamed,
                    Start::StreamedBias(&bias),
                    &mut scratch,
                );
                for got in [&written, &added, &streamed] {
                    for (a, b) in got.iter().zip(&want) {
                        assert!((a - b).abs() < 1e-4, "F({m}, {r}), {rows} rows: {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn sixteen_bit_products_stay_close_to_the_correlation() {
        // Products wide and deep enough to run in 16 bits (`signal::Weight::with`): the
        // error of 13-bit values through the transforms, every tail of a group. The
        // output transform adds up the points' errors with large coefficients: F(6, r)
        // keeps 59–66 dB here, F(4, 3) 62–69, a plain product ~75.
        for (r, m, cin, cols) in [(2, 6, 128, 64), (3, 6, 130, 70), (3, 4, 256, 64)] {
            let taps: Vec<Vec<f32>> = (0..r).map(|k| noise(cin * cols, 30 + k as u64)).collect();
            let slices: Vec<&[f32]> = taps.iter().map(Vec::as_slice).collect();
            let f = Winograd::new(&slices, cin, cols, m, ProductPrecision::Int16);
            assert!(matches!(f.weights[0], Weight::Int16(_)), "not in 16 bits");
            let mut scratch = WinogradScratch::default();
            for rows in 1..=13 {
                let x = noise((rows + r - 1) * cin, 40 + rows as u64);
                let mut want = vec![0f32; rows * cols];
                direct(&taps, &x, cin, cols, &mut want);
                let mut got = vec![0f32; rows * cols];
                f.run(&x, rows, &mut got, Start::Accumulate, &mut scratch);
                near(&got, &want, 57.0);
            }
        }
    }
}
