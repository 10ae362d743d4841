//! The row combinations a vector of columns at a time, written once over the shared
//! vector ops for AVX2 and AVX-512. An output row at a time over a block of groups (as
//! many as keep their sources in L1), so its coefficients are broadcast into registers
//! once a block; `T`, the row's term count, is a constant in each body, so the terms'
//! loop unrolls and the coefficients stay there.

use super::{Combination, Layout, Start, MAX_TERMS};
use crate::ml::kernels::lanes::{Avx2, Avx512, Lanes};

/// Bytes of source rows a block of groups reads: half a 32 KB L1. When each output row
/// went over every group of a chunk, it read the chunk's sources from L2 again (EnCodec's
/// last residual block's input transform: 111 KB, once for each of its 8 rows). In
/// blocks, the transforms of a 15 s decode took 44 ms of thread time instead of 50
/// (AVX2 path).
const L1_SOURCE_BYTES: usize = 16 << 10;

/// `Combination::run_on` with AVX2.
///
/// # Safety
/// The CPU has AVX2 and FMA; every source row (`from`, `width` floats) of every group is
/// readable at `src`, every output row (`to`) writable at `dst`, and the two do not
/// overlap.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn combine_avx2(c: &Combination, src: *const f32, dst: *mut f32) {
    combine_with::<Avx2>(c, src, dst)
}

/// The same with AVX-512.
///
/// # Safety
/// The CPU has AVX-512 F; pointers as above.
#[target_feature(enable = "avx2,fma,avx512f")]
pub unsafe fn combine_avx512(c: &Combination, src: *const f32, dst: *mut f32) {
    combine_with::<Avx512>(c, src, dst)
}

#[inline(always)]
unsafe fn combine_with<L: Lanes>(c: &Combination, src: *const f32, dst: *mut f32) {
    // Streamed only if every row starts on a whole vector: then so does each of its
    // vectors (rows and groups lie whole multiples of the vector apart).
    let aligned = (dst as usize).is_multiple_of(L::N * std::mem::size_of::<f32>())
        && c.to.row.is_multiple_of(L::N)
        && c.to.group.is_multiple_of(L::N);
    let stream = c.stream && aligned;
    // A block of groups at a time, every output row over the block before the next one,
    // so the block's source rows stay in L1 while each output row reads them.
    let group_bytes = c.sources() * c.width * std::mem::size_of::<f32>();
    let block = (L1_SOURCE_BYTES / group_bytes.max(1)).max(1);
    for first in (0..c.groups).step_by(block) {
        let groups = block.min(c.groups - first);
        let (src, dst) = (src.add(c.from.group * first), dst.add(c.to.group * first));
        combine_block::<L>(c, src, dst, groups, stream);
    }
    if stream {
        // Streamed stores are weakly ordered: done before the caller hands the rows on.
        std::arch::x86_64::_mm_sfence();
    }
}

/// Every output row of `groups` groups from `src` (the block's first group's sources)
/// into `dst` (its first group's output).
#[inline(always)]
unsafe fn combine_block<L: Lanes>(
    c: &Combination,
    src: *const f32,
    dst: *mut f32,
    groups: usize,
    stream: bool,
) {
    for (j, terms) in c.matrix.iter().enumerate() {
        let mut rows = Rows {
            src,
            from: c.from,
            dst: dst.add(c.to.row * j),
            group: c.to.group,
            groups,
            width: c.width,
            start: c.start,
            stream,
        };
        if terms.is_empty() {
            row::<L, 0>(&[], rows);
        }
        let passes = terms.len().div_ceil(MAX_TERMS);
        for (pass, part) in terms.chunks(MAX_TERMS).enumerate() {
            // A row of more than MAX_TERMS streams only its last pass: the ones before
            // are read back.
            rows.stream = stream && pass + 1 == passes;
            match part.len() {
                1 => row::<L, 1>(part, rows),
                2 => row::<L, 2>(part, rows),
                3 => row::<L, 3>(part, rows),
                4 => row::<L, 4>(part, rows),
                5 => row::<L, 5>(part, rows),
                6 => row::<L, 6>(part, rows),
                7 => row::<L, 7>(part, rows),
                _ => row::<L, MAX_TERMS>(part, rows),
            }
            // A row of more than MAX_TERMS: the next pass adds to this one's sums.
            rows.start = Start::Accumulate;
        }
    }
}

/// One output row of every group: the sources, and where the row lies in each group.
#[derive(Clone, Copy)]
struct Rows<'a> {
    src: *const f32,
    from: Layout,
    /// The row in group 0; group g's is `group` · g floats on.
    dst: *mut f32,
    group: usize,
    groups: usize,
    width: usize,
    start: Start<'a>,
    /// Whole vectors stored past the caches (`Combination::stream`; aligned).
    stream: bool,
}

/// `rows` from `terms` (exactly T of them).
#[inline(always)]
unsafe fn row<L: Lanes, const T: usize>(terms: &[(usize, f32)], rows: Rows) {
    let Rows {
        src,
        from,
        dst,
        group,
        groups,
        width,
        start,
        stream,
    } = rows;
    let mut coefficient = [L::zero(); T];
    let mut offset = [0usize; T];
    for t in 0..T {
        coefficient[t] = L::splat(terms[t].1);
        offset[t] = from.row * terms[t].0;
    }
    let whole = width - width % L::N;
    for g in 0..groups {
        let y = dst.add(group * g);
        let x = src.add(from.group * g);
        let base: Option<*const f32> = match start {
            Start::Zero => None,
            Start::Row(r) => Some(r.as_ptr()),
            Start::Accumulate => Some(y),
        };
        let mut col = 0;
        while col < whole {
            let mut acc = match base {
                Some(b) => L::load(b.add(col)),
                None => L::zero(),
            };
            for t in 0..T {
                acc = L::fma(coefficient[t], L::load(x.add(offset[t] + col)), acc);
            }
            if stream {
                L::stream(y.add(col), acc);
            } else {
                L::store(y.add(col), acc);
            }
            col += L::N;
        }
        for col in whole..width {
            let mut acc = match base {
                Some(b) => *b.add(col),
                None => 0.0,
            };
            for t in 0..T {
                acc += terms[t].1 * *x.add(offset[t] + col);
            }
            *y.add(col) = acc;
        }
    }
}
