//! What the two packed GEMMs (`packed_gemm` in f32, `packed_i16` in 16-bit integers)
//! share: the bounds checks their unsafe tiles rely on, the output pointer their tasks
//! share, and a tile's row count turned into its const-generic kernel.

use super::isa::Isa;

/// Whether a product of `rows` rows has anything to compute; panics if rows of x (`ldx`
/// apart, k long) or of y (`ldy` apart, n long) would run past their slices.
pub(super) fn in_bounds(
    (k, n): (usize, usize),
    x: &[f32],
    ldx: usize,
    rows: usize,
    y: &[f32],
    ldy: usize,
) -> bool {
    if rows == 0 || n == 0 {
        return false;
    }
    assert!(x.len() >= (rows - 1) * ldx + k, "input out of bounds");
    assert!(
        y.len() >= (rows - 1) * ldy + n && ldy >= n,
        "output out of bounds"
    );
    true
}

/// The output pointer, shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
pub(super) struct Shared(*mut f32);
// SAFETY: only used for disjoint writes inside one product call.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}
impl Shared {
    pub(super) fn new(y: &mut [f32]) -> Self {
        Self(y.as_mut_ptr())
    }

    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

/// A micro-kernel call for up to six rows, its row count a const generic.
pub(super) trait RowTile {
    fn run<const M: usize>(&self, isa: Isa);

    /// `run` for `m` rows (1 to 6).
    fn run_rows(&self, m: usize, isa: Isa) {
        match m {
            6 => self.run::<6>(isa),
            5 => self.run::<5>(isa),
            4 => self.run::<4>(isa),
            3 => self.run::<3>(isa),
            2 => self.run::<2>(isa),
            _ => self.run::<1>(isa),
        }
    }
}
