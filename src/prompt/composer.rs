//! The prompt composer: caption + CLIP mood/genre scores + palette + the person's choices
//! → one MusicGen prompt, in the style MusicGen's training captions use ("genre track,
//! mood, with instruments, N bpm, scene"). A choice always wins over a hint. The result is
//! deterministic and says where every part came from, for the "how it was made" panel.

use serde::{Deserialize, Serialize};

use crate::photo::palette::Palette;
use crate::prompt::vocabulary::{self, Genre, Mood};

pub const MIN_BPM: u32 = 40;
pub const MAX_BPM: u32 = 220;
pub const MAX_INSTRUMENTS: usize = 6;
/// Free text and captions are cut to this many characters: the whole prompt stays far
/// below the 256 tokens MusicGen's T5 reads.
pub const MAX_TEXT_CHARS: usize = 300;

/// What the person picked; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Choices {
    pub genre: Option<String>,
    pub mood: Option<String>,
    pub bpm: Option<u32>,
    #[serde(default)]
    pub instruments: Vec<String>,
    pub text: Option<String>,
}

/// What the photo suggested (empty in words-only mode).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hints {
    pub caption: Option<String>,
    /// (mood id, probability), best first.
    pub moods: Vec<(String, f32)>,
    /// (genre id, probability), best first.
    pub genres: Vec<(String, f32)>,
    pub palette: Option<Palette>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The person chose it.
    Choice,
    /// CLIP scored the photo.
    Photo,
    /// From the photo's colours.
    Palette,
    /// From the caption.
    Caption,
    /// Follows from another part (a genre's instruments, a mood's genre, a tempo range).
    Derived,
    /// Nothing else said anything.
    Default,
}

