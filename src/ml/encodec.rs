//! EnCodec decoding (transformers' `EncodecModel.decode`, the `audio_encoder.*` tensors):
//! residual-VQ codes → embeddings → SEANet decoder (conv, LSTM, transposed-conv upsampling
//! with residual blocks) → waveform. Only decoding is needed to make songs.
//!
//! Padding is trimmed exactly as transformers does, so F frames give F × hop samples.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

fn d_sr() -> u32 {
    24_000
}
fn d_one() -> usize {
    1
}
fn d_hidden() -> usize {
    128
}
fn d_filters() -> usize {
    32
}
fn d_ratios() -> Vec<usize> {
    vec![8, 5, 4, 2]
}
fn d_norm() -> String {
    "weight_norm".into()
}
fn d_seven() -> usize {
    7
}
fn d_three() -> usize {
    3
}
fn d_two() -> usize {
    2
}
fn d_true() -> bool {
    true
}
fn d_pad_mode() -> String {
    "reflect".into()
}
fn d_trim() -> f64 {
    1.0
}
fn d_codebook_size() -> usize {
    1024
}

/// transformers' `EncodecConfig`; defaults are transformers' (= encodec_24khz).
#[derive(Debug, Clone, Deserialize)]
pub struct EncodecConfig {
    #[serde(default = "d_sr")]
    pub sampling_rate: u32,
    #[serde(default = "d_one")]
    pub audio_channels: usize,
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_filters")]
    pub num_filters: usize,
    #[serde(default = "d_one")]
    pub num_residual_layers: usize,
    #[serde(default = "d_ratios")]
    pub upsampling_ratios: Vec<usize>,
    #[serde(default = "d_norm")]
    pub norm_type: String,
    #[serde(default = "d_seven")]
    pub kernel_size: usize,
    #[serde(default = "d_seven")]
    pub last_kernel_size: usize,
    #[serde(default = "d_three")]
    pub residual_kernel_size: usize,
    #[serde(default = "d_two")]
    pub dilation_growth_rate: usize,
    #[serde(default = "d_true")]
    pub use_causal_conv: bool,
    #[serde(default = "d_pad_mode")]
    pub pad_mode: String,
    #[serde(default = "d_two")]
    pub compress: usize,
    #[serde(default = "d_two")]
    pub num_lstm_layers: usize,
    #[serde(default = "d_trim")]
    pub trim_right_ratio: f64,
    #[serde(default = "d_codebook_size")]
    pub codebook_size: usize,
    #[serde(default)]
    pub codebook_dim: Option<usize>,
    #[serde(default = "d_true")]
    pub use_conv_shortcut: bool,
    #[serde(default)]
    pub chunk_length_s: Option<f64>,
}

impl EncodecConfig {
    /// Samples per code frame.
    pub fn hop_length(&self) -> usize {
        self.upsampling_ratios.iter().product()
    }

    /// Code frames per second of audio.
    pub fn frame_rate(&self) -> f64 {
        (self.sampling_rate as f64 / self.hop_length() as f64).ceil()
    }

    fn check(&self) -> Result<()> {
        if self.norm_type != "weight_norm" {
            bail!(
                "EnCodec norm_type {:?} is not supported (only weight_norm)",
                self.norm_type
            );
        }
        if !matches!(self.pad_mode.as_str(), "reflect" | "constant" | "zero") {
            bail!("EnCodec pad_mode {:?} is not supported", self.pad_mode);
        }
        if self.chunk_length_s.is_some() {
            bail!("chunked EnCodec models (chunk_length_s set) are not supported");
        }
        Ok(())
    }
}

/// Weight-normalised weight: g · v / ‖v‖, the norm over every dim but the first.
/// Checkpoints store (g, v) as `weight_g`/`weight_v` (old torch) or as
/// `parametrizations.weight.original0/1` (new torch); both are accepted.
fn weight_norm(vb: &VarBuilder, shape: (usize, usize, usize)) -> candle_core::Result<Tensor> {
    let g_shape = (shape.0, 1, 1);
    let (g, v) = if vb.contains_tensor("parametrizations.weight.original0") {
        let p = vb.pp("parametrizations").pp("weight");
        (p.get(g_shape, "original0")?, p.get(shape, "original1")?)
    } else {
        (vb.get(g_shape, "weight_g")?, vb.get(shape, "weight_v")?)
    };
    let norm = v.sqr()?.sum_keepdim((1, 2))?.sqrt()?;
    v.broadcast_mul(&g.broadcast_div(&norm)?)
}

#[derive(Clone, Copy)]
enum Pad {
    Reflect,
    Zero,
}

/// `EncodecConv1d`: weight-normed conv with "same"-style padding (asymmetric or causal).
struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    dilation: usize,
    pad_left: usize,
    pad_right: usize,
    effective_kernel: usize,
    mode: Pad,
}

