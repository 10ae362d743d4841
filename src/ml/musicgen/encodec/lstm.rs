//! `EncodecLSTM` on the CPU: the input products for every frame at once, then one
//! matrix-vector product per frame for the recurrence. Weights are read through candle
//! (names as in the checkpoint) and rearranged once at load time.

use candle_nn::VarBuilder;

use super::layers::host;
use super::signal::{sigmoid, tanh, Signal, Weight};
use crate::ml::kernels::host_matmul::{matmul_t, HostWeight};

/// `EncodecLSTM`: a stacked LSTM over time with a residual connection around it.
pub struct Lstm {
    layers: Vec<LstmLayer>,
    hidden: usize,
}

struct LstmLayer {
    /// W_ih transposed: (in, 4H), for one product over every frame at once.
    w_ih_t: Weight,
    /// W_hh as in the checkpoint, (4H, H): one matrix-vector product per frame.
    w_hh: HostWeight,
    /// b_ih + b_hh.
    bias: Vec<f32>,
}

impl Lstm {
    pub fn load(vb: VarBuilder, dim: usize, num_layers: usize) -> candle_core::Result<Self> {
        let vb = vb.pp("lstm");
        let layers = (0..num_layers)
            .map(|l| {
                let w_ih = vb.get((4 * dim, dim), &format!("weight_ih_l{l}"))?;
                let w_hh = vb.get((4 * dim, dim), &format!("weight_hh_l{l}"))?;
                let bias = (vb.get(4 * dim, &format!("bias_ih_l{l}"))?
                    + vb.get(4 * dim, &format!("bias_hh_l{l}"))?)?;
                Ok(LstmLayer {
                    w_ih_t: Weight::new(&host(&w_ih.t()?.contiguous()?)?, dim, 4 * dim),
                    w_hh: HostWeight::F32(host(&w_hh)?),
                    bias: host(&bias)?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            layers,
            hidden: dim,
        })
    }

    pub fn forward(&self, x: &Signal) -> Signal {
        assert_eq!(x.channels, self.hidden, "LSTM input channels");
        let (t_len, h_dim) = (x.frames, self.hidden);
        let mut seq = x.clone();
        for layer in &self.layers {
            // The input projection for every frame at once.
            let mut xi = Signal::filled(t_len, &layer.bias);
            layer
                .w_ih_t
                .acc(&mut xi.data, 4 * h_dim, &seq.data, h_dim, t_len);
            let mut h = vec![0f32; h_dim];
            let mut c = vec![0f32; h_dim];
            let mut out = Vec::with_capacity(t_len * h_dim);
            for t in 0..t_len {
                // Gates: the recurrent product, plus this frame's input projection, in place.
                let mut g = matmul_t(&layer.w_hh, &h, 1, h_dim, 4 * h_dim);
                for (v, x) in g.iter_mut().zip(xi.row(t)) {
                    *v += x;
                }
                // torch's gate order: input, forget, cell, output.
                for j in 0..h_dim {
                    let i = sigmoid(g[j]);
                    let f = sigmoid(g[h_dim + j]);
                    let cell = tanh(g[2 * h_dim + j]);
                    let o = sigmoid(g[3 * h_dim + j]);
                    c[j] = f * c[j] + i * cell;
                    h[j] = o * tanh(c[j]);
                }
                out.extend_from_slice(&h);
            }
            seq = Signal::new(t_len, h_dim, out);
        }
        for (s, v) in seq.data.iter_mut().zip(&x.data) {
            *s += v;
        }
        seq
    }
}
