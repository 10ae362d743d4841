//! Rows made as fixed linear combinations of other rows, group after group: Winograd's
//! input and output transforms (`encodec::conv_winograd`), where each of a group's n
//! transformed rows is a sum of 1 to 7 of its n frames times small constants.
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

/// Most terms one pass sums in registers (a coefficient each, beside the sum and a
/// load): every row of F(m, 2) and F(m, 3) up to m = 6 fits; a longer row goes in
/// several passes, each adding to what the one before wrote.
pub const MAX_TERMS: usize = 8;

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

/// One transform over a run of groups: for every group g < `groups` and every output row
/// j, output row (j, g) = start + Σ c · source row (i, g) over `matrix[j]`'s (i, c), rows
/// of `width` floats.
#[derive(Clone, Copy)]
pub struct Combination<'a> {
    pub matrix: &'a [Terms],
    /// Where the source rows lie.
    pub from: Layout,
    /// Where the output rows lie.
    pub to: Layout,
    pub groups: usize,
    pub width: usize,
    pub start: Start<'a>,
    /// The output rows go to memory and nobody reads them soon (a layer's output larger
    /// than the caches): whole vectors at aligned addresses are stored past the caches,
    /// which saves reading each line in before it is written over. Fenced before the
    /// call returns.
    pub stream: bool,
}

impl Combination<'_> {
    /// `src` to `dst` on a kernel path (tests run every path the CPU has).
    pub fn run_on(&self, isa: Isa, src: &[f32], dst: &mut [f32]) {
        let Combination {
            matrix,
            from,
            to,
            groups,
            width,
            start,
            ..
        } = *self;
        if groups == 0 || matrix.is_empty() || width == 0 {
            return;
        }
        assert!(isa <= isa::detect(), "{isa} asked for on a CPU without it");
        let sources = self.sources();
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
        let (src, dst) = (src.as_ptr(), dst.as_mut_ptr());
        // SAFETY: every row read or written lies inside its slice (asserted above: the
        // layouts grow with i and g, so the last row of the last group is the farthest);
        // `dst` is borrowed mutably and `src` shared, so they do not overlap.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            match isa {
                Isa::Avx512 => return x86::combine_avx512(self, src, dst),
                Isa::Avx2 => return x86::combine_avx2(self, src, dst),
                Isa::Portable => {}
            }
            self.portable(src, dst)
        }
    }

    /// Source rows a group has: one past the highest any term reads.
    fn sources(&self) -> usize {
        self.matrix
            .iter()
            .flatten()
            .map(|t| t.0 + 1)
            .max()
            .unwrap_or(0)
    }

    /// `src` to `dst` on the path this CPU runs.
    pub fn run(&self, src: &[f32], dst: &mut [f32]) {
        self.run_on(isa::active(), src, dst)
    }

    /// # Safety
    /// As `x86::combine_avx2`, without its CPU features.
    unsafe fn portable(&self, src: *const f32, dst: *mut f32) {
        let (from, to) = (self.from, self.to);
        for g in 0..self.groups {
            for (j, terms) in self.matrix.iter().enumerate() {
                let out = dst.add(to.at(j, g));
                for col in 0..self.width {
                    let mut acc = match self.start {
                        Start::Zero => 0.0,
                        Start::Row(row) => row[col],
                        Start::Accumulate => *out.add(col),
                    };
                    for &(i, c) in terms {
                        acc += c * *src.add(from.at(i, g) + col);
                    }
                    *out.add(col) = acc;
                }
            }
        }
    }
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
        // Rows of 0 to 10 terms (longer than MAX_TERMS too), widths around both vector
        // widths, groups interleaved (row-major) and apart (group-major), every start,
        // stored and streamed.
        let matrix: Vec<Terms> = (0..5)
            .map(|j| {
                (0..[2, 0, 10, 1, 7][j])
                    .map(|t| ((t * 3 + j) % 8, 0.5 + t as f32 - j as f32))
                    .collect()
            })
            .collect();
        // The widest take enough groups that the vector paths go a block of groups at
        // a time (`x86::L1_SOURCE_BYTES`), the last block partial.
        let cases = [1, 7, 8, 9, 16, 17, 33, 64].map(|w| (w, if w >= 33 { 40 } else { 3 }));
        for (width, groups) in cases {
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
                let starts = [Start::Zero, Start::Row(&bias), Start::Accumulate];
                for (start, stream) in starts.into_iter().flat_map(|s| [(s, false), (s, true)]) {
                    let c = Combination {
                        matrix: &matrix,
                        from,
                        to,
                        groups,
                        width,
                        start,
                        stream,
                    };
                    let mut want = before.clone();
                    c.run_on(Isa::Portable, &src, &mut want);
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
                        // The output starts on a whole AVX-512 vector, so rows of a whole
                        // number of vectors are streamed when asked.
                        let mut buffer = vec![0f32; before.len() + 16];
                        let at = buffer.as_ptr().align_offset(64);
                        let got = &mut buffer[at..at + before.len()];
                        got.copy_from_slice(&before);
                        c.run_on(isa, &src, got);
                        for (a, b) in got.iter().zip(&want) {
                            assert!((a - b).abs() < 1e-5, "{isa}, width {width}: {a} vs {b}");
                        }
                    }
                }
            }
        }
    }
}
