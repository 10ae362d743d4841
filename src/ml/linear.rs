//! A linear layer that always multiplies as one 2-D matrix product: (…, in) is flattened
//! to (n, in) first, so the CPU backend runs one GEMM instead of one per batch entry.
//! Optionally the weight is quantized (Q8_0): on a CPU, decoding one step is bound by
//! reading the weights from memory, and Q8_0 reads ~3.8× fewer bytes than f32.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;

enum Weight {
    /// The checkpoint's (out, in) weight stored transposed, (in, out) and contiguous, so
    /// every call is a plain row-major GEMM.
    Dense(Tensor),
    /// Quantized (out, in); multiplies f32 activations.
    Quantized(QMatMul, usize),
}

pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn load(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> candle_core::Result<Self> {
        Self::load_as(vb, in_dim, out_dim, bias, None)
    }

    /// Load, quantizing the weight to `quantize` when given (and the width allows it).
    pub fn load_as(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        quantize: Option<GgmlDType>,
    ) -> candle_core::Result<Self> {
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        let weight = match quantize {
            Some(q) if in_dim % q.block_size() == 0 => {
                let w = vb.get_with_hints_dtype(
                    (out_dim, in_dim),
                    "weight",
                    Default::default(),
                    DType::F32,
                )?;
                let qt = QTensor::quantize(&w, q)?;
                Weight::Quantized(QMatMul::from_qtensor(qt)?, out_dim)
            }
            _ => Weight::Dense(vb.get((out_dim, in_dim), "weight")?.t()?.contiguous()?),
        };
        Ok(Self { weight, bias })
    }

    pub fn new(weight: Tensor, bias: Option<Tensor>) -> candle_core::Result<Self> {
        Ok(Self {
            weight: Weight::Dense(weight.t()?.contiguous()?),
            bias,
        })
    }

    fn out_dim(&self) -> candle_core::Result<usize> {
        match &self.weight {
            Weight::Dense(w) => w.dim(1),
            Weight::Quantized(_, out) => Ok(*out),
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim;
        let x2 = x.reshape((rows, in_dim))?;
        let y = match &self.weight {
            Weight::Dense(w) => x2.matmul(w)?,
            Weight::Quantized(q, _) => q.forward(&x2)?,
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        let last = out_dims.len() - 1;
        out_dims[last] = self.out_dim()?;
        y.reshape(out_dims)
    }
}
