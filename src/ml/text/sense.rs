//! The text model's reading of the person's words: which moods and genres they mean
//! (cosine with `meanings`, only when one clearly leads), and for a long text which
//! sentences carry it (the closest to the mean of all its sentences: a centroid summary,
//! extractive and deterministic).

use anyhow::Result;
use candle_core::Device;

use super::meanings::{GENRE_MEANINGS, MOOD_MEANINGS};
use super::{cosine, unit, TextEncoder};
use crate::ml::weights::hub::ModelFiles;
use crate::prompt::words::{sentences, Sense};

/// When the words count as meaning a mood or genre: the best cosine must reach `min` and
/// lead the runner-up by `lead` (a near tie means the words do not say). Calibrated on
/// tests/fixtures/words/labelled.json, where every pick passing these was acceptable;
/// genre meanings sit closer together, so they need more.
#[derive(Debug, Clone, Copy)]
pub struct Sure {
    pub min: f32,
    pub lead: f32,
}

pub const MOOD_SURE: Sure = Sure {
    min: 0.30,
    lead: 0.04,
};
pub const GENRE_SURE: Sure = Sure {
    min: 0.40,
    lead: 0.04,
};
/// Sentences picked from a long text.
pub const PICKED: usize = 2;

/// (id, cosine) per vocabulary entry.
pub type Scores = Vec<(String, f32)>;

/// Entries (id, its meanings' embeddings).
type Embedded = Vec<(&'static str, Vec<Vec<f32>>)>;

pub struct WordReader {
    encoder: TextEncoder,
    moods: Embedded,
    genres: Embedded,
}

impl WordReader {
    /// Load the text model and embed the vocabulary's meanings once.
    pub fn load(files: &ModelFiles, device: &Device) -> Result<Self> {
        let encoder = TextEncoder::load(files, device)?;
        let embed_all = |table: &[(&'static str, &[&str])]| -> Result<Embedded> {
            table
                .iter()
                .map(|(id, lines)| {
                    let vs = lines
                        .iter()
                        .map(|l| encoder.embed(l))
                        .collect::<Result<_>>()?;
                    Ok((*id, vs))
                })
                .collect()
        };
        let moods = embed_all(MOOD_MEANINGS)?;
        let genres = embed_all(GENRE_MEANINGS)?;
        Ok(Self {
            encoder,
            moods,
            genres,
        })
    }

    /// Every mood's and genre's cosine with `text`'s meaning, in vocabulary order: what
    /// `sense` decides from (for tuning and for explaining a reading).
    pub fn scores(&self, text: &str) -> Result<(Scores, Scores)> {
        let meaning = self.encoder.embed(text)?;
        Ok((
            scores(&meaning, &self.moods),
            scores(&meaning, &self.genres),
        ))
    }

    /// Read `text` (a line, or with `long` a whole text).
    pub fn sense(&self, text: &str, long: bool) -> Result<Sense> {
        if text.trim().is_empty() {
            return Ok(Sense::default());
        }
        let mut sense = Sense::default();
        let meaning = if long {
            let list = sentences::split(text);
            let vectors = list
                .iter()
                .map(|s| self.encoder.embed(s))
                .collect::<Result<Vec<_>>>()?;
            let whole = centroid(&vectors);
            let mut scored: Vec<(usize, f32)> = vectors
                .iter()
                .map(|v| cosine(v, &whole))
                .enumerate()
                .collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            scored.truncate(PICKED);
            scored.sort_by_key(|(i, _)| *i);
            sense.picked = scored
                .iter()
                .map(|(i, score)| (list[*i].to_string(), *score))
                .collect();
            sense.sentences = list.len();
            whole
        } else {
            self.encoder.embed(text)?
        };
        sense.moods = sure(&meaning, &self.moods, MOOD_SURE);
        sense.genres = sure(&meaning, &self.genres, GENRE_SURE);
        Ok(sense)
    }
}

/// The unit-length mean of unit vectors (empty input: empty output).
fn centroid(vectors: &[Vec<f32>]) -> Vec<f32> {
    let Some(first) = vectors.first() else {
        return Vec::new();
    };
    let mut sum = vec![0f32; first.len()];
    for v in vectors {
        sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
    }
    unit(sum)
}

/// Every entry scored by its closest meaning: only the best, and only when it is `sure`;
/// otherwise nothing.
pub fn sure(meaning: &[f32], table: &Embedded, sure: Sure) -> Vec<(String, f32)> {
    let mut scores = scores(meaning, table);
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    match scores.as_slice() {
        [best, second, ..] if best.1 >= sure.min && best.1 - second.1 >= sure.lead => {
            vec![best.clone()]
        }
        _ => Vec::new(),
    }
}

/// (id, best cosine over its meanings), in table order.
pub fn scores(meaning: &[f32], table: &Embedded) -> Vec<(String, f32)> {
    table
        .iter()
        .map(|(id, vs)| {
            let best = vs
                .iter()
                .map(|v| cosine(meaning, v))
                .fold(f32::NEG_INFINITY, f32::max);
            (id.to_string(), best)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two-dimensional "meanings": a clear winner passes, a near tie or a weak best does not.
    #[test]
    fn only_a_clear_winner_counts() {
        let table: Embedded = vec![
            ("calm", vec![vec![1.0, 0.0]]),
            ("tense", vec![vec![0.0, 1.0], vec![0.6, 0.8]]),
        ];
        let sure_of = |v: [f32; 2]| sure(&v, &table, MOOD_SURE);
        assert_eq!(sure_of([1.0, 0.0]), vec![("calm".to_string(), 1.0)]);
        // calm 0.8 and tense 0.6·0.8 + 0.8·0.4 = 0.8: a tie says nothing.
        assert_eq!(sure_of([0.8, 0.4]), vec![]);
        // Too weak to count, however far ahead.
        assert_eq!(sure_of([0.2, 0.0]), vec![]);
        assert_eq!(centroid(&[]), Vec::<f32>::new());
        let c = centroid(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!((cosine(&c, &c) - 1.0).abs() < 1e-6);
    }
}
