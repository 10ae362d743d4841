//! The decoder as candle tensor ops on the model's device: what runs on a GPU, where our
//! CPU kernels cannot. Products go through candle's conv1d (im2col + cuBLAS),
//! conv_transpose1d (cuBLAS + col2im) and matmul. Signals are channels-first
//! (1, channels, frames), as candle's convolutions want them. It runs on the CPU too,
//! which is how the tests hold it to the host kernels.
//!
//! The LSTM is a loop of small ops per frame (a product and a few element-wise kernels):
//! its recurrence is sequential whatever the device.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::ops::sigmoid;
use candle_nn::VarBuilder;

use super::conv::{weight_norm_tensor, ConvShape};
use super::plan::Plan;
use super::resblock;
use super::signal::{PadMode, Padding};
use super::transposed::trims;
use super::EncodecConfig;

type Result<T> = candle_core::Result<T>;

pub struct TensorNet {
    first: Conv,
    lstm: Vec<LstmLayer>,
    stages: Vec<(ConvTranspose, Vec<ResBlock>)>,
    last: Conv,
    device: Device,
}

impl TensorNet {
    /// `layers` points at `decoder.layers`; the tensors stay on its device, in f32.
    pub fn load(layers: VarBuilder, cfg: &EncodecConfig, plan: &Plan) -> Result<Self> {
        let layers = layers.set_dtype(DType::F32);
        let first = Conv::load(layers.pp(0), plan.first)?;
        let lstm = (0..plan.lstm_layers)
            .map(|l| LstmLayer::load(&layers.pp(1).pp("lstm"), plan.top, l))
            .collect::<Result<_>>()?;
        let stages = plan.load_stages(
            &layers,
            |vb, s| {
                let vb = vb.pp("conv");
                Ok(ConvTranspose {
                    weight: weight_norm_tensor(&vb, (s.cin, s.cout, s.taps))?,
                    bias: column(vb.get(s.cout, "bias")?)?,
                    stride: s.stride,
                    trims: trims(cfg, s.taps, s.stride),
                })
            },
            |vb, dim, dilation| ResBlock::load(vb, cfg, dim, dilation),
        )?;
        let last = Conv::load(layers.pp(plan.last_index), plan.last)?;
        Ok(Self {
            first,
            lstm,
            stages,
            last,
            device: layers.device().clone(),
        })
    }

    /// Embeddings (frames × hidden, time-major, on the host) → samples, time-major.
    pub fn forward(&self, emb: &[f32], frames: usize) -> Result<Vec<f32>> {
        let hidden = emb.len() / frames.max(1);
        let x = Tensor::from_slice(emb, (frames, hidden), &self.device)?
            .t()?
            .contiguous()?
            .unsqueeze(0)?;
        let mut x = self.first.forward(&x, false)?;
        x = self.lstm(&x)?;
        for (up, blocks) in &self.stages {
            x = up.forward(&x)?;
            for block in blocks {
                x = block.forward(&x)?;
            }
        }
        let y = self.last.forward(&x, true)?;
        y.squeeze(0)?.t()?.flatten_all()?.to_vec1()
    }

    /// The stacked LSTM with its residual connection, over (1, H, T).
    fn lstm(&self, x: &Tensor) -> Result<Tensor> {
        let input = x.squeeze(0)?.t()?.contiguous()?;
        let mut seq = input.clone();
        for layer in &self.lstm {
            seq = layer.forward(&seq)?;
        }
        (seq + input)?.t()?.contiguous()?.unsqueeze(0)
    }
}

/// A (n,) bias as a (1, n, 1) column to broadcast over frames.
fn column(bias: Tensor) -> Result<Tensor> {
    bias.reshape((1, (), 1))
}

/// `x` (1, C, T) padded along time as `p` says, torch's `F.pad` (see `Padding`).
fn pad(x: &Tensor, p: &Padding) -> Result<Tensor> {
    if p.left == 0 && p.right == 0 {
        return Ok(x.clone());
    }
    match p.mode {
        PadMode::Zero => x.pad_with_zeros(D::Minus1, p.left, p.right),
        PadMode::Reflect => {
            // One gather from the signal with a zero frame appended (frame `len`), which
            // the too-short case reads.
            let ext = x.pad_with_zeros(D::Minus1, 0, 1)?.contiguous()?;
            let index: Vec<u32> = (0..p.padded_len())
                .map(|i| p.source(i).unwrap_or(p.len) as u32)
                .collect();
            let index = Tensor::from_vec(index, p.padded_len(), x.device())?;
            ext.index_select(&index, 2)
        }
    }
}

