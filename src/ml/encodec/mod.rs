//! EnCodec decoding (transformers' `EncodecModel.decode`, the `audio_encoder.*` tensors):
//! residual-VQ codes → embeddings → SEANet decoder (conv, LSTM, transposed-conv upsampling
//! with residual blocks) → waveform. Only decoding is needed to make songs.
//!
//! Padding is trimmed exactly as transformers does, so F frames give F × hop samples.

mod layers;
mod signal;

use anyhow::{bail, Result};
use candle_core::DType;
use candle_nn::VarBuilder;
use serde::Deserialize;

use layers::{host, Conv, ConvTranspose, Lstm, ResBlock};
use signal::Signal;

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
