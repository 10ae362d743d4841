//! Rows made as fixed linear combinations of other rows, group after group: Winograd's
//! input and output transforms (`encodec::conv_winograd`), where each of a group's n
//! transformed rows is a sum of 2 to 5 of its n frames times small constants.
//!
//! Why a kernel: the transforms are ~750 M multiply-adds a 15 s decode. Summed a block
//! of columns at a time in an array of accumulators whose length was only known at run
//! time, they ran from memory, a multiply and an add apart, and took 7 % of the decode
//! (~37 ms on the AVX2 path). Here each output row's coefficients sit in registers and
//! every term is one load and one FMA.

use super::isa::{self, Isa};

#[cfg(target_arch = "x86_64")]
mod x86;

/// A sparse row of a transform: (source row, coefficient) for each nonzero.
pub type Terms = Vec<(usize, f32)>;

/// Most terms one pass sums in registers: every row of F(4, 2) and F(4, 3) fits; a longer
/// row goes in several passes, each adding to what the one before wrote.
pub const MAX_TERMS: usize = 6;

/// Where the rows of a group lie in a buffer: row i of group g starts at
/// `row · i + group · g` floats.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub row: usize,
    pub group: usize,
}

impl Layout {
    fn at(self, i: usize, g: usize) -> usize {
        self.row * i + self.group * g
    }
}

/// What an output row starts from before its terms are added.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// Nothing: the sum alone.
    Zero,
    /// This row (a bias), the same for every output row.
    Row(&'a [f32]),
    /// What the output row holds.
    Accumulate,
}

/// For every group g < `groups` and every output row j: dst row (j, g) = start +
/// Σ c · src row (i, g) over `matrix[j]`'s (i, c), `width` floats a row, on a kernel path
/// (tests run every path the CPU has).
#[allow(clippy::too_many_arguments)]
pub fn combine_on(
    isa: Isa,
    matrix: &[Terms],
    src: &[f32],
    from: Layout,
    dst: &mut [f32],
    to: Layout,
    groups: usize,
    width: usize,
    start: Start,
) {
    if groups == 0 || matrix.is_empty() || width == 0 {
        return;
    }
    assert!(isa <= isa::detect(), "{isa} asked for on a CPU without it");
    let sources = matrix
        .iter()
        .flatten()
        .map(|t| t.0)
        .max()
        .map_or(0, |i| i + 1);
    let last = groups - 1;
    assert!(
        sources == 0 || from.at(sources - 1, last) + width <= src.len(),
        "source rows out of bounds"
    );
    assert!(
        to.at(matrix.len() - 1, last) + width <= dst.len(),
        "output rows out of bounds"
    );
    if let Start::Row(row) = start {
        assert!(row.len() >= width, "start row shorter than the rows");
    }
    // SAFETY: every row read or written lies inside its slice (asserted above: the
    // layouts grow with i and g, so the last row of the last group is the farthest);
    // `dst` is borrowed mutably and `src` shared, so they do not overlap.
    #[cfg(target_arch = "x86_64")]
    match isa {
        Isa::Avx512 => {
            return unsafe {
                x86::combine_avx512(
                    matrix,
                    src.as_ptr(),
                    from,
                    dst.as_mut_ptr(),
                    to,
                    groups,
                    width,
                    start,
                )
            }
        }
        Isa::Avx2 => {
            return unsafe {
                x86::combine_avx2(
                    matrix,
                    src.as_ptr(),
                    from,
                    dst.as_mut_ptr(),
                    to,
                    groups,
                    width,
                    start,
                )
            }
        }
        Isa::Portable => {}
    }
    for g in 0..groups {
        for (j, terms) in matrix.iter().enumerate() {
            let out = to.at(j, g);
            for col in 0..width {
                let mut acc = match start {
                    Start::Zero => 0.0,
                    Start::Row(row) => row[col],
                    Start::Accumulate => dst[out + col],
                };
                for &(i, c) in terms {
                    acc += c * src[from.at(i, g) + col];
                }
                dst[out + col] = acc;
            }
        }
    }
}

/// `combine_on` on the path this CPU runs.
#[allow(clippy::too_many_arguments)]
pub fn combine(
    matrix: &[Terms],
    src: &[f32],
    from: Layout,
    dst: &mut [f32],
    to: Layout,
    groups: usize,
    width: usize,
    start: Start,
) {
    combine_on(
        isa::active(),
        matrix,
        src,
        from,
        dst,
        to,
        groups,
        width,
        start,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn every_path_sums_each_rows_terms_at_every_width() {
        // Rows of 0 to 8 terms (longer than MAX_TERMS too), widths around both vector
        // widths, groups interleaved (row-major) and apart (group-major), every start.
        let matrix: Vec<Terms> = (0..5)
            .map(|j| {
                (0..[2, 0, 8, 1, 5][j])
                    .map(|t| ((t * 3 + j) % 8, 0.5 + t as f32 - j as f32))
                    .collect()
            })
            .collect();
        for width in [1, 7, 8, 9, 16, 17, 33, 64] {
            let groups = 3;
            for (from, to) in [
                (
                    Layout {
                        row: width,
                        group: 8 * width,
                    },
                    Layout {
                        row: groups * width,
                        group: width,
                    },
                ),
                (
                    Layout {
                        row: groups * width + 1,
                        group: width,
                    },
                    Layout {
                        row: width,
                        group: 5 * width,
                    },
                ),
            ] {
                let src = values(from.at(7, groups - 1) + width, 1);
                let bias = values(width, 2);
                let before = values(to.at(4, groups - 1) + width, 3);
                for start in [Start::Zero, Start::Row(&bias), Start::Accumulate] {
                    let mut want = before.clone();
                    combine_on(
                        Isa::Portable,
                        &matrix,
                        &src,
                        from,
                        &mut want,
                        to,
                        groups,
                        width,
                        start,
                    );
                    for g in 0..groups {
                        for (j, terms) in matrix.iter().enumerate() {
                            for col in 0..width {
                                let base = match start {
                                    Start::Zero => 0.0,
                                    Start::Row(r) => r[col],
                                    Start::Accumulate => before[to.at(j, g) + col],
                                };
                                let sum: f32 = terms
                                    .iter()
                                    .map(|&(i, c)| c * src[from.at(i, g) + col])
                                    .sum();
                                let got = want[to.at(j, g) + col];
                                assert!(
                                    (got - base - sum).abs() < 1e-5,
                                    "portable ({j},{g},{col})"
                                );
                            }
                        }
                    }
                    for isa in Isa::available() {
                        let mut got = before.clone();
                        combine_on(isa, &matrix, &src, from, &mut got, to, groups, width, start);
                        for (a, b) in got.iter().zip(&want) {
                            assert!((a - b).abs() < 1e-5, "{isa}, width {width}: {a} vs {b}");
                        }
                    }
                }
            }
        }
    }
}
