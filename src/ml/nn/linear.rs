//! A linear layer y = x · Wᵀ + b. On the CPU an f32 weight is packed into panels for
//! `packed_gemm` (fast for many rows, and as fast as streaming for one or two), other
//! precisions are held row-major and multiplied by `host_matmul` (bound by memory when
//! decoding); on other devices it is a candle tensor (or a quantized candle matrix).

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{CpuStorage, DType, Device, Module, Storage, Tensor};
use candle_nn::VarBuilder;

use crate::ml::kernels::host_matmul::{matmul_t, HostWeight};
use crate::ml::kernels::packed_gemm::PackedF32;
use crate::ml::kernels::q8::Q8Matrix;
use crate::ml::nn::device::Precision;

enum Weight {
    Packed(PackedF32),
    Host(HostWeight),
    /// 8-bit weights times 8-bit activations.
    Q8(Q8Matrix),
    /// (out, in) on a device, in the activations' dtype.
    Device(Tensor),
    Quantized(QMatMul),
}

pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
    in_dim: usize,
    out_dim: usize,
    device: Device,
}

impl Linear {
    /// Full precision, in `vb`'s dtype.
    pub fn load(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> candle_core::Result<Self> {
        let precision = Precision::of_dtype(vb.dtype());
        Self::load_as(vb, in_dim, out_dim, bias, precision)
    }

    /// Load with the weight stored in `precision`. Q8_0 falls back to f32 when `in_dim`
    /// is not a whole number of blocks.
    pub fn load_as(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        Self::load_parts(&[vb], in_dim, out_dim, bias, precision)
    }

    /// Several bias-free projections of the same input stacked into one (Σ out, in)
    /// matrix, e.g. attention's q, k and v: one product (and one pass over the input)
    /// instead of three. Each part keeps its checkpoint name.
    pub fn stacked(
        parts: &[VarBuilder],
        in_dim: usize,
        out_dim: usize,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        Self::load_parts(parts, in_dim, out_dim, false, precision)
    }

    /// Several (dim → dim) projections with biases (attention's q, k and v) as one
    /// (parts·dim, dim) matrix stored in `precision` (see `Precision::for_gemm`).
    pub fn fused(
        parts: &[VarBuilder],
        dim: usize,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        Self::load_parts(parts, dim, dim, true, precision)
    }

    /// `parts` (out, in) weights, and biases when `bias`, stacked along `out` and stored in
    /// `precision`.
    fn load_parts(
        parts: &[VarBuilder],
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let Some(first) = parts.first() else {
            candle_core::bail!("a projection needs at least one weight");
        };
        let get = |vb: &VarBuilder, shape: &[usize], name: &str, dtype: DType| {
            vb.get_with_hints_dtype(shape, name, Default::default(), dtype)
        };
        let ws = parts
            .iter()
            .map(|vb| get(vb, &[out_dim, in_dim], "weight", DType::F32))
            .collect::<candle_core::Result<Vec<_>>>()?;
        // On the CPU activations are f32 whatever the weights are.
        let bias_dtype = match first.device().is_cpu() {
            true => DType::F32,
            false => precision.dtype(),
        };
        let bias = match bias {
            true => {
                let bs = parts
                    .iter()
                    .map(|vb| get(vb, &[out_dim], "bias", bias_dtype))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Some(Tensor::cat(&bs, 0)?)
            }
            false => None,
        };
        Self::with_precision(&Tensor::cat(&ws, 0)?, bias, precision)
    }

    /// An (out, in) f32 weight stored in `precision` on its device.
    fn with_precision(
        w: &Tensor,
        bias: Option<Tensor>,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let (out_dim, in_dim) = w.dims2()?;
        let device = w.device().clone();
        let weight = if device.is_cpu() {
            let v: Vec<f32> = w.flatten_all()?.to_vec1()?;
            let packed = |v: &[f32]| Weight::Packed(PackedF32::pack(v, out_dim, in_dim));
            match precision {
                Precision::F32 => packed(&v),
                Precision::F16 => Weight::Host(HostWeight::F16(
                    v.iter().map(|x| half::f16::from_f32(*x)).collect(),
                )),
                Precision::BF16 => Weight::Host(HostWeight::BF16(
                    v.iter().map(|x| half::bf16::from_f32(*x)).collect(),
                )),
                Precision::Q8_0 => match Q8Matrix::quantize(&v, out_dim, in_dim) {
                    Some(q) => Weight::Q8(q),
                    None => packed(&v),
                },
            }
        } else if precision == Precision::Q8_0
            && in_dim.is_multiple_of(GgmlDType::Q8_0.block_size())
        {
            Weight::Quantized(QMatMul::from_qtensor(QTensor::quantize(
                w,
                GgmlDType::Q8_0,
            )?)?)
        } else {
            Weight::Device(w.to_dtype(precision.dtype())?)
        };
        Ok(Self {
            weight,
            bias,
            in_dim,
            out_dim,
            device,
        })
    }
}

impl Linear {
    /// An f32 linear map without bias from a weight already in memory, (out, in).
    pub fn from_weight(w: &Tensor) -> candle_core::Result<Self> {
        let (out_dim, in_dim) = w.dims2()?;
        let device = w.device().clone();
        let weight = if device.is_cpu() {
            let v: Vec<f32> = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            Weight::Packed(PackedF32::pack(&v, out_dim, in_dim))
        } else {
            Weight::Device(w.clone())
        };
        Ok(Self {
            weight,
            bias: None,
            in_dim,
            out_dim,
            device,
        })
    }

    /// Bytes of weight one product reads (what bounds a decoding step).
    pub fn weight_bytes(&self) -> usize {
        match &self.weight {
            Weight::Packed(w) => w.bytes(),
            Weight::Host(w) => w.bytes(),
            Weight::Q8(w) => w.bytes(),
            Weight::Device(w) => w.elem_count() * w.dtype().size_in_bytes(),
            // GGML's Q8_0: 34 bytes per 32 weights.
            Weight::Quantized(_) => self.in_dim * self.out_dim * 34 / 32,
        }
    }

    /// Replace the bias (for heads whose bias is stored apart from the weight).
    pub fn set_bias(&mut self, bias: Tensor) {
        self.bias = Some(bias);
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        let rows = x.elem_count() / self.in_dim;
        let x2 = x.reshape((rows, self.in_dim))?;
        // CPU kernels take and give row-major f32 values.
        let on_host = |f: &dyn Fn(&[f32]) -> Vec<f32>| -> candle_core::Result<Tensor> {
            let y = with_f32(&x2, f)?;
            Tensor::from_vec(y, (rows, self.out_dim), &self.device)?.to_dtype(x.dtype())
        };
        let y = match &self.weight {
            Weight::Packed(w) => on_host(&|xs| w.matmul_t(xs, rows))?,
            Weight::Host(w) => on_host(&|xs| matmul_t(w, xs, rows, self.in_dim, self.out_dim))?,
            Weight::Q8(w) => on_host(&|xs| w.matmul_t(xs, rows))?,
            Weight::Device(w) => x2.matmul(&w.t()?)?,
            Weight::Quantized(q) => q.forward(&x2)?,
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        let last = out_dims.len() - 1;
        out_dims[last] = self.out_dim;
        y.reshape(out_dims)
    }
}

/// Run `f` on a CPU tensor's values in row-major order: borrowed in place when the tensor
/// is contiguous f32 (no copy of a 577 × 4096 activation per layer), else copied.
pub fn with_f32<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    {
        let (storage, layout) = x.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&v[start..end]));
        }
    }
    let v: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    Ok(f(&v))
}
