//! What the browser, the REST API and the server agree on. Compiled into both builds, so
//! it holds data and pure rules only.

use serde::{Deserialize, Serialize};

/// Song length bounds (seconds), as the upload page offers them.
pub const MIN_DURATION_S: f32 = 5.0;
pub const MAX_DURATION_S: f32 = 180.0;
pub const DEFAULT_DURATION_S: f32 = 10.0;
/// Largest photo the server takes, unless configured otherwise (the browser checks too).
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 20 * 1024 * 1024;
/// Photo types the browser may send (checked again from the bytes on the server).
pub const ACCEPTED_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];
/// Seeds stay within what JavaScript numbers hold exactly.
pub const MAX_SEED: u64 = (1 << 53) - 1;
pub const MAX_TITLE_CHARS: usize = 80;
/// Longest hand-written prompt ("edit prompt and regenerate").
pub const MAX_PROMPT_CHARS: usize = 600;
/// Longest "in your words" line. The prompt keeps at most this much of any free text, so
/// it stays far below the 256 tokens MusicGen's T5 reads.
pub const MAX_TEXT_CHARS: usize = 300;
/// Longest text in the "From a text" mode (a script, a post): only a short scene line
/// picked from it reaches the prompt.
pub const MAX_LONG_TEXT_CHARS: usize = 5000;
/// Most instruments a person can pick.
pub const MAX_INSTRUMENTS: usize = 6;
/// Tempo bounds (BPM).
pub const MIN_BPM: u32 = 40;
pub const MAX_BPM: u32 = 220;
/// The colour of songs without a photo palette (the favicon's): the player, the visualizer
/// and song cards fall back to it.
pub const ACCENT: &str = "#7c5cff";

/// Where a song's files are served, and their names.
pub const MEDIA_PREFIX: &str = "/media";
pub const SONG_WAV: &str = "song.wav";
pub const SONG_MP3: &str = "song.mp3";
/// The song's audio codes, `{"codes": [[…] × codebooks]}`: what an extension continues.
pub const SONG_CODES: &str = "codes.json";
pub const PHOTO_JPG: &str = "photo.jpg";
pub const COVER_JPG: &str = "cover.jpg";
pub const SHARE_JPG: &str = "share.jpg";

/// The path of one of a song's files, e.g. `/media/{id}/song.wav`.
pub fn media_path(id: &str, file: &str) -> String {
    format!("{MEDIA_PREFIX}/{id}/{file}")
}

/// The person's choices for one song; every field is optional ("auto").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SongOptions {
    pub genre: Option<String>,
    pub mood: Option<String>,
    pub bpm: Option<u32>,
    pub instruments: Vec<String>,
    /// Seconds, 5–180.
    pub duration: Option<f32>,
    pub text: Option<String>,
    /// `text` is a long piece ("From a text": up to 5,000 characters) to make background
    /// music for, not a line to put in the prompt.
    pub long_text: bool,
    pub seed: Option<u64>,
    /// A prompt written by hand ("edit prompt and regenerate"): used as it is.
    pub prompt: Option<String>,
    /// The slug of a finished song this one continues ("extend this song"): its audio
    /// codes come first, then more with the same prompt, up to `duration`.
    pub extends: Option<String>,
}

impl SongOptions {
    /// How long `text` may be in this mode.
    pub fn max_text_chars(&self) -> usize {
        match self.long_text {
            true => MAX_LONG_TEXT_CHARS,
            false => MAX_TEXT_CHARS,
        }
    }

    pub fn duration_s(&self) -> f32 {
        self.duration.unwrap_or(DEFAULT_DURATION_S)
    }

