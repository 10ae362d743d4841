//! What the composer takes (the person's choices, the models' hints) and gives (the
//! prompt and where each of its parts came from).

use serde::{Deserialize, Serialize};

pub use crate::api::types::{MAX_BPM, MAX_INSTRUMENTS, MIN_BPM};
use crate::photo::palette::Palette;
use crate::prompt::words::Sense;

/// What the person picked; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Choices {
    pub genre: Option<String>,
    pub mood: Option<String>,
    pub bpm: Option<u32>,
    #[serde(default)]
    pub instruments: Vec<String>,
    /// The person's words: a line, or with `long_text` a whole text.
    pub text: Option<String>,
    #[serde(default)]
    pub long_text: bool,
}

/// What the models suggested: the photo's caption, CLIP scores and palette (empty in
/// words-only mode) and the text model's reading of the words (empty without one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hints {
    pub caption: Option<String>,
    /// (mood id, probability), best first.
    pub moods: Vec<(String, f32)>,
    /// (genre id, probability), best first.
    pub genres: Vec<(String, f32)>,
    pub palette: Option<Palette>,
    #[serde(default)]
    pub words: Sense,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The person chose it.
    Choice,
    /// The person's words named it, or the text model read it from them.
    Words,
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
            Source::Words => "words",
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
    /// "genre", "mood", "instruments", "tempo", "without", "text", "picked", "scene".
    pub what: String,
    pub value: String,
    pub source: Source,
    /// The words (or the score) that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub because: Option<String>,
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
