//! The SEANet decoder's layers as its config lays them out: each layer's shape and its
//! index in the checkpoint's `decoder.layers` (ELUs take an index too). Both ways of
//! running the decoder (`host_net`, `tensor_net`) load from this one plan, and the
//! multiply-add count a benchmark reports is read from it.

use candle_nn::VarBuilder;

use super::conv::ConvShape;
use super::resblock;
use super::EncodecConfig;

/// A transposed conv upsampling by `stride` (taps = 2·stride), then residual blocks.
pub struct Stage {
    /// Index of the transposed conv (its ELU is the index before).
    pub index: usize,
    pub cin: usize,
    pub cout: usize,
    pub taps: usize,
    pub stride: usize,
    /// Per residual block: its index and its first conv's dilation.
    pub blocks: Vec<(usize, usize)>,
}

pub struct Plan {
    /// conv(hidden → top), index 0.
    pub first: ConvShape,
    /// The LSTM's width (index 1).
    pub top: usize,
    pub lstm_layers: usize,
    pub stages: Vec<Stage>,
    /// ELU → conv(filters → audio channels), and its index.
    pub last: ConvShape,
    pub last_index: usize,
}

impl Plan {
    pub fn new(cfg: &EncodecConfig) -> Self {
        let mut scale = 1usize << cfg.upsampling_ratios.len();
        let top = scale * cfg.num_filters;
        let first = ConvShape::new(cfg, (cfg.hidden_size, top), cfg.kernel_size, 1, 1);
        let mut index = 2;
        let mut stages = Vec::new();
        for &ratio in &cfg.upsampling_ratios {
            let cur = scale * cfg.num_filters;
            let up = index + 1;
            index += 2;
            let blocks = (0..cfg.num_residual_layers)
                .map(|j| {
                    index += 1;
                    (index - 1, cfg.dilation_growth_rate.pow(j as u32))
                })
                .collect();
            stages.push(Stage {
                index: up,
                cin: cur,
                cout: cur / 2,
                taps: ratio * 2,
                stride: ratio,
                blocks,
            });
            scale /= 2;
        }
        let last = ConvShape::new(
            cfg,
            (cfg.num_filters, cfg.audio_channels),
            cfg.last_kernel_size,
            1,
            1,
        );
        Self {
            first,
            top,
            lstm_layers: cfg.num_lstm_layers,
            stages,
            last,
            last_index: index + 1,
        }
    }

    /// Each stage's transposed conv and residual blocks, made by `up` (from the conv's
    /// VarBuilder) and `block` (from the block's, with its width and dilation), reading
    /// under `layers` (`decoder.layers`).
    pub fn load_stages<U, B>(
        &self,
        layers: &VarBuilder,
        up: impl Fn(VarBuilder, &Stage) -> candle_core::Result<U>,
        block: impl Fn(VarBuilder, usize, usize) -> candle_core::Result<B>,
    ) -> candle_core::Result<Vec<(U, Vec<B>)>> {
        self.stages
            .iter()
            .map(|s| {
                let blocks = s
                    .blocks
                    .iter()
                    .map(|&(i, dilation)| block(layers.pp(i), s.cout, dilation))
                    .collect::<candle_core::Result<_>>()?;
                Ok((up(layers.pp(s.index), s)?, blocks))
            })
            .collect()
    }

    /// Multiply-adds one decode of `frames` code frames does, by the layers' definitions
    /// (the CPU's transposed convs do three quarters of theirs), so a benchmark can state
    /// the rate it ran at.
    pub fn multiply_adds(&self, cfg: &EncodecConfig, frames: usize) -> usize {
        let mut len = frames;
        let lstm = self.lstm_layers * len * 2 * 4 * self.top * self.top;
        let mut total = self.first.multiply_adds(len) + lstm;
        for stage in &self.stages {
            total += len * stage.taps * stage.cin * stage.cout;
            len *= stage.stride;
            for &(_, dilation) in &stage.blocks {
                let [one, two, short] = resblock::shapes(cfg, stage.cout, dilation);
                let shortcut = if cfg.use_conv_shortcut {
                    short.multiply_adds(len)
                } else {
                    0
                };
                total += one.multiply_adds(len) + two.multiply_adds(len) + shortcut;
            }
        }
        total + self.last.multiply_adds(len)
    }
}