impl Conv {
    #[allow(clippy::too_many_arguments)]
    fn load(
        vb: VarBuilder,
        cfg: &EncodecConfig,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        dilation: usize,
    ) -> candle_core::Result<Self> {
        let vb = vb.pp("conv");
        let weight = weight_norm(&vb, (cout, cin, k))?;
        let bias = vb.get(cout, "bias")?;
        let effective_kernel = (k - 1) * dilation + 1;
        let total = effective_kernel - stride;
        let (pad_left, pad_right) = if cfg.use_causal_conv {
            (total, 0)
        } else {
            (total - total / 2, total / 2)
        };
        let mode = if cfg.pad_mode == "reflect" {
            Pad::Reflect
        } else {
            Pad::Zero
        };
        Ok(Self {
            weight,
            bias,
            stride,
            dilation,
            pad_left,
            pad_right,
            effective_kernel,
            mode,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let len = x.dim(2)?;
        // transformers' `_get_extra_padding_for_conv1d`: pad so the last window is whole.
        let total = self.effective_kernel - self.stride;
        let n_frames =
            ((len + total) as f64 - self.effective_kernel as f64) / self.stride as f64 + 1.0;
        let ideal = (n_frames.ceil() as usize - 1) * self.stride + self.effective_kernel - total;
        let extra = ideal.saturating_sub(len);
        let x = pad1d(x, self.pad_left, self.pad_right + extra, self.mode)?;
        let (cout, cin, k) = self.weight.dims3()?;
        let y = if k == 1 && self.stride == 1 {
            // A 1×1 conv is a matrix product; candle's conv would build an im2col copy.
            self.weight
                .reshape((cout, cin))?
                .broadcast_matmul(&x.contiguous()?)?
        } else if cout == 1 && self.stride == 1 && x.device().is_cpu() {
            conv_to_one_channel(&x, &self.weight, self.dilation)?
        } else {
            x.conv1d(&self.weight, 0, self.stride, self.dilation, 1)?
        };
        y.broadcast_add(&self.bias.reshape((1, (), 1))?)
    }
}

/// A stride-1 conv with a single output channel (EnCodec's last layer), computed as one
/// multiply-add sweep per (input channel, tap): im2col here would copy the whole
/// waveform-length signal once per tap and channel (hundreds of MB for 15 s of audio).
fn conv_to_one_channel(
    x: &Tensor,
    weight: &Tensor,
    dilation: usize,
) -> candle_core::Result<Tensor> {
    let (b, cin, len) = x.dims3()?;
    let k = weight.dim(2)?;
    let out_len = len - (k - 1) * dilation;
    let xs: Vec<f32> = x.contiguous()?.flatten_all()?.to_vec1()?;
    let w: Vec<f32> = weight.flatten_all()?.to_vec1()?;
    let mut y = vec![0f32; b * out_len];
    for (bi, yb) in y.chunks_exact_mut(out_len).enumerate() {
        for c in 0..cin {
            let row = &xs[(bi * cin + c) * len..(bi * cin + c + 1) * len];
            for tap in 0..k {
                let wv = w[c * k + tap];
                let src = &row[tap * dilation..tap * dilation + out_len];
                for (o, v) in yb.iter_mut().zip(src) {
                    *o += wv * v;
                }
            }
        }
    }
    Tensor::from_vec(y, (b, 1, out_len), x.device())
}

/// Pad the last dim; reflect like torch, with transformers' trick for inputs shorter than
/// the padding (zero-extend on the right first, then cut that extension off again).
fn pad1d(x: &Tensor, left: usize, right: usize, mode: Pad) -> candle_core::Result<Tensor> {
    if left == 0 && right == 0 {
        return Ok(x.clone());
    }
    match mode {
        Pad::Zero => x.pad_with_zeros(2, left, right),
        Pad::Reflect => {
            let len = x.dim(2)?;
            let max_pad = left.max(right);
            let extra = if len <= max_pad { max_pad - len + 1 } else { 0 };
            let x = if extra > 0 {
                x.pad_with_zeros(2, 0, extra)?
            } else {
                x.clone()
            };
            let n = len + extra;
            let idx: Vec<u32> = (0..left)
                .map(|i| (left - i) as u32)
                .chain((0..n).map(|i| i as u32))
                .chain((0..right).map(|i| (n - 2 - i) as u32))
                .collect();
            let idx = Tensor::from_vec(idx, left + n + right, x.device())?;
            let padded = x.contiguous()?.index_select(&idx, 2)?;
            padded.narrow(2, 0, left + n + right - extra)
        }
    }
}

/// `EncodecConvTranspose1d`: upsampling, trimming the fixed padding so length × stride.
struct ConvTranspose {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    trim_left: usize,
    trim_right: usize,
}

impl ConvTranspose {
    fn load(
        vb: VarBuilder,
        cfg: &EncodecConfig,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
    ) -> candle_core::Result<Self> {
        let vb = vb.pp("conv");
        let weight = weight_norm(&vb, (cin, cout, k))?;
        let bias = vb.get(cout, "bias")?;
        let total = k - stride;
        let trim_right = if cfg.use_causal_conv {
            (total as f64 * cfg.trim_right_ratio).ceil() as usize
        } else {
            total / 2
        };
        Ok(Self {
            weight,
            bias,
            stride,
            trim_left: total - trim_right,
            trim_right,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.conv_transpose1d(&self.weight, 0, 0, self.stride, 1, 1)?;
        let y = y.broadcast_add(&self.bias.reshape((1, (), 1))?)?;
        let len = y.dim(2)?;
        y.narrow(2, self.trim_left, len - self.trim_left - self.trim_right)
    }
}

/// `EncodecLSTM`: a stacked LSTM over time with a residual connection around it.
struct Lstm {
    /// Per layer: W_ih^T (in, 4H), W_hh^T (H, 4H), b_ih + b_hh (4H).
    layers: Vec<(Tensor, Tensor, Tensor)>,
    hidden: usize,
}

impl Lstm {
    fn load(vb: VarBuilder, dim: usize, num_layers: usize) -> candle_core::Result<Self> {
        let vb = vb.pp("lstm");
        let layers = (0..num_layers)
            .map(|l| {
                let w_ih = vb.get((4 * dim, dim), &format!("weight_ih_l{l}"))?;
                let w_hh = vb.get((4 * dim, dim), &format!("weight_hh_l{l}"))?;
                let b = (vb.get(4 * dim, &format!("bias_ih_l{l}"))?
                    + vb.get(4 * dim, &format!("bias_hh_l{l}"))?)?;
                Ok((w_ih.t()?.contiguous()?, w_hh.t()?.contiguous()?, b))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            layers,
            hidden: dim,
        })
    }

    /// x: (1, C, T) → (1, C, T)
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, _, t) = x.dims3()?;
        if b != 1 {
            candle_core::bail!("EnCodec decoding runs one song at a time");
        }
        let input = x.squeeze(0)?.t()?.contiguous()?; // (T, C)
        let h_dim = self.hidden;
        let mut seq = input.clone();
        for (w_ih, w_hh, bias) in &self.layers {
            // The input projection for every step at once: one big GEMM.
            let xi = seq.matmul(w_ih)?.broadcast_add(bias)?;
            let mut h = Tensor::zeros((1, h_dim), x.dtype(), x.device())?;
            let mut c = h.clone();
            let mut outs = Vec::with_capacity(t);
            for step in 0..t {
                let gates = (xi.narrow(0, step, 1)? + h.matmul(w_hh)?)?;
                // torch's gate order: input, forget, cell, output.
                let i = candle_nn::ops::sigmoid(&gates.narrow(1, 0, h_dim)?)?;
                let f = candle_nn::ops::sigmoid(&gates.narrow(1, h_dim, h_dim)?)?;
                let g = gates.narrow(1, 2 * h_dim, h_dim)?.tanh()?;
                let o = candle_nn::ops::sigmoid(&gates.narrow(1, 3 * h_dim, h_dim)?)?;
                c = ((f * &c)? + (i * g)?)?;
                h = (o * c.tanh()?)?;
                outs.push(h.clone());
            }
            seq = Tensor::cat(&outs, 0)?;
        }
        (seq + input)?.t()?.unsqueeze(0)
    }
}

/// `EncodecResnetBlock`: ELU → conv(k, dilation) → ELU → conv(1), plus the shortcut.
struct ResBlock {
    conv1: Conv,
    conv2: Conv,
    shortcut: Option<Conv>,
}

impl ResBlock {
    fn load(
        vb: VarBuilder,
        cfg: &EncodecConfig,
        dim: usize,
        dilation: usize,
    ) -> candle_core::Result<Self> {
        let hidden = dim / cfg.compress;
        let conv1 = Conv::load(
            vb.pp("block").pp(1),
            cfg,
            dim,
            hidden,
            cfg.residual_kernel_size,
            1,
            dilation,
        )?;
        let conv2 = Conv::load(vb.pp("block").pp(3), cfg, hidden, dim, 1, 1, 1)?;
        let shortcut = if cfg.use_conv_shortcut {
            Some(Conv::load(vb.pp("shortcut"), cfg, dim, dim, 1, 1, 1)?)
        } else {
            None
        };
        Ok(Self {
            conv1,
            conv2,
            shortcut,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.conv1.forward(&x.elu(1.0)?)?;
        let h = self.conv2.forward(&h.elu(1.0)?)?;
        let skip = match &self.shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        skip + h
    }
}

enum Layer {
    Conv(Conv),
    Lstm(Lstm),
    Elu,
    Up(ConvTranspose),
    Res(ResBlock),
}

pub struct EncodecDecoder {
    codebooks: Vec<Tensor>,
    layers: Vec<Layer>,
    cfg: EncodecConfig,
    device: Device,
}

impl EncodecDecoder {
    /// `vb` points at an `EncodecModel` (`audio_encoder` in a MusicGen checkpoint).
    /// Runs in f32 whatever the rest of the model uses: it is cheap next to the LM and
    /// half precision audibly degrades the waveform.
    pub fn load(vb: VarBuilder, cfg: &EncodecConfig, num_codebooks: usize) -> Result<Self> {
        cfg.check()?;
        let vb = vb.set_dtype(DType::F32);
        let dim = cfg.codebook_dim.unwrap_or(cfg.hidden_size);
        let codebooks = (0..num_codebooks)
            .map(|i| {
                vb.pp("quantizer")
                    .pp("layers")
                    .pp(i)
                    .pp("codebook")
                    .get((cfg.codebook_size, dim), "embed")
            })
            .collect::<candle_core::Result<_>>()?;

        let d = vb.pp("decoder").pp("layers");
        let mut layers = Vec::new();
        let mut scale = 1usize << cfg.upsampling_ratios.len();
        let top = scale * cfg.num_filters;
        layers.push(Layer::Conv(Conv::load(
            d.pp(0),
            cfg,
            cfg.hidden_size,
            top,
            cfg.kernel_size,
            1,
            1,
        )?));
        layers.push(Layer::Lstm(Lstm::load(d.pp(1), top, cfg.num_lstm_layers)?));
        for &ratio in &cfg.upsampling_ratios {
            let cur = scale * cfg.num_filters;
            layers.push(Layer::Elu);
            let i = layers.len();
            layers.push(Layer::Up(ConvTranspose::load(
                d.pp(i),
                cfg,
                cur,
                cur / 2,
                ratio * 2,
                ratio,
            )?));
            for j in 0..cfg.num_residual_layers {
                let i = layers.len();
                let dilation = cfg.dilation_growth_rate.pow(j as u32);
                layers.push(Layer::Res(ResBlock::load(d.pp(i), cfg, cur / 2, dilation)?));
            }
            scale /= 2;
        }
        layers.push(Layer::Elu);
        let i = layers.len();
        layers.push(Layer::Conv(Conv::load(
            d.pp(i),
            cfg,
            cfg.num_filters,
            cfg.audio_channels,
            cfg.last_kernel_size,
            1,
            1,
        )?));
        Ok(Self {
            codebooks,
            layers,
            cfg: cfg.clone(),
            device: vb.device().clone(),
        })
    }

    pub fn config(&self) -> &EncodecConfig {
        &self.cfg
    }

    /// codes[codebook][frame] → mono samples, exactly frames × hop of them.
    pub fn decode(&self, codes: &[Vec<u32>]) -> Result<Vec<f32>> {
        if codes.is_empty() || codes.len() > self.codebooks.len() {
            bail!(
                "expected 1 to {} codebooks of codes, got {}",
                self.codebooks.len(),
                codes.len()
            );
        }
        let frames = codes[0].len();
        if frames == 0 || codes.iter().any(|c| c.len() != frames) {
            bail!("every codebook needs the same, non-zero number of frames");
        }
        let size = self.cfg.codebook_size as u32;
        if let Some(bad) = codes.iter().flatten().find(|&&c| c >= size) {
            bail!("code {bad} is outside the codebook (size {size})");
        }
        let mut emb: Option<Tensor> = None;
        for (book, ids) in self.codebooks.iter().zip(codes) {
            let ids = Tensor::new(ids.as_slice(), &self.device)?;
            let e = book.index_select(&ids, 0)?;
            emb = Some(match emb {
                Some(acc) => (acc + e)?,
                None => e,
            });
        }
        let Some(emb) = emb else { bail!("no codes") };
        let mut x = emb.t()?.unsqueeze(0)?.contiguous()?; // (1, dim, frames)
        for layer in &self.layers {
            x = match layer {
                Layer::Conv(c) => c.forward(&x)?,
                Layer::Lstm(l) => l.forward(&x)?,
                Layer::Elu => x.elu(1.0)?,
                Layer::Up(u) => u.forward(&x)?,
                Layer::Res(r) => r.forward(&x)?,
            };
        }
        // Mono: (1, 1, samples).
        Ok(x.flatten_all()?.to_vec1::<f32>()?)
    }
}