    /// Range checks that need no model; the composer checks the words themselves.
    pub fn check(&self) -> Result<(), String> {
        if let Some(d) = self.duration {
            if !d.is_finite() || !(MIN_DURATION_S..=MAX_DURATION_S).contains(&d) {
                return Err(format!(
                    "duration must be {MIN_DURATION_S}–{MAX_DURATION_S} seconds"
                ));
            }
        }
        if let Some(t) = &self.text {
            let max = self.max_text_chars();
            if t.chars().count() > max {
                return Err(format!("the text is longer than {max} characters"));
            }
        }
        if self.extends.as_deref().is_some_and(|s| !is_slug(s)) {
            return Err("extends must be the slug of a song".into());
        }
        if self.seed.is_some_and(|s| s > MAX_SEED) {
            return Err(format!("seed must be at most {MAX_SEED}"));
        }
        if let Some(p) = &self.prompt {
            if p.trim().is_empty() {
                return Err("the prompt is empty".into());
            }
            if p.chars().count() > MAX_PROMPT_CHARS {
                return Err(format!(
                    "the prompt is longer than {MAX_PROMPT_CHARS} characters"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Ready,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Ready => "ready",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "ready" => Status::Ready,
            "failed" => Status::Failed,
            _ => return None,
        })
    }

    /// Ready or failed: nothing more will happen to the song by itself.
    pub fn is_settled(self) -> bool {
        matches!(self, Status::Ready | Status::Failed)
    }
}

/// As stored in the database's text column.
impl TryFrom<String> for Status {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("unknown song status {s:?}"))
    }
}

/// The steps of making a song, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Queued,
    Reading,
    Mood,
    Composing,
    Generating,
    Mixing,
    Done,
}

impl Stage {
    /// The stages a job goes through (what the making-it view lists).
    pub const WORK: [Stage; 5] = [
        Stage::Reading,
        Stage::Mood,
        Stage::Composing,
        Stage::Generating,
        Stage::Mixing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Reading => "reading",
            Stage::Mood => "mood",
            Stage::Composing => "composing",
            Stage::Generating => "generating",
            Stage::Mixing => "mixing",
            Stage::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Stage::Queued, Stage::Done]
            .into_iter()
            .chain(Stage::WORK)
            .find(|st| st.as_str() == s)
    }

    /// The words the making-it page shows.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Queued => "Waiting for its turn",
            Stage::Reading => "Reading the photo",
            Stage::Mood => "Finding the mood",
            Stage::Composing => "Composing the prompt",
            Stage::Generating => "Generating the music",
            Stage::Mixing => "Mixing the audio",
            Stage::Done => "Ready",
        }
    }

    /// The share of the whole job this stage covers, as (start, end) in 0–1.
    pub fn span(self) -> (f32, f32) {
        match self {
            Stage::Queued => (0.0, 0.0),
            Stage::Reading => (0.00, 0.08),
            Stage::Mood => (0.08, 0.12),
            Stage::Composing => (0.12, 0.15),
            Stage::Generating => (0.15, 0.92),
            Stage::Mixing => (0.92, 1.00),
            Stage::Done => (1.0, 1.0),
        }
    }

    /// Overall 0–1 progress with a fraction of this stage done.
    pub fn overall(self, done: f32) -> f32 {
        let (a, b) = self.span();
        a + (b - a) * done.clamp(0.0, 1.0)
    }
}

/// As stored in the database's text column.
impl TryFrom<String> for Stage {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("unknown stage {s:?}"))
    }
}

/// Where a song is: the row's state, pushed live to the song page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Progress {
    pub status: Status,
    pub stage: Stage,
    /// 0–1 over the whole job.
    pub progress: f32,
    /// Decoder steps while generating.
    pub step: u32,
    pub total: u32,
    pub eta_s: Option<f32>,
    /// Jobs ahead of this one while it waits.
    pub queue_position: Option<u32>,
    pub error: Option<String>,
    /// The audio made so far, while generating (not kept in the row).
    #[serde(default)]
    pub live: Option<crate::api::live::Live>,
}

impl Progress {
    /// A waiting song with nothing known yet (also the "queue moved" notice).
    pub fn idle() -> Self {
        Progress {
            status: Status::Queued,
            stage: Stage::Queued,
            progress: 0.0,
            step: 0,
            total: 0,
            eta_s: None,
            queue_position: None,
            error: None,
            live: None,
        }
    }
}

/// One line of "how it was made".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MadeFrom {
    pub what: String,
    pub value: String,
    /// choice | words | photo | palette | caption | derived | default
    pub source: String,
    /// Which words (or which score) produced it, when that is worth showing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub because: Option<String>,
}

