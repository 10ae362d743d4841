//! A block's frame with AVX2 (+F16C) or AVX-512: the weights (f32, or f16 widened as they
//! are read) times broadcast h values into whole vectors of gate sums, then the cell a
//! vector of units at a time.

use super::{Block, Stored, GATES, UNITS};
use crate::ml::kernels::lanes::{Avx2, Avx512, Elem, Lanes};

/// # Safety
/// The CPU has AVX2, FMA and F16C; the block is as `RecurrentWeight::step_block_on`
/// checks.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn step_avx2<E: Stored>(block: &Block<E>, c: &mut [f32], h_out: &mut [f32]) {
    step_with::<Avx2, E>(block, c, h_out)
}

/// # Safety
/// The CPU has AVX-512 F; the block as above.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
pub unsafe fn step_avx512<E: Stored>(block: &Block<E>, c: &mut [f32], h_out: &mut [f32]) {
    step_with::<Avx512, E>(block, c, h_out)
}

/// The gate sums, then (a whole block) the cells and hidden values a vector at a time,
/// or (a partial last block) the scalar cell.
#[inline(always)]
unsafe fn step_with<L: Lanes, E: Stored>(block: &Block<E>, c: &mut [f32], h_out: &mut [f32]) {
    let mut g = [0f32; GATES];
    gate_sums_with::<L, E>(block.w, block.h_prev, &mut g);
    if c.len() < UNITS {
        return block.cell(&g, c, h_out);
    }
    let (hidden, first) = (block.h_prev.len(), block.first);
    // Gate q of units v.. : its sum plus the input projection's (torch's order i, f, g, o).
    let gate = |q: usize, v: usize| {
        let xi = block.xi.as_ptr().add(q * hidden + first + v);
        L::add(L::load(g.as_ptr().add(q * UNITS + v)), L::load(xi))
    };
    let one = L::splat(1.0);
    let sigmoid = |x: L::V| L::div(one, L::add(one, L::exp(L::sub(L::zero(), x))));
    // tanh(x) = 2σ(2x) − 1: within ~1e-7 absolute, like the scalar path's rounding.
    let tanh = |x: L::V| L::sub(L::mul(L::splat(2.0), sigmoid(L::add(x, x))), one);
    for v in (0..UNITS).step_by(L::N) {
        let (i, f) = (sigmoid(gate(0, v)), sigmoid(gate(1, v)));
        let (cand, o) = (tanh(gate(2, v)), sigmoid(gate(3, v)));
        let cell = L::fma(f, L::load(c.as_ptr().add(v)), L::mul(i, cand));
        L::store(c.as_mut_ptr().add(v), cell);
        L::store(h_out.as_mut_ptr().add(v), L::mul(o, tanh(cell)));
    }
}

/// Accumulators: all GATES sums once per input for AVX2 (8 vectors), twice for AVX-512
/// (2 × 4, even and odd inputs), so 8 independent FMA chains hide the FMA's latency.
const ACC: usize = 8;

/// g = the block's gate sums, Σ_k h[k] · w[k] (w: rows of GATES).
#[inline(always)]
unsafe fn gate_sums_with<L: Lanes, E: Elem>(w: &[E], h: &[f32], g: &mut [f32; GATES]) {
    assert!(w.len() >= h.len() * GATES);
    let vecs = GATES / L::N;
    let sets = ACC / vecs;
    let mut acc = [L::zero(); ACC];
    let wp = w.as_ptr();
    // Input k into set k mod `sets`; the sets are summed at the end.
    let fold = |acc: &mut [L::V], k: usize| {
        let b = L::splat(*h.get_unchecked(k));
        let row = wp.add(k * GATES);
        for (v, a) in acc.iter_mut().enumerate() {
            *a = L::fma(b, E::widen::<L>(row.add(v * L::N)), *a);
        }
    };
    let whole = h.len() - h.len() % sets;
    for k in (0..whole).step_by(sets) {
        for (s, set) in acc.chunks_exact_mut(vecs).enumerate() {
            fold(set, k + s);
        }
    }
    let (sum, others) = acc.split_at_mut(vecs);
    for k in whole..h.len() {
        fold(sum, k);
    }
    for set in others.chunks_exact(vecs) {
        for (a, b) in sum.iter_mut().zip(set) {
            *a = L::add(*a, *b);
        }
    }
    for (v, a) in sum.iter().enumerate() {
        L::store(g.as_mut_ptr().add(v * L::N), *a);
    }
}
