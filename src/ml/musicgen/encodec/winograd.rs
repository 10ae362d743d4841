//! Winograd's minimal filtering F(m, r) for a 1-D correlation of r taps,
//!   y_i = Σ_k g_k · x_{i+k}    (outputs i < m, taps k < r, inputs x_0 … x_{n−1}, n = m + r − 1),
//! built by Toom-Cook from n − 1 finite points p_j and the point at infinity:
//!   y = Aᵀ [(G g) ⊙ (Bᵀ x)],
//! n products instead of m · r: the taps' polynomial times the inputs' one, evaluated
//! at each point, multiplied there and interpolated back (and read transposed, which
//! turns a convolution into a correlation).
//!
//! With M(x) = Π_j (x − p_j) and M_j(x) = M(x) / (x − p_j):
//! - row j of Bᵀ holds the coefficients of M_j (the infinite point's row, those of M);
//! - row j of G is (1, p_j, p_j², …) / M_j(p_j), so the interpolation's division is
//!   paid once, on the weights, at load (the infinite point's row: the last tap alone);
//! - column j of Aᵀ is (1, p_j, p_j², …)ᵀ (the infinite point's column: the last output
//!   alone).
//!
//! The matrices are built in f64 and the inputs' and outputs' coefficients are small
//! integers or halves, exact in f32; only the weights' transform rounds.

/// The finite points, in the order they are taken: small and of both signs first,
/// because the coefficients (and the f32 rounding of the products) grow with them.
const POINTS: [f64; 7] = [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5];

/// The three matrices of F(m, r), row-major.
#[derive(Debug, Clone)]
pub struct Transform {
    pub m: usize,
    pub r: usize,
    /// Bᵀ, n × n: the transformed inputs are its rows dotted with the n inputs.
    pub input: Vec<f64>,
    /// G, n × r: the transformed weights are its rows dotted with the r taps.
    pub weight: Vec<f64>,
    /// Aᵀ, m × n: the outputs are its rows dotted with the n products.
    pub output: Vec<f64>,
}

impl Transform {
    /// F(m, r) for 1 ≤ m, 2 ≤ r and m + r ≤ 9 (seven finite points at most).
    pub fn new(m: usize, r: usize) -> Self {
        let n = m + r - 1;
        assert!(m >= 1 && r >= 2, "F({m}, {r}) is not a Winograd filter");
        assert!(
            n <= POINTS.len() + 1,
            "F({m}, {r}) needs more than 7 points"
        );
        let points = &POINTS[..n - 1];
        let mut input = vec![0.0; n * n];
        let mut weight = vec![0.0; n * r];
        let mut output = vec![0.0; m * n];
        for (j, &p) in points.iter().enumerate() {
            let others: Vec<f64> = (0..points.len())
                .filter(|&l| l != j)
                .map(|l| points[l])
                .collect();
            let mj = monic(&others);
            input[j * n..j * n + mj.len()].copy_from_slice(&mj);
            let at_p: f64 = others.iter().map(|q| p - q).product();
            for k in 0..r {
                weight[j * r + k] = p.powi(k as i32) / at_p;
            }
            for i in 0..m {
                output[i * n + j] = p.powi(i as i32);
            }
        }
        let inf = n - 1;
        input[inf * n..].copy_from_slice(&monic(points));
        weight[inf * r + r - 1] = 1.0;
        output[(m - 1) * n + inf] = 1.0;
        Self {
            m,
            r,
            input,
            weight,
            output,
        }
    }

    /// Products per group of m outputs.
    pub fn points(&self) -> usize {
        self.m + self.r - 1
    }
}

/// The coefficients of Π (x − root), lowest degree first.
fn monic(roots: &[f64]) -> Vec<f64> {
    let mut c = vec![1.0];
    for root in roots {
        let mut next = vec![0.0; c.len() + 1];
        for (i, v) in c.iter().enumerate() {
            next[i + 1] += v;
            next[i] -= root * v;
        }
        c = next;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Aᵀ [(G g) ⊙ (Bᵀ x)] for one group, in f64.
    fn filtered(t: &Transform, g: &[f64], x: &[f64]) -> Vec<f64> {
        let n = t.points();
        let product = |j: usize| {
            let gj: f64 = (0..t.r).map(|k| t.weight[j * t.r + k] * g[k]).sum();
            let xj: f64 = (0..n).map(|i| t.input[j * n + i] * x[i]).sum();
            gj * xj
        };
        let products: Vec<f64> = (0..n).map(product).collect();
        (0..t.m)
            .map(|i| (0..n).map(|j| t.output[i * n + j] * products[j]).sum())
            .collect()
    }

    #[test]
    fn every_filter_is_the_correlation() {
        for (m, r) in [
            (1, 2),
            (2, 2),
            (3, 2),
            (4, 2),
            (6, 2),
            (2, 3),
            (4, 3),
            (6, 3),
        ] {
            let t = Transform::new(m, r);
            let n = t.points();
            let g: Vec<f64> = (0..r).map(|k| 0.3 + k as f64 * 0.7).collect();
            let x: Vec<f64> = (0..n).map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0).collect();
            let want: Vec<f64> = (0..m)
                .map(|i| (0..r).map(|k| g[k] * x[i + k]).sum())
                .collect();
            let got = filtered(&t, &g, &x);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-9, "F({m}, {r}): {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn two_outputs_of_three_taps_are_four_products() {
        // The textbook F(2, 3) up to the sign shared by a row of G and of Bᵀ.
        let t = Transform::new(2, 3);
        assert_eq!(t.points(), 4);
        assert_eq!(t.input[..4], [-1.0, 0.0, 1.0, 0.0]);
        assert_eq!(t.weight[..3], [-1.0, 0.0, 0.0]);
        assert_eq!(t.output, [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, -1.0, 1.0]);
    }
}
