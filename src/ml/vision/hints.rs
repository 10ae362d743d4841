//! Photo → [`Hints`] for the prompt composer: BLIP caption, CLIP's mood and genre
//! probabilities over the vocabulary, and the palette. Each model is optional, so the
//! same path serves a full install, a captions-only one, and tests.

use anyhow::Result;
use image::RgbImage;

use crate::ml::vision::blip::Captioner;
use crate::ml::vision::clip::{softmax, ClipScorer};
use crate::photo::palette::palette;
use crate::prompt::vocabulary::{GENRES, MOODS};
use crate::prompt::Hints;

/// Colours in a palette: enough for the visualizer's gradient.
pub const PALETTE_COLOURS: usize = 5;
/// Caption length cap (BLIP captions are short; this bounds a bad model).
pub const CAPTION_TOKENS: usize = 30;

/// Rank `ids` by CLIP's zero-shot probability, best first (ties keep vocabulary order).
fn ranked(
    clip: &ClipScorer,
    image: &candle_core::Tensor,
    labels: &[(&'static str, &'static str)],
) -> Result<Vec<(String, f32)>> {
    let texts: Vec<&str> = labels.iter().map(|(_, text)| *text).collect();
    let probs = softmax(&clip.logits(image, &texts)?);
    let mut out: Vec<(String, f32)> = labels
        .iter()
        .map(|(id, _)| id.to_string())
        .zip(probs)
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(out)
}

pub fn photo_hints(
    photo: &RgbImage,
    captioner: Option<&Captioner>,
    clip: Option<&ClipScorer>,
) -> Result<Hints> {
    let caption = match captioner {
        Some(c) => Some(c.caption(photo, CAPTION_TOKENS)?.text),
        None => None,
    };
    let (moods, genres) = match clip {
        Some(clip) => {
            let image = clip.image_embedding(&clip.pixels(photo)?)?;
            let moods: Vec<_> = MOODS.iter().map(|m| (m.id, m.clip)).collect();
            let genres: Vec<_> = GENRES.iter().map(|g| (g.id, g.clip)).collect();
            (
                ranked(clip, &image, &moods)?,
                ranked(clip, &image, &genres)?,
            )
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(Hints {
        caption,
        moods,
        genres,
        palette: Some(palette(photo, PALETTE_COLOURS)),
        words: Default::default(),
    })
}
