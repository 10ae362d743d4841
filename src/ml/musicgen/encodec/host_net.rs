//! The decoder on the CPU with our own kernels (time-major signals, a time chunk per
//! task): what runs when the model is on the CPU.

use candle_nn::VarBuilder;

use super::buffers::Buffers;
use super::conv::Conv;
use super::lstm::Lstm;
use super::plan::Plan;
use super::resblock::ResBlock;
use super::signal::{ProductPrecision, Signal};
use super::transposed::ConvTranspose;
use super::EncodecConfig;
use crate::ml::kernels::lstm_cell::RecurrentPrecision;

pub struct HostNet {
    first: Conv,
    lstm: Lstm,
    /// Per upsampling ratio: ELU → transposed conv, then the residual blocks.
    stages: Vec<(ConvTranspose, Vec<ResBlock>)>,
    /// ELU → conv down to the audio channels.
    last: Conv,
    /// Signals between layers, reused (`buffers`).
    buffers: Buffers,
}

impl HostNet {
    /// `layers` points at `decoder.layers`; `recurrent` is how the LSTM keeps W_hh,
    /// `products` how the convolutions' and the LSTM's input products multiply.
    pub fn load(
        layers: VarBuilder,
        cfg: &EncodecConfig,
        plan: &Plan,
        recurrent: RecurrentPrecision,
        products: ProductPrecision,
    ) -> candle_core::Result<Self> {
        let first = Conv::load(layers.pp(0), plan.first, products)?;
        let lstm = Lstm::load(
            layers.pp(1),
            plan.top,
            plan.lstm_layers,
            recurrent,
            products,
        )?;
        let stages = plan.load_stages(
            &layers,
            |vb, s| ConvTranspose::load(vb, cfg, s.cin, s.cout, s.taps, s.stride, products),
            |vb, dim, dilation| ResBlock::load(vb, cfg, dim, dilation, products),
        )?;
        let last = Conv::load(layers.pp(plan.last_index), plan.last, products)?;
        Ok(Self {
            first,
            lstm,
            stages,
            last,
            buffers: Buffers::default(),
        })
    }

    /// Embeddings (frames, hidden) → samples, time-major (mono: one per frame).
    pub fn forward(&self, emb: &Signal) -> Vec<f32> {
        let buffers = &self.buffers;
        // Each layer writes into a kept buffer and hands its input's back.
        let next = |x: Signal, layer: &dyn Fn(&Signal, Vec<f32>) -> Signal| {
            let y = layer(&x, buffers.take());
            buffers.give(x.data);
            y
        };
        let mut x = self.first.forward(emb, false, buffers.take());
        x = next(x, &|x, out| self.lstm.forward(x, out));
        for (up, blocks) in &self.stages {
            x = next(x, &|x, out| up.forward(x, true, out));
            for block in blocks {
                x = next(x, &|x, out| block.forward(x, out));
            }
        }
        // The samples leave with the caller: a buffer of their own.
        let samples = self.last.forward(&x, true, Vec::new()).data;
        buffers.give(x.data);
        samples
    }
}