/// `EncodecConv1d`: weight-normed, padded as transformers pads.
struct Conv {
    weight: Tensor,
    bias: Tensor,
    shape: ConvShape,
}

impl Conv {
    fn load(vb: VarBuilder, shape: ConvShape) -> Result<Self> {
        let vb = vb.pp("conv");
        Ok(Self {
            weight: weight_norm_tensor(&vb, (shape.cout, shape.cin, shape.taps))?,
            bias: column(vb.get(shape.cout, "bias")?)?,
            shape,
        })
    }

    /// conv(ELU(x) if `elu`, else x): ELU(0) = 0, so it commutes with the padding.
    fn forward(&self, x: &Tensor, elu: bool) -> Result<Tensor> {
        let x = if elu { x.elu(1.0)? } else { x.clone() };
        let x = pad(&x, &self.shape.padding(x.dim(2)?))?;
        let (s, d) = (self.shape.stride, self.shape.dilation);
        x.conv1d(&self.weight, 0, s, d, 1)?
            .broadcast_add(&self.bias)
    }
}

/// `EncodecConvTranspose1d` after its ELU, trimmed to len × stride frames.
struct ConvTranspose {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    trims: (usize, usize),
}

impl ConvTranspose {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x
            .elu(1.0)?
            .conv_transpose1d(&self.weight, 0, 0, self.stride, 1, 1)?;
        let (left, right) = self.trims;
        let keep = y.dim(2)? - left - right;
        y.narrow(2, left, keep)?.broadcast_add(&self.bias)
    }
}

/// `EncodecResnetBlock`: ELU → conv1 → ELU → conv2, plus the shortcut of the raw input.
struct ResBlock {
    conv1: Conv,
    conv2: Conv,
    shortcut: Option<Conv>,
}

impl ResBlock {
    fn load(vb: VarBuilder, cfg: &EncodecConfig, dim: usize, dilation: usize) -> Result<Self> {
        let [one, two, short] = resblock::shapes(cfg, dim, dilation);
        let block = vb.pp("block");
        Ok(Self {
            conv1: Conv::load(block.pp(1), one)?,
            conv2: Conv::load(block.pp(3), two)?,
            shortcut: match cfg.use_conv_shortcut {
                true => Some(Conv::load(vb.pp("shortcut"), short)?),
                false => None,
            },
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(x, true)?;
        let h = self.conv2.forward(&h, true)?;
        match &self.shortcut {
            Some(s) => h + s.forward(x, false)?,
            None => h + x,
        }
    }
}

/// One LSTM layer: W_ih and W_hh transposed for row-vector products, the two biases
/// summed.
struct LstmLayer {
    w_ih_t: Tensor,
    w_hh_t: Tensor,
    bias: Tensor,
    hidden: usize,
}

impl LstmLayer {
    fn load(vb: &VarBuilder, dim: usize, l: usize) -> Result<Self> {
        let w = |name: &str| {
            vb.get((4 * dim, dim), &format!("{name}_l{l}"))?
                .t()?
                .contiguous()
        };
        let b = |name: &str| vb.get(4 * dim, &format!("{name}_l{l}"));
        Ok(Self {
            w_ih_t: w("weight_ih")?,
            w_hh_t: w("weight_hh")?,
            bias: (b("bias_ih")? + b("bias_hh")?)?.unsqueeze(0)?,
            hidden: dim,
        })
    }

    /// (T, H) → (T, H): the input products for every frame at once, then the recurrence.
    fn forward(&self, seq: &Tensor) -> Result<Tensor> {
        let h_dim = self.hidden;
        let xi = seq.matmul(&self.w_ih_t)?.broadcast_add(&self.bias)?;
        let mut h = Tensor::zeros((1, h_dim), DType::F32, seq.device())?;
        let mut c = h.clone();
        let mut out = Vec::with_capacity(seq.dim(0)?);
        for t in 0..seq.dim(0)? {
            let gates = (xi.narrow(0, t, 1)? + h.matmul(&self.w_hh_t)?)?;
            // torch's gate order: input, forget, cell, output. Sigmoid and tanh each run
            // once over all four gates; each gate takes the one it needs.
            let (s, th) = (sigmoid(&gates)?, gates.tanh()?);
            let gate = |g: &Tensor, q: usize| g.narrow(1, q * h_dim, h_dim);
            c = ((gate(&s, 1)? * &c)? + (gate(&s, 0)? * gate(&th, 2)?)?)?;
            h = (gate(&s, 3)? * c.tanh()?)?;
            out.push(h.clone());
        }
        Tensor::cat(&out, 0)
    }
}
