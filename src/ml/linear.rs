//! A linear layer that always multiplies as one 2-D matrix product: (…, in) is flattened
//! to (n, in) first, so the CPU backend runs one GEMM instead of one per batch entry.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

pub struct Linear {
    /// The checkpoint's (out, in) weight stored transposed, (in, out) and contiguous, so
    /// every call is a plain row-major GEMM.
    weight_t: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn load(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> candle_core::Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        Self::new(weight, bias)
    }

    pub fn new(weight: Tensor, bias: Option<Tensor>) -> candle_core::Result<Self> {
        let weight_t = weight.t()?.contiguous()?;
        Ok(Self { weight_t, bias })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim;
        let y = x.reshape((rows, in_dim))?.matmul(&self.weight_t)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        let last = out_dims.len() - 1;
        out_dims[last] = self.weight_t.dim(1)?;
        y.reshape(out_dims)
    }
}
