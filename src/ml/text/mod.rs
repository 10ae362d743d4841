//! The person's words, read for meaning: a sentence-embedding model (`bert`, by default
//! all-MiniLM-L6-v2) turns a text into one unit vector, and `sense` compares those
//! vectors with the vocabulary's descriptions and picks a long text's key sentences.
pub mod bert;
mod meanings;
pub mod sense;

use anyhow::{Context, Result};
use bert::{BertConfig, BertModel};
use candle_core::{DType, Device, Tensor};

use crate::ml::weights::hub::ModelFiles;

/// The default text model: 22 M parameters, Apache-2.0, a few ms per phrase on a CPU.
pub const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// all-MiniLM-L6-v2's `max_seq_length`: longer texts are cut there, as
/// sentence-transformers does (the [CLS] and [SEP] tokens included).
const MAX_TOKENS: usize = 256;

pub struct TextEncoder {
    model: BertModel,
    tokenizer: tokenizers::Tokenizer,
    device: Device,
}

impl TextEncoder {
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self> {
        let cfg: BertConfig = files.read_config()?;
        let vb = files.var_builder(DType::F32, device)?;
        let model = BertModel::load(vb, &cfg).with_context(|| files.mismatch())?;
        let mut tokenizer = files.tokenizer()?;
        // The file may carry padding or a shorter truncation for batches: one text at a
        // time, cut by `embed` as sentence-transformers cuts it.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| anyhow::anyhow!("the tokenizer of {} is unusable: {e}", files.source))?;
        Ok(Self {
            model,
            tokenizer,
            device: device.clone(),
        })
    }

    /// The token ids the model sees for `text`: [CLS] … [SEP], at most `MAX_TOKENS`.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| anyhow::anyhow!("cannot tokenize the text: {e}"))?;
        let mut ids = encoding.get_ids().to_vec();
        // At least [CLS] and [SEP], whatever an odd config says.
        let max = MAX_TOKENS.min(self.model.max_positions()).max(2);
        if ids.len() > max {
            let sep = ids[ids.len() - 1];
            ids.truncate(max - 1);
            ids.push(sep);
        }
        Ok(ids)
    }

    /// The text's embedding: the mean of its last hidden states, scaled to unit length
    /// (all-MiniLM-L6-v2's pooling and normalisation).
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let ids = self.token_ids(text)?;
        let input = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
        let hidden = self.model.forward(&input)?;
        let mean: Vec<f32> = hidden
            .mean(1)?
            .squeeze(0)?
            .to_dtype(DType::F32)?
            .to_vec1()?;
        Ok(unit(mean))
    }
}

/// `v` scaled to length 1 (a zero vector stays zero).
fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// The cosine of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
