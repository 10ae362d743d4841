//! EnCodec decoding (transformers' `EncodecModel.decode`, the `audio_encoder.*` tensors):
//! residual-VQ codes → embeddings → SEANet decoder (conv, LSTM, transposed-conv upsampling
//! with residual blocks) → waveform. Only decoding is needed to make songs.
//!
//! Padding is trimmed exactly as transformers does, so F frames give F × hop samples.

mod buffers;
pub mod chunked;
mod conv;
mod conv_winograd;
mod host_net;
mod lstm;
mod plan;
mod resblock;
mod signal;
mod tensor_net;
#[cfg(test)]
mod testing;
mod transposed;
mod winograd;

use anyhow::{bail, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::ml::kernels::lstm_cell::RecurrentPrecision;
use crate::ml::nn::device::Precision;
use conv::host;
use host_net::HostNet;
use plan::Plan;
pub use signal::PadMode;
pub use signal::ProductPrecision;
use signal::Signal;
use tensor_net::TensorNet;

/// transformers' `EncodecConfig`; defaults are transformers' (= encodec_24khz).
/// EnCodec's `norm_type`: only weight norm is supported (what MusicGen's EnCodec uses);
/// any other value is refused when config.json is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormType {
    WeightNorm,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EncodecConfig {
    pub sampling_rate: u32,
    pub audio_channels: usize,
    pub hidden_size: usize,
    pub num_filters: usize,
    pub num_residual_layers: usize,
    pub upsampling_ratios: Vec<usize>,
    pub norm_type: NormType,
    pub kernel_size: usize,
    pub last_kernel_size: usize,
    pub residual_kernel_size: usize,
    pub dilation_growth_rate: usize,
    pub use_causal_conv: bool,
    pub pad_mode: PadMode,
    pub compress: usize,
    pub num_lstm_layers: usize,
    pub trim_right_ratio: f64,
    pub codebook_size: usize,
    pub codebook_dim: Option<usize>,
    pub use_conv_shortcut: bool,
    pub chunk_length_s: Option<f64>,
}

impl Default for EncodecConfig {
    fn default() -> Self {
        Self {
            sampling_rate: 24_000,
            audio_channels: 1,
            hidden_size: 128,
            num_filters: 32,
            num_residual_layers: 1,
            upsampling_ratios: vec![8, 5, 4, 2],
            norm_type: NormType::WeightNorm,
            kernel_size: 7,
            last_kernel_size: 7,
            residual_kernel_size: 3,
            dilation_growth_rate: 2,
            use_causal_conv: true,
            pad_mode: PadMode::Reflect,
            compress: 2,
            num_lstm_layers: 2,
            trim_right_ratio: 1.0,
            codebook_size: 1024,
            codebook_dim: None,
            use_conv_shortcut: true,
            chunk_length_s: None,
        }
    }
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
        if self.codebook_dim.is_some_and(|d| d != self.hidden_size) {
            bail!("EnCodec codebook_dim differs from hidden_size; such models are not supported");
        }
        if self.chunk_length_s.is_some() {
            bail!("chunked EnCodec models (chunk_length_s set) are not supported");
        }
        Ok(())
    }
}

/// How the CPU's LSTM keeps its recurrent weights at the LM's `precision`: as trained at
/// f32 (the waveform to f32 rounding of transformers'), else in f16. Every frame of the
/// recurrence reads all of W_hh, so halving it cuts the LSTM, the largest layer of a decode,
/// by two fifths; f16's 2⁻¹¹ rounding is far finer than the LM's own 8-bit weights, and the
/// waveform stays ≥ 70 dB SNR from transformers' (the parity tests; 82–119 dB measured).
pub fn recurrent_precision(precision: Precision) -> RecurrentPrecision {
    match precision {
        Precision::F32 => RecurrentPrecision::F32,
        Precision::F16 | Precision::BF16 | Precision::Q8_0 => RecurrentPrecision::F16,
    }
}

/// How the CPU decoder's products multiply at the LM's `precision`: in f32 at f32 (the
/// waveform to f32 rounding of transformers'), else in 16-bit integers
/// (`kernels::packed_i16`), which do ~1.5× the multiply-adds a cycle on AVX2 and keep the
/// waveform far above their error (`scripts/bench/musicgen` prints its SNR).
pub fn product_precision(precision: Precision) -> ProductPrecision {
    match precision {
        Precision::F32 => ProductPrecision::F32,
        Precision::F16 | Precision::BF16 | Precision::Q8_0 => ProductPrecision::Int16,
    }
}