impl Source {
    /// The word "how it was made" shows (the same as its JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Choice => "choice",
            Source::Photo => "photo",
            Source::Palette => "palette",
            Source::Caption => "caption",
            Source::Derived => "derived",
            Source::Default => "default",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// "genre", "mood", "instruments", "tempo", "scene", "text".
    pub what: String,
    pub value: String,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Composed {
    pub prompt: String,
    pub bpm: u32,
    pub parts: Vec<Part>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ComposeError {
    #[error("unknown genre {0:?}")]
    UnknownGenre(String),
    #[error("unknown mood {0:?}")]
    UnknownMood(String),
    #[error("unknown instrument {0:?}")]
    UnknownInstrument(String),
    #[error("tempo {0} BPM is outside {MIN_BPM}–{MAX_BPM}")]
    BadBpm(u32),
    #[error("at most {MAX_INSTRUMENTS} instruments")]
    TooManyInstruments,
}

/// Trim, drop control characters, collapse whitespace, cut to `max` characters.
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

fn part(what: &str, value: impl Into<String>, source: Source) -> Part {
    Part {
        what: what.into(),
        value: value.into(),
        source,
    }
}

/// Compose the prompt. Errors only for choices outside the vocabulary or range.
pub fn compose(hints: &Hints, choices: &Choices) -> Result<Composed, ComposeError> {
    let mut parts = Vec::new();

    let (mood, mood_src): (&Mood, Source) = match &choices.mood {
        Some(m) => (
            vocabulary::mood(m).ok_or_else(|| ComposeError::UnknownMood(m.clone()))?,
            Source::Choice,
        ),
        None => match hints.moods.first().and_then(|(id, _)| vocabulary::mood(id)) {
            Some(m) => (m, Source::Photo),
            None => match &hints.palette {
                Some(p) => (
                    vocabulary::mood(palette_mood(p)).unwrap_or(&vocabulary::MOODS[0]),
                    Source::Palette,
                ),
                None => (&vocabulary::MOODS[0], Source::Default),
            },
        },
    };
    let (genre, genre_src): (&Genre, Source) = match &choices.genre {
        Some(g) => (
            vocabulary::genre(g).ok_or_else(|| ComposeError::UnknownGenre(g.clone()))?,
            Source::Choice,
        ),
        None => match hints
            .genres
            .first()
            .and_then(|(id, _)| vocabulary::genre(id))
        {
            Some(g) => (g, Source::Photo),
            None => match vocabulary::genre(mood.genre) {
                Some(g) => (g, Source::Derived),
                None => (&vocabulary::GENRES[0], Source::Default),
            },
        },
    };
    parts.push(part("genre", genre.id, genre_src));
    parts.push(part("mood", mood.id, mood_src));

    if choices.instruments.len() > MAX_INSTRUMENTS {
        return Err(ComposeError::TooManyInstruments);
    }
    let (instruments, inst_src) = if choices.instruments.is_empty() {
        let list: Vec<&str> = genre.instruments.iter().take(3).copied().collect();
        (list, Source::Derived)
    } else {
        let mut list = Vec::new();
        for name in &choices.instruments {
            let i = vocabulary::instrument(name)
                .ok_or_else(|| ComposeError::UnknownInstrument(name.clone()))?;
            if !list.contains(&i.id) {
                list.push(i.id);
            }
        }
        (list, Source::Choice)
    };
    parts.push(part("instruments", instruments.join(", "), inst_src));
    let phrases: Vec<&str> = instruments
        .iter()
        .filter_map(|id| vocabulary::instrument(id).map(|i| i.phrase))
        .collect();

    let (bpm, bpm_src) = match choices.bpm {
        Some(b) if (MIN_BPM..=MAX_BPM).contains(&b) => (b, Source::Choice),
        Some(b) => return Err(ComposeError::BadBpm(b)),
        None => {
            // Mood energy sets where in the genre's range the tempo sits; vivid, bright
            // photos push it up a little.
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
            let (lo, hi) = genre.bpm;
            let bpm = lo as f32 + (hi - lo) as f32 * energy.clamp(0.0, 1.0);
            (bpm.round() as u32, src)
        }
    };
    parts.push(part("tempo", format!("{bpm} bpm"), bpm_src));

    let mut prompt = format!(
        "{} track, {}, with {}, {} bpm",
        genre.phrase,
        mood.phrase,
        join_and(&phrases),
        bpm
    );
    if let Some(text) = choices
        .text
        .as_deref()
        .map(|t| clean(t, MAX_TEXT_CHARS))
        .filter(|t| !t.is_empty())
    {
        prompt.push_str(&format!(", {text}"));
        parts.push(part("text", text, Source::Choice));
    }
    if let Some(caption) = hints
        .caption
        .as_deref()
        .map(scene)
        .filter(|c| !c.is_empty())
    {
        prompt.push_str(&format!(". Inspired by {caption}"));
        parts.push(part("scene", caption, Source::Caption));
    }
    Ok(Composed { prompt, bpm, parts })
}

/// "a", "a and b", "a, b and c".
fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn odd_palettes_and_captions_never_break_the_prompt() {
        let mut hints = super::Hints {
            caption: Some(format!("ARAFED {}", "İ".repeat(12))),
            palette: Some(super::Palette {
                colours: vec![],
                brightness: f32::NAN,
                saturation: f32::INFINITY,
                warmth: f32::NAN,
            }),
            ..Default::default()
        };
        let c = super::compose(&hints, &super::Choices::default()).expect("composes");
        assert!(
            (super::MIN_BPM..=super::MAX_BPM).contains(&c.bpm),
            "{}",
            c.bpm
        );
        assert!(c.prompt.ends_with(&"İ".repeat(12)), "{}", c.prompt);
        hints.caption = Some("There is a dog".into());
        let c = super::compose(&hints, &super::Choices::default()).expect("composes");
        assert!(c.prompt.ends_with("Inspired by a dog"), "{}", c.prompt);
    }

    use super::*;
    use crate::photo::palette::Swatch;

    fn photo_hints() -> Hints {
        Hints {
            caption: Some("arafed dog running on a beach at sunset".into()),
            moods: vec![("happy".into(), 0.6), ("calm".into(), 0.2)],
            genres: vec![("reggae".into(), 0.5), ("pop".into(), 0.3)],
            palette: Some(Palette {
                colours: vec![Swatch {
                    hex: "#f08c14".into(),
                    share: 1.0,
                }],
                brightness: 0.7,
                saturation: 0.8,
                warmth: 0.9,
            }),
        }
    }

    fn source(c: &Composed, what: &str) -> Source {
        c.parts
            .iter()
            .find(|p| p.what == what)
            .map(|p| p.source)
            .expect("part")
    }

    #[test]
    fn hints_fill_what_the_person_left_open() {
        let c = compose(&photo_hints(), &Choices::default()).expect("compose");
        assert!(
            c.prompt.starts_with(
                "reggae track, happy and joyful, with organ, bass and electric guitar, "
            ),
            "{}",
            c.prompt
        );
        assert!(
            c.prompt
                .ends_with(". Inspired by dog running on a beach at sunset"),
            "{}",
            c.prompt
        );
        assert_eq!(source(&c, "genre"), Source::Photo);
        assert_eq!(source(&c, "mood"), Source::Photo);
        assert_eq!(source(&c, "tempo"), Source::Palette);
        assert_eq!(source(&c, "scene"), Source::Caption);
        assert!((70..=90).contains(&c.bpm));
    }

    #[test]
    fn choices_override_hints() {
        let choices = Choices {
            genre: Some("Jazz".into()),
            mood: Some("melancholic".into()),
            bpm: Some(72),
            instruments: vec!["saxophone".into(), "piano".into(), "piano".into()],
            text: Some("  rainy   evening\n in Paris ".into()),
        };
        let c = compose(&photo_hints(), &choices).expect("compose");
        assert_eq!(
            c.prompt,
            "smooth jazz track, melancholic and bittersweet, with saxophone and piano, 72 bpm, \
             rainy evening in Paris. Inspired by dog running on a beach at sunset"
        );
        for what in ["genre", "mood", "instruments", "tempo", "text"] {
            assert_eq!(source(&c, what), Source::Choice, "{what}");
        }
    }

    #[test]
    fn auto_tempo_follows_mood_and_palette() {
        let calm = compose(
            &Hints::default(),
            &Choices {
                mood: Some("calm".into()),
                genre: Some("pop".into()),
                ..Default::default()
            },
        )
        .expect("calm");
        let wild = compose(
            &Hints::default(),
            &Choices {
                mood: Some("energetic".into()),
                genre: Some("pop".into()),
                ..Default::default()
            },
        )
        .expect("wild");
        assert!(calm.bpm < wild.bpm, "{} vs {}", calm.bpm, wild.bpm);
        let mut dark = photo_hints();
        dark.moods.clear();
        dark.palette = Some(Palette {
            colours: vec![],
            brightness: 0.1,
            saturation: 0.05,
            warmth: 0.0,
        });
        let d = compose(&dark, &Choices::default()).expect("dark");
        assert_eq!(d.parts[1].value, "mysterious");
        assert_eq!(source(&d, "mood"), Source::Palette);
    }

    #[test]
    fn words_only_and_defaults_are_stable() {
        let a = compose(&Hints::default(), &Choices::default()).expect("defaults");
        let b = compose(&Hints::default(), &Choices::default()).expect("again");
        assert_eq!(a, b);
        assert_eq!(source(&a, "mood"), Source::Default);
        assert!(!a.prompt.is_empty());
        let words = Choices {
            text: Some("a road trip at dawn".into()),
            ..Default::default()
        };
        let w = compose(&Hints::default(), &words).expect("words");
        assert!(w.prompt.ends_with(", a road trip at dawn"), "{}", w.prompt);
    }

    #[test]
    fn prompts_stay_short_and_bad_choices_are_refused() {
        let long = Choices {
            text: Some("loud ".repeat(5000)),
            ..Default::default()
        };
        let mut hints = photo_hints();
        hints.caption = Some("a very long caption ".repeat(500));
        let c = compose(&hints, &long).expect("long");
        assert!(
            c.prompt.chars().count() <= 2 * MAX_TEXT_CHARS + 200,
            "{}",
            c.prompt.len()
        );
        let bad = |c: Choices| compose(&Hints::default(), &c).err();
        assert_eq!(
            bad(Choices {
                genre: Some("polka-metal".into()),
                ..Default::default()
            }),
            Some(ComposeError::UnknownGenre("polka-metal".into()))
        );
        assert_eq!(
            bad(Choices {
                mood: Some("<script>".into()),
                ..Default::default()
            }),
            Some(ComposeError::UnknownMood("<script>".into()))
        );
        assert_eq!(
            bad(Choices {
                bpm: Some(5000),
                ..Default::default()
            }),
            Some(ComposeError::BadBpm(5000))
        );
        assert_eq!(
            bad(Choices {
                instruments: vec!["kazoo".into()],
                ..Default::default()
            }),
            Some(ComposeError::UnknownInstrument("kazoo".into()))
        );
        let many = Choices {
            instruments: vec!["piano".into(); 7],
            ..Default::default()
        };
        assert_eq!(bad(many), Some(ComposeError::TooManyInstruments));
        let ctrl = Choices {
            text: Some("\u{0}\u{7}hi\u{1b}[31m there".into()),
            ..Default::default()
        };
        assert!(compose(&Hints::default(), &ctrl)
            .expect("ctrl")
            .prompt
            .ends_with(", hi[31m there"));
    }

    #[test]
    fn source_words_are_their_json_form() {
        for source in [
            Source::Choice,
            Source::Photo,
            Source::Palette,
            Source::Caption,
            Source::Derived,
            Source::Default,
        ] {
            let json = serde_json::to_value(source).expect("a source serializes");
            assert_eq!(json.as_str(), Some(source.as_str()));
        }
    }
}
