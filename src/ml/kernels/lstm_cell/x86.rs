//! A block's frame with AVX2 (+F16C) or AVX-512: the weights (f32, or f16 widened as they
//! are read) times broadcast h values into whole vectors of gate sums, for each sequence
//! stepped in lockstep, then the cell a vector of units at a time.

use super::{weight_at, Block, Stored, GATES, UNITS};
use crate::ml::kernels::lanes::{Avx2, Avx512, Elem, Lanes};

/// # Safety
/// The CPU has AVX2, FMA and F16C; the block is as `RecurrentWeight::step_block_on`
/// checks.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn step_avx2<E: Stored, const S: usize>(
    block: &Block<E, S>,
    c: &mut [f32],
    h_out: &mut [f32],
) {
    step_with::<Avx2, E, S>(block, c, h_out)
}

/// # Safety
/// The CPU has AVX-512 F; the block as above.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
pub unsafe fn step_avx512<E: Stored, const S: usize>(
    block: &Block<E, S>,
    c: &mut [f32],
    h_out: &mut [f32],
) {
    step_with::<Avx512, E, S>(block, c, h_out)
}

/// The gate sums, then per sequence (a whole block) the cells and hidden values a vector
/// at a time, or (a partial last block) the scalar cell.
#[inline(always)]
unsafe fn step_with<L: Lanes, E: Stored, const S: usize>(
    block: &Block<E, S>,
    c: &mut [f32],
    h_out: &mut [f32],
) {
    let mut g = [[0f32; GATES]; S];
    gate_sums_with::<L, E, S>(block.w, &block.h_prev, &mut g);
    let units = c.len() / S;
    let (hidden, first) = (block.h_prev[0].len(), block.first);
    for (s, g) in g.iter().enumerate() {
        let c = &mut c[s * units..(s + 1) * units];
        let h_out = &mut h_out[s * units..(s + 1) * units];
        if units < UNITS {
            block.cell(s, g, c, h_out);
            continue;
        }
        let xi = block.xi[s].as_ptr().add(first);
        for v in (0..UNITS).step_by(L::N) {
            // Gate q of units v.. : its sum plus the input projection's (torch's order i,
            // f, g, o).
            let (gp, xp) = (g.as_ptr().add(v), xi.add(v));
            let i = sigmoid::<L>(L::add(L::load(gp), L::load(xp)));
            let f = sigmoid::<L>(L::add(L::load(gp.add(UNITS)), L::load(xp.add(hidden))));
            let cand = tanh::<L>(L::add(
                L::load(gp.add(2 * UNITS)),
                L::load(xp.add(2 * hidden)),
            ));
            let o = sigmoid::<L>(L::add(
                L::load(gp.add(3 * UNITS)),
                L::load(xp.add(3 * hidden)),
            ));
            let cell = L::fma(f, L::load(c.as_ptr().add(v)), L::mul(i, cand));
            L::store(c.as_mut_ptr().add(v), cell);
            L::store(h_out.as_mut_ptr().add(v), L::mul(o, tanh::<L>(cell)));
        }
    }
}

// The helpers below are functions that are always inlined, not closures: a closure the
// compiler chooses not to inline runs without this path's target features, so in a
// build whose baseline lacks them (x86-64-v3 running AVX-512) every vector operation in
// it became a call (a 15 s decode took 3.5 s instead of 0.6).

#[inline(always)]
unsafe fn sigmoid<L: Lanes>(x: L::V) -> L::V {
    let one = L::splat(1.0);
    L::div(one, L::add(one, L::exp(L::sub(L::zero(), x))))
}

/// tanh(x) = 2σ(2x) − 1: within ~1e-7 absolute, like the scalar path's rounding.
#[inline(always)]
unsafe fn tanh<L: Lanes>(x: L::V) -> L::V {
    L::sub(
        L::mul(L::splat(2.0), sigmoid::<L>(L::add(x, x))),
        L::splat(1.0),
    )
}

/// Accumulator registers the gate sums may take: 12 of AVX2's 16 (a weight vector and
/// the broadcast h values need the rest), 16 of AVX-512's 32.
const fn accumulators(lanes: usize) -> usize {
    if lanes == 8 {
        12
    } else {
        16
    }
}

/// Independent FMA chains that hide the FMA's latency (4 cycles, 2 a cycle).
const CHAINS: usize = 8;

/// g[s] = sequence s's gate sums of the block, Σ_k h[s][k] · w[k] (w: GATES per input,
/// laid out by `weight_at`).
///
/// A row's GATES weights are `vecs` vectors; a pass sums `per_pass` of them for every
/// sequence (all its sums in registers), so each weight vector is widened once and
/// multiplied S times. With too few sums for `CHAINS` (one sequence on AVX-512), inputs
/// alternate between `sets` of accumulators, summed at the end.
#[inline(always)]
unsafe fn gate_sums_with<L: Lanes, E: Elem, const S: usize>(
    w: &[E],
    h: &[&[f32]; S],
    g: &mut [[f32; GATES]; S],
) {
    let hidden = h[0].len();
    assert!(w.len() >= hidden * GATES && h.iter().all(|h| h.len() == hidden));
    let vecs = GATES / L::N;
    let mut per_pass = vecs;
    while per_pass * S > accumulators(L::N) {
        per_pass /= 2;
    }
    let sums = per_pass * S;
    let sets = (CHAINS / sums).max(1);
    let wp = w.as_ptr();
    for pass in 0..vecs / per_pass {
        let col = pass * per_pass * L::N;
        let mut acc = [L::zero(); 16];
        let pass = Pass {
            w: wp,
            hidden,
            col,
            per_pass,
        };
        let whole = hidden - hidden % sets;
        for k in (0..whole).step_by(sets) {
            for set in 0..sets {
                pass.fold::<L, S>(&mut acc[set * sums..], h, k + set);
            }
        }
        for k in whole..hidden {
            pass.fold::<L, S>(&mut acc[..], h, k);
        }
        for set in 1..sets {
            for i in 0..sums {
                acc[i] = L::add(acc[i], acc[set * sums + i]);
            }
        }
        for (s, g) in g.iter_mut().enumerate() {
            for v in 0..per_pass {
                L::store(g.as_mut_ptr().add(col + v * L::N), acc[s * per_pass + v]);
            }
        }
    }
}

/// One pass of `gate_sums_with`: `per_pass` vectors of gates from `col` on.
struct Pass<E> {
    w: *const E,
    hidden: usize,
    col: usize,
    per_pass: usize,
}

impl<E: Elem> Pass<E> {
    /// Input k into the sums `acc` (sequence s's vector v at s · per_pass + v): each
    /// weight vector widened once, multiplied by every sequence's h[k].
    ///
    /// # Safety
    /// `L`'s instructions are available, `w` holds hidden · GATES values, k < hidden and
    /// every h is hidden long.
    #[inline(always)]
    unsafe fn fold<L: Lanes, const S: usize>(&self, acc: &mut [L::V], h: &[&[f32]; S], k: usize) {
        let mut b = [L::zero(); S];
        for (b, h) in b.iter_mut().zip(h) {
            *b = L::splat(*h.get_unchecked(k));
        }
        for v in 0..self.per_pass {
            let at = weight_at(self.hidden, k, self.col + v * L::N);
            let wv = E::widen::<L>(self.w.add(at));
            for (s, b) in b.iter().enumerate() {
                acc[s * self.per_pass + v] = L::fma(*b, wv, acc[s * self.per_pass + v]);
            }
        }
    }
}