/// How the decoder's layers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Our CPU kernels (`host_net`): the fast way on a CPU.
    HostKernels,
    /// candle tensor ops on the weights' device (`tensor_net`): the way on a GPU.
    TensorOps,
}

impl Engine {
    /// What runs best on `device`.
    pub fn for_device(device: &Device) -> Self {
        match device.is_cpu() {
            true => Self::HostKernels,
            false => Self::TensorOps,
        }
    }
}

enum Net {
    Host(Box<HostNet>),
    Tensors(Box<TensorNet>),
}

pub struct EncodecDecoder {
    /// Per codebook: (codebook_size, dim), row-major.
    codebooks: Vec<Vec<f32>>,
    dim: usize,
    net: Net,
    plan: Plan,
    cfg: EncodecConfig,
}

impl EncodecDecoder {
    /// `vb` points at an `EncodecModel` (`audio_encoder` in a MusicGen checkpoint);
    /// `precision` is the LM's (`--dtype`).
    ///
    /// Decoding runs in f32 whatever dtype the LM uses (half precision activations audibly
    /// degrade the waveform): on the CPU with our kernels, on a GPU with candle's ops
    /// there. Two exceptions on the CPU at any precision but f32: the LSTM's recurrent
    /// weights are kept in f16 (`recurrent_precision`), and the large products multiply
    /// in 16-bit integers (`product_precision`).
    pub fn load(
        vb: VarBuilder,
        cfg: &EncodecConfig,
        num_codebooks: usize,
        precision: Precision,
    ) -> Result<Self> {
        let engine = Engine::for_device(vb.device());
        Self::load_with(vb, cfg, num_codebooks, engine, precision)
    }

    /// `load`, choosing how the layers run (the tests and benchmarks compare the two).
    pub fn load_with(
        vb: VarBuilder,
        cfg: &EncodecConfig,
        num_codebooks: usize,
        engine: Engine,
        precision: Precision,
    ) -> Result<Self> {
        cfg.check()?;
        let vb = vb.set_dtype(DType::F32);
        let dim = cfg.codebook_dim.unwrap_or(cfg.hidden_size);
        let codebooks = (0..num_codebooks)
            .map(|i| {
                let book = vb.pp("quantizer").pp("layers").pp(i).pp("codebook");
                host(&book.get((cfg.codebook_size, dim), "embed")?)
            })
            .collect::<candle_core::Result<_>>()?;
        let plan = Plan::new(cfg);
        let layers = vb.pp("decoder").pp("layers");
        let net = match engine {
            Engine::HostKernels => {
                let (recurrent, products) =
                    (recurrent_precision(precision), product_precision(precision));
                let net = HostNet::load(layers, cfg, &plan, recurrent, products)?;
                Net::Host(Box::new(net))
            }
            Engine::TensorOps => Net::Tensors(Box::new(TensorNet::load(layers, cfg, &plan)?)),
        };
        Ok(Self {
            codebooks,
            dim,
            net,
            plan,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &EncodecConfig {
        &self.cfg
    }

    /// Multiply-adds one decode of `frames` code frames does (by the layers'
    /// definitions), so a benchmark can state the rate it ran at.
    pub fn multiply_adds(&self, frames: usize) -> usize {
        self.plan.multiply_adds(&self.cfg, frames)
    }

    /// codes[codebook][frame] → samples, exactly frames × hop of them (per channel,
    /// interleaved).
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
        // Residual VQ: the embedding of a frame is the sum over codebooks.
        let dim = self.dim;
        let mut emb = vec![0f32; frames * dim];
        for (book, ids) in self.codebooks.iter().zip(codes) {
            for (row, &id) in emb.chunks_exact_mut(dim).zip(ids) {
                let e = &book[id as usize * dim..(id as usize + 1) * dim];
                for (v, x) in row.iter_mut().zip(e) {
                    *v += x;
                }
            }
        }
        Ok(match &self.net {
            Net::Host(net) => net.forward(&Signal::new(frames, dim, emb)),
            Net::Tensors(net) => net.forward(&emb, frames)?,
        })
    }
}
