//! EnCodec decoding (transformers' `EncodecModel.decode`, the `audio_encoder.*` tensors):
//! residual-VQ codes → embeddings → SEANet decoder (conv, LSTM, transposed-conv upsampling
//! with residual blocks) → waveform. Only decoding is needed to make songs.
//!
//! Padding is trimmed exactly as transformers does, so F frames give F × hop samples.

pub mod chunked;
mod conv;
mod lstm;
mod resblock;
mod signal;
#[cfg(test)]
mod testing;
mod transposed;

use anyhow::{bail, Result};
use candle_core::DType;
use candle_nn::VarBuilder;
use serde::Deserialize;

use conv::{host, Conv};
use lstm::Lstm;
use resblock::ResBlock;
pub use signal::PadMode;
use signal::Signal;
use transposed::ConvTranspose;

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

pub struct EncodecDecoder {
    /// Per codebook: (codebook_size, dim), row-major.
    codebooks: Vec<Vec<f32>>,
    dim: usize,
    first: Conv,
    lstm: Lstm,
    /// Per upsampling ratio: ELU → transposed conv, then the residual blocks.
    stages: Vec<(ConvTranspose, Vec<ResBlock>)>,
    /// ELU → conv down to the audio channels.
    last: Conv,
    cfg: EncodecConfig,
}

impl EncodecDecoder {
    /// `vb` points at an `EncodecModel` (`audio_encoder` in a MusicGen checkpoint).
    ///
    /// Decoding always runs on the CPU in f32, whatever device and dtype the LM uses:
    /// half precision audibly degrades the waveform, and with our CPU kernels 15 s of
    /// audio decodes in well under the time the LM takes to make it. The layer indices
    /// below are `EncodecDecoder.layers` in transformers (ELUs take an index too).
    pub fn load(vb: VarBuilder, cfg: &EncodecConfig, num_codebooks: usize) -> Result<Self> {
        cfg.check()?;
        let vb = vb.set_dtype(DType::F32);
        let dim = cfg.codebook_dim.unwrap_or(cfg.hidden_size);
        let codebooks = (0..num_codebooks)
            .map(|i| {
                let book = vb.pp("quantizer").pp("layers").pp(i).pp("codebook");
                host(&book.get((cfg.codebook_size, dim), "embed")?)
            })
            .collect::<candle_core::Result<_>>()?;

        let d = vb.pp("decoder").pp("layers");
        let mut scale = 1usize << cfg.upsampling_ratios.len();
        let top = scale * cfg.num_filters;
        let first = Conv::load(d.pp(0), cfg, cfg.hidden_size, top, cfg.kernel_size, 1, 1)?;
        let lstm = Lstm::load(d.pp(1), top, cfg.num_lstm_layers)?;
        let mut index = 2;
        let mut stages = Vec::new();
        for &ratio in &cfg.upsampling_ratios {
            let cur = scale * cfg.num_filters;
            let up = ConvTranspose::load(d.pp(index + 1), cfg, cur, cur / 2, ratio * 2, ratio)?;
            index += 2;
            let mut blocks = Vec::new();
            for j in 0..cfg.num_residual_layers {
                let dilation = cfg.dilation_growth_rate.pow(j as u32);
                blocks.push(ResBlock::load(d.pp(index), cfg, cur / 2, dilation)?);
                index += 1;
            }
            stages.push((up, blocks));
            scale /= 2;
        }
        let last = Conv::load(
            d.pp(index + 1),
            cfg,
            cfg.num_filters,
            cfg.audio_channels,
            cfg.last_kernel_size,
            1,
            1,
        )?;
        Ok(Self {
            codebooks,
            dim,
            first,
            lstm,
            stages,
            last,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &EncodecConfig {
        &self.cfg
    }

    /// Multiply-adds one decode of `frames` code frames does (by the layers'
    /// definitions), so a benchmark can state the rate it ran at.
    pub fn multiply_adds(&self, frames: usize) -> usize {
        let mut len = frames;
        let mut total = self.first.multiply_adds(len) + self.lstm.multiply_adds(len);
        for (up, blocks) in &self.stages {
            total += up.multiply_adds(len);
            len *= up.stride();
            total += blocks.iter().map(|b| b.multiply_adds(len)).sum::<usize>();
        }
        total + self.last.multiply_adds(len)
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
        let mut x = self.first.forward(&Signal::new(frames, dim, emb), false);
        x = self.lstm.forward(&x);
        for (up, blocks) in &self.stages {
            x = up.forward(&x, true);
            for block in blocks {
                x = block.forward(&x);
            }
        }
        // Mono: (samples, 1).
        Ok(self.last.forward(&x, true).data)
    }
}
