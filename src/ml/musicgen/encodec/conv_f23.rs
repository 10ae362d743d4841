//! A 3-tap, stride-1, undilated convolution (each residual block's first conv) by
//! Winograd's F(2, 3): two neighbouring output frames from four products instead of six,
//! a third fewer multiply-adds.
//!
//! With the window x_t … x_{t+3} of the pair (y_t, y_{t+1}) and the taps g0, g1, g2
//! ((cin, cout) matrices):
//!   m1 = (x_t − x_{t+2}) g0,           m2 = (x_{t+1} + x_{t+2}) (g0 + g1 + g2) / 2,
//!   m3 = (x_{t+2} − x_{t+1}) (g0 − g1 + g2) / 2,   m4 = (x_{t+3} − x_{t+1}) g2,
//!   y_t = m1 + m2 + m3,   y_{t+1} = m2 − m3 + m4.
//! Each m is one product over every pair of a chunk (k = cin, n = cout), so it pays only
//! where the output fills the GEMM's columns (`packed_gemm::columns_per_pass`).

use super::buffers::{reused, WinogradScratch};
use super::signal::Weight;

/// The four transformed weights of F(2, 3).
pub struct F23 {
    g0: Weight,
    sum: Weight,
    diff: Weight,
    g2: Weight,
    cin: usize,
    cout: usize,
}

impl F23 {
    /// From the (3 · cin, cout) matrix whose row tap · cin + c holds input channel c's
    /// weights at that tap.
    pub fn new(taps: &[f32], cin: usize, cout: usize) -> Self {
        assert_eq!(taps.len(), 3 * cin * cout, "F(2, 3) needs 3 taps");
        let tap = |i: usize| &taps[i * cin * cout..(i + 1) * cin * cout];
        let (g0, g1, g2) = (tap(0), tap(1), tap(2));
        let combine = |sign: f32| -> Vec<f32> {
            g0.iter()
                .zip(g1)
                .zip(g2)
                .map(|((a, b), c)| (a + sign * b + c) / 2.0)
                .collect()
        };
        Self {
            g0: Weight::new(g0, cin, cout),
            sum: Weight::new(&combine(1.0), cin, cout),
            diff: Weight::new(&combine(-1.0), cin, cout),
            g2: Weight::new(g2, cin, cout),
            cin,
            cout,
        }
    }

    /// Floats of scratch per output frame: the four transformed inputs of a pair and
    /// its m2 and m3 (for the chunk sizes of the layers that use it).
    pub fn scratch_per_frame(&self) -> usize {
        2 * self.cin + self.cout
    }

    /// The conv of `staged` (the rows + 2 padded input frames the rows read) into out
    /// (rows × cout), on this thread: written over out plus a bias, or added to it.
    pub fn run(
        &self,
        staged: &[f32],
        rows: usize,
        out: &mut [f32],
        start: Start,
        scratch: &mut WinogradScratch,
    ) {
        let (cin, cout) = (self.cin, self.cout);
        let pairs = rows / 2;
        if pairs > 0 {
            self.pairs(staged, pairs, out, start, scratch);
        }
        if rows % 2 == 1 {
            // The odd last frame: its pair with a zero frame after the window, made in a
            // pair of rows that starts as the frame's own, and only the first kept.
            let first = rows - 1;
            let mut window = vec![0f32; 4 * cin];
            window[..3 * cin].copy_from_slice(&staged[first * cin..(first + 3) * cin]);
            let out = &mut out[first * cout..rows * cout];
            let mut y = vec![0f32; 2 * cout];
            y[..cout].copy_from_slice(out);
            self.pairs(&window, 1, &mut y, start, scratch);
            out.copy_from_slice(&y[..cout]);
        }
    }

    /// `run` over 2 · pairs output frames (`staged`: 2 · pairs + 2 frames).
    fn pairs(
        &self,
        staged: &[f32],
        pairs: usize,
        out: &mut [f32],
        start: Start,
        scratch: &mut WinogradScratch,
    ) {
        let (cin, cout) = (self.cin, self.cout);
        let frame = |j: usize| &staged[j * cin..(j + 1) * cin];
        // The transformed inputs of every pair, one matrix each.
        let d = reused(&mut scratch.inputs, 4 * pairs * cin);
        let (d1, rest) = d.split_at_mut(pairs * cin);
        let (d2, rest) = rest.split_at_mut(pairs * cin);
        let (d3, d4) = rest.split_at_mut(pairs * cin);
        for i in 0..pairs {
            let (a, b, c, e) = (
                frame(2 * i),
                frame(2 * i + 1),
                frame(2 * i + 2),
                frame(2 * i + 3),
            );
            let at = i * cin..(i + 1) * cin;
            let rows = d1[at.clone()]
                .iter_mut()
                .zip(&mut d2[at.clone()])
                .zip(&mut d3[at.clone()])
                .zip(&mut d4[at]);
            for ((((o1, o2), o3), o4), (((a, b), c), e)) in rows.zip(a.iter().zip(b).zip(c).zip(e))
            {
                *o1 = a - c;
                *o2 = b + c;
                *o3 = c - b;
                *o4 = e - b;
            }
        }
        // m1 into the even frames, m4 into the odd ones, m2 and m3 apart, then combined
        // (with the bias, when out is written over).
        let (bias, zeros);
        match start {
            Start::Bias(b) => {
                self.g0.set_here(out, 2 * cout, d1, cin, pairs);
                self.g2.set_here(&mut out[cout..], 2 * cout, d4, cin, pairs);
                bias = b;
            }
            Start::Accumulate => {
                self.g0.acc_here(out, 2 * cout, d1, cin, pairs);
                self.g2.acc_here(&mut out[cout..], 2 * cout, d4, cin, pairs);
                zeros = vec![0f32; cout];
                bias = &zeros;
            }
        }
        let m = reused(&mut scratch.products, 2 * pairs * cout);
        let (m2, m3) = m.split_at_mut(pairs * cout);
        self.sum.set_here(m2, cout, d2, cin, pairs);
        self.diff.set_here(m3, cout, d3, cin, pairs);
        for ((pair, m2), m3) in out
            .chunks_exact_mut(2 * cout)
            .zip(m2.chunks_exact(cout))
            .zip(m3.chunks_exact(cout))
        {
            let (even, odd) = pair.split_at_mut(cout);
            for ((((e, o), p), q), b) in even.iter_mut().zip(odd).zip(m2).zip(m3).zip(bias) {
                *e += p + q + b;
                *o += p - q + b;
            }
        }
    }
}

/// How a product treats its output: written over, starting from a bias (a conv's own
/// output), or added to what it holds.
#[derive(Clone, Copy)]
pub enum Start<'a> {
    Bias(&'a [f32]),
    Accumulate,
}
