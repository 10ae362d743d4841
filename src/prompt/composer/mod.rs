//! The prompt composer: the person's choices and words + the photo's caption, CLIP
//! scores and palette → one MusicGen prompt, in the style of MusicGen's training
//! captions ("genre track, mood, with instruments, N bpm, scene").
//!
//! Precedence, for every part: a choice > the person's words > the photo > defaults.
//! Words count through keywords (with synonyms; "no drums" rules drums out and is not
//! written into the prompt, since MusicGen does not understand negation) and through the
//! text model's reading (`Hints::words`). The result is deterministic, bounded, and says
//! where every part came from, for the "how it was made" panel.
mod pick;
#[cfg(test)]
mod tests;
mod types;

pub use types::*;

use crate::api::types::{MAX_LONG_TEXT_CHARS, MAX_TEXT_CHARS};
use crate::photo::palette::Palette;
use crate::prompt::vocabulary;
use crate::prompt::words::{self, Reading, TempoWords};
use pick::{choose_genre, choose_instruments, mood_from_person, mood_from_photo, mood_of_genre};

/// The longest scene line taken from a long text.
pub const MAX_SCENE_CHARS: usize = 160;

/// Trim, drop control characters, collapse whitespace, cut to `max` characters (at a
/// word when it has to cut).
fn clean(text: &str, max: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined: String = words
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let mut out: String = joined.chars().take(max).collect();
    if joined.chars().count() > max {
        if let Some(cut) = out.rfind(' ') {
            out.truncate(cut);
        }
    }
    out.trim_end_matches([',', '.', ';', ':', ' ']).to_string()
}

/// As `clean`, but line by line: a long text's line breaks end sentences.
fn clean_lines(text: &str, max: usize) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(|l| clean(l, max))
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines.join("\n");
    joined.chars().take(max).collect()
}

/// BLIP sometimes starts captions with a stray token ("arafed", "there is"): keep the scene.
fn scene(caption: &str) -> String {
    let c = clean(caption, MAX_TEXT_CHARS);
    // Compare the prefix in place: lower-casing can change a string's byte length, so an
    // index into the lower-cased copy is not an index into the caption.
    for junk in ["arafed ", "araffe ", "arafe ", "there is ", "there are "] {
        if let Some(head) = c.get(..junk.len()) {
            if head.eq_ignore_ascii_case(junk) {
                return c[junk.len()..].to_string();
            }
        }
    }
    c
}

/// The mood the colours suggest when CLIP gave none.
fn palette_mood(p: &Palette) -> &'static str {
    if p.brightness < 0.35 {
        "mysterious"
    } else if p.saturation > 0.45 && p.warmth > 0.2 {
        "happy"
    } else if p.saturation > 0.45 {
        "energetic"
    } else if p.warmth > 0.2 {
        "nostalgic"
    } else if p.brightness > 0.7 {
        "dreamy"
    } else {
        "calm"
    }
}

fn part(what: &str, value: impl Into<String>, source: Source, because: Option<String>) -> Part {
    Part {
        what: what.into(),
        value: value.into(),
        source,
        because,
    }
}

/// “word”, “word” as the panel quotes them.
/// Each once: "no drums" rules out three kinds of drums but was said once.
fn quoted<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut list: Vec<String> = Vec::new();
    for w in words {
        let q = format!("“{w}”");
        if !list.contains(&q) {
            list.push(q);
        }
    }
    list.join(", ")
}

/// The person's words as the composer reads them (and the text model should): cleaned
/// and cut to the mode's length.
pub fn words_of(choices: &Choices) -> String {
    let raw = choices.text.as_deref().unwrap_or("");
    match choices.long_text {
        true => clean_lines(raw, MAX_LONG_TEXT_CHARS),
        false => clean(raw, MAX_TEXT_CHARS),
    }
}

/// What the text model should read: the words with negations and the tempo taken out
/// for a line (embeddings do not understand "no drums": they would hear "drums"), the
/// whole text for a long one.
pub fn words_for_model(choices: &Choices) -> String {
    let text = words_of(choices);
    match choices.long_text {
        true => text,
        false => words::read(&text).scene,
    }
}

