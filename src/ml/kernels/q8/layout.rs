//! How 8-bit weights lie in memory for the kernels: outputs in groups of 16 (one
//! AVX-512 vector of i32 sums, or two AVX2 ones), and within a group and a block of 32
//! inputs, input pair by input pair: the 16 outputs' two weights for inputs 2p and 2p+1
//! side by side (32 bytes). So one `vpdpwssd` (or `vpmaddwd`) takes a pair of inputs,
//! broadcast, into all 16 outputs' sums, and a block's scales are one vector of 16.
//! A product reads a group's blocks in order: one sequential stream per thread.

use super::Q8_BLOCK;

/// Outputs side by side.
pub const GROUP: usize = 16;

/// Bytes of one group's block: 16 outputs × 32 inputs.
pub const GROUP_BYTES: usize = GROUP * Q8_BLOCK;

/// Where weight `i` (0..32) of output `lane` (0..16) lies in its group's block.
pub fn offset_in_block(lane: usize, i: usize) -> usize {
    (i / 2) * 2 * GROUP + lane * 2 + i % 2
}

/// An (n, k) matrix of 8-bit weights with one scale per output and block, interleaved;
/// outputs past n (padding up to a whole group) are zero with scale zero.
pub struct Interleaved {
    q: Vec<i8>,
    /// (group, block, lane).
    scales: Vec<f32>,
    blocks: usize,
}

impl Interleaved {
    /// From row-major weights `q` (n, k) and their block scales (n, k / 32).
    pub fn from_rows(q: &[i8], scales: &[f32], n: usize, k: usize) -> Self {
        let blocks = k / Q8_BLOCK;
        let groups = n.div_ceil(GROUP);
        let mut out = Self {
            q: vec![0; groups * blocks * GROUP_BYTES],
            scales: vec![0.0; groups * blocks * GROUP],
            blocks,
        };
        for j in 0..n {
            let (g, lane) = (j / GROUP, j % GROUP);
            for b in 0..blocks {
                let at = (g * blocks + b) * GROUP_BYTES;
                for i in 0..Q8_BLOCK {
                    out.q[at + offset_in_block(lane, i)] = q[j * k + b * Q8_BLOCK + i];
                }
                out.scales[(g * blocks + b) * GROUP + lane] = scales[j * blocks + b];
            }
        }
        out
    }

    pub fn groups(&self) -> usize {
        self.scales.len() / (self.blocks * GROUP).max(1)
    }

    /// Group `g`'s weights and scales, block after block.
    pub fn group(&self, g: usize) -> (&[i8], &[f32]) {
        let (qs, ss) = (self.blocks * GROUP_BYTES, self.blocks * GROUP);
        (
            &self.q[g * qs..(g + 1) * qs],
            &self.scales[g * ss..(g + 1) * ss],
        )
    }

    /// Weight (j, i) as a float.
    #[cfg(test)]
    pub fn value(&self, j: usize, i: usize) -> f32 {
        let (g, lane, b) = (j / GROUP, j % GROUP, i / Q8_BLOCK);
        let at = (g * self.blocks + b) * GROUP_BYTES + offset_in_block(lane, i % Q8_BLOCK);
        self.q[at] as f32 * self.scales[(g * self.blocks + b) * GROUP + lane]
    }

    /// Bytes a product reads (padding included).
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * self.scales.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_weight_has_one_place_and_reads_back() {
        let mut seen = [false; GROUP_BYTES];
        for lane in 0..GROUP {
            for i in 0..Q8_BLOCK {
                let at = offset_in_block(lane, i);
                assert!(!seen[at], "({lane}, {i}) overlaps");
                seen[at] = true;
            }
        }
        // 20 outputs (a group and a padded one), 2 blocks.
        let (n, k) = (20, 64);
        let q: Vec<i8> = (0..n * k).map(|v| (v % 251) as i8).collect();
        let scales: Vec<f32> = (0..n * 2).map(|v| 1.0 + v as f32).collect();
        let w = Interleaved::from_rows(&q, &scales, n, k);
        assert_eq!(w.groups(), 2);
        for j in 0..n {
            for i in 0..k {
                let want = q[j * k + i] as f32 * scales[j * 2 + i / Q8_BLOCK];
                assert_eq!(w.value(j, i), want, "({j}, {i})");
            }
        }
        let (pad_q, pad_s) = w.group(1);
        assert!(pad_s[4..GROUP].iter().all(|s| *s == 0.0));
        assert_eq!(pad_q.len(), 2 * GROUP_BYTES);
    }
}