/// A song as pages show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SongView {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub progress: Progress,
    pub options: SongOptions,
    pub seed: u64,
    pub caption: Option<String>,
    pub prompt: Option<String>,
    pub parts: Vec<MadeFrom>,
    /// Hex colours from the photo (or a default set in words-only mode).
    pub palette: Vec<String>,
    pub has_photo: bool,
    /// Made by the tiny random models: the audio is noise.
    pub noise: bool,
    pub duration_s: f32,
    pub created_ms: i64,
    pub is_owner: bool,
}

impl SongView {
    pub fn page_path(&self) -> String {
        format!("/s/{}", self.slug)
    }
    pub fn audio_path(&self) -> String {
        media_path(&self.id, SONG_WAV)
    }
    /// The compressed copy: phones play it, share cards link it.
    pub fn mp3_path(&self) -> String {
        media_path(&self.id, SONG_MP3)
    }
    pub fn cover_path(&self) -> Option<String> {
        self.has_photo.then(|| media_path(&self.id, COVER_JPG))
    }
    pub fn share_image_path(&self) -> Option<String> {
        self.has_photo.then(|| media_path(&self.id, SHARE_JPG))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaylistView {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub songs: Vec<SongView>,
    pub is_owner: bool,
    pub updated_ms: i64,
    /// The public address, for the share link (set on the playlist page).
    #[serde(default)]
    pub base_url: String,
}

/// The owner's songs and playlists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Library {
    pub songs: Vec<SongView>,
    pub playlists: Vec<PlaylistView>,
}

/// Share slugs: 12 characters of an unambiguous alphabet (≈ 70 bits).
pub const SLUG_ALPHABET: &[u8] = b"23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
pub const SLUG_LEN: usize = 12;

/// Whether `s` could be a slug at all (checked before any database lookup).
pub fn is_slug(s: &str) -> bool {
    s.len() == SLUG_LEN && s.bytes().all(|b| SLUG_ALPHABET.contains(&b))
}

/// Song ids: 32 lowercase hex characters (128 bits).
pub fn is_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_reject_out_of_range_values() {
        let ok = SongOptions {
            duration: Some(12.0),
            seed: Some(7),
            ..Default::default()
        };
        assert_eq!(ok.check(), Ok(()));
        for bad in [0.0, 4.9, 180.5, 500.0, f32::NAN] {
            let o = SongOptions {
                duration: Some(bad),
                ..Default::default()
            };
            assert!(o.check().is_err(), "duration {bad} accepted");
        }
        let o = SongOptions {
            seed: Some(MAX_SEED + 1),
            ..Default::default()
        };
        assert!(o.check().is_err());
    }

    #[test]
    fn options_json_refuses_unknown_fields() {
        assert!(serde_json::from_str::<SongOptions>(r#"{"genre":"jazz","colour":"red"}"#).is_err());
        let o: SongOptions =
            serde_json::from_str(r#"{"bpm":90,"instruments":["piano"]}"#).expect("valid options");
        assert_eq!(o.bpm, Some(90));
    }

    #[test]
    fn stages_read_back_and_progress_rises_through_them() {
        let mut last = -1.0;
        for stage in Stage::WORK {
            assert_eq!(Stage::parse(stage.as_str()), Some(stage));
            for done in [0.0, 0.5, 1.0] {
                let p = stage.overall(done);
                assert!(p >= last, "{stage:?} {done}");
                last = p;
            }
        }
        assert_eq!(Stage::Mixing.overall(1.0), 1.0);
        assert_eq!(Stage::parse("nonsense"), None);
        let json = serde_json::to_string(&Stage::Generating).expect("a stage serializes");
        assert_eq!(json, "\"generating\"");
    }

    #[test]
    fn slugs_and_ids_are_checked_by_shape() {
        assert!(is_slug("abcdefghijk2"));
        assert!(!is_slug("abcdefghijk0")); // 0 is not in the alphabet
        assert!(!is_slug("../etc/passw"));
        assert!(!is_slug("short"));
        assert!(is_id("0123456789abcdef0123456789abcdef"));
        assert!(!is_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_id("1 OR 1=1"));
    }
}