/// Compose the prompt. Errors only for choices outside the vocabulary or range.
pub fn compose(hints: &Hints, choices: &Choices) -> Result<Composed, ComposeError> {
    let text = words_of(choices);
    let reading = words::read(&text);
    let mut parts = Vec::new();

    // The person's mood, else the genre: a genre the words named says more about the
    // mood ("metal") than the photo does; otherwise the photo's mood comes first.
    let person = mood_from_person(hints, choices, &reading)?;
    let photo = mood_from_photo(hints, &reading);
    let known = person.as_ref().or(photo.as_ref()).map(|(m, _)| *m);
    let (genre, genre_part) = choose_genre(hints, choices, &reading, known)?;
    let (mood, mood_part) = match (person, photo) {
        (Some(m), _) => m,
        (None, _) if genre_part.source == Source::Words => {
            mood_of_genre(genre, genre_part.source, &reading)
        }
        (None, Some(m)) => m,
        (None, None) => mood_of_genre(genre, genre_part.source, &reading),
    };
    parts.push(genre_part);
    parts.push(mood_part);
    let (instruments, inst_part) = choose_instruments(choices, &reading, genre)?;
    parts.push(inst_part);
    let phrases: Vec<&str> = instruments
        .iter()
        .filter_map(|id| vocabulary::instrument(id).map(|i| i.phrase))
        .collect();

    let (bpm, tempo_part) = choose_tempo(hints, choices, &reading, genre, mood)?;
    parts.push(tempo_part);
    if !reading.without.is_empty() {
        let mut ids: Vec<&str> = Vec::new();
        for (_, said) in &reading.without {
            if !ids.contains(&said.id) {
                ids.push(said.id);
            }
        }
        let because = quoted(reading.without.iter().map(|(_, s)| s.words.as_str()));
        parts.push(part(
            "without",
            ids.join(", "),
            Source::Words,
            Some(because),
        ));
    }

    let mut prompt = format!("{} track, {}", genre.phrase, mood.phrase);
    if !phrases.is_empty() {
        prompt.push_str(&format!(", with {}", join_and(&phrases)));
    }
    prompt.push_str(&format!(", {bpm} bpm"));
    let line = match choices.long_text {
        false => Some(reading.scene.clone())
            .filter(|s| !s.is_empty())
            .inspect(|s| parts.push(part("text", s.clone(), Source::Words, None))),
        true => picked_line(hints, &text, &mut parts),
    };
    if let Some(line) = line {
        prompt.push_str(&format!(", {line}"));
    }
    if let Some(caption) = hints
        .caption
        .as_deref()
        .map(scene)
        .filter(|c| !c.is_empty())
    {
        prompt.push_str(&format!(". Inspired by {caption}"));
        parts.push(part("scene", caption, Source::Caption, None));
    }
    Ok(Composed { prompt, bpm, parts })
}

/// A long text's scene line: the sentence the text model found closest to the whole, or
/// without a model the first sentence; negations and tempo taken out, kept short.
fn picked_line(hints: &Hints, text: &str, parts: &mut Vec<Part>) -> Option<String> {
    let sense = &hints.words;
    let (sentence, because) = match sense.picked.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        Some((best, score)) => {
            let all: Vec<&str> = sense.picked.iter().map(|(s, _)| s.as_str()).collect();
            parts.push(part(
                "picked",
                all.join(" … "),
                Source::Words,
                Some(format!(
                    "the {} of {} sentences closest in meaning to the whole text",
                    all.len(),
                    sense.sentences
                )),
            ));
            (
                best.clone(),
                format!("closest to the whole text ({score:.2})"),
            )
        }
        None => {
            let first = words::sentences::split(text).first()?.to_string();
            (first, "the first sentence (no text model)".to_string())
        }
    };
    let line = clean(&words::read(&sentence).scene, MAX_SCENE_CHARS);
    (!line.is_empty()).then(|| {
        parts.push(part("text", line.clone(), Source::Words, Some(because)));
        line
    })
}

/// The tempo: a choice, a number or tempo word in the text, else where the mood's energy
/// (and a vivid, bright photo) puts it within the genre's range.
fn choose_tempo(
    hints: &Hints,
    choices: &Choices,
    reading: &Reading,
    genre: &vocabulary::Genre,
    mood: &vocabulary::Mood,
) -> Result<(u32, Part), ComposeError> {
    let tempo =
        |bpm: u32, source, because| (bpm, part("tempo", format!("{bpm} bpm"), source, because));
    let clamp = |b: f32| (b.round() as u32).clamp(MIN_BPM, MAX_BPM);
    let (lo, hi) = genre.bpm;
    match (choices.bpm, &reading.tempo) {
        (Some(b), _) if (MIN_BPM..=MAX_BPM).contains(&b) => Ok(tempo(b, Source::Choice, None)),
        (Some(b), _) => Err(ComposeError::BadBpm(b)),
        (None, Some(TempoWords::Bpm(b, words))) => {
            let held = (*b).clamp(MIN_BPM, MAX_BPM);
            let because = match held == *b {
                true => quoted([words.as_str()]),
                false => format!("{} (held to {MIN_BPM}–{MAX_BPM})", quoted([words.as_str()])),
            };
            Ok(tempo(held, Source::Words, Some(because)))
        }
        // Below or above the genre's usual range, by a tenth.
        (None, Some(TempoWords::Slow(words))) => Ok(tempo(
            clamp(lo as f32 * 0.9),
            Source::Words,
            Some(quoted([words.as_str()])),
        )),
        (None, Some(TempoWords::Fast(words))) => Ok(tempo(
            clamp(hi as f32 * 1.1),
            Source::Words,
            Some(quoted([words.as_str()])),
        )),
        (None, None) => {
            let (energy, src) = match &hints.palette {
                Some(p) => (
                    0.7 * mood.energy + 0.15 * p.saturation + 0.15 * p.brightness,
                    Source::Palette,
                ),
                None => (mood.energy, Source::Derived),
            };
            // A stored palette is JSON read back: NaN would make the tempo 0 (found by
            // fuzzing), so a palette that is not a number says nothing.
            let (energy, src) = match energy.is_finite() {
                true => (energy, src),
                false => (mood.energy, Source::Derived),
            };
            let bpm = lo as f32 + (hi - lo) as f32 * energy.clamp(0.0, 1.0);
            Ok(tempo(clamp(bpm), src, None))
        }
    }
}

/// "a", "a and b", "a, b and c".
fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
