//! What the browser, the REST API and the server agree on. Compiled into both builds, so
//! it holds data and pure rules only.

use serde::{Deserialize, Serialize};

/// Song length bounds (seconds), as the upload page offers them.
pub const MIN_DURATION_S: f32 = 5.0;
pub const MAX_DURATION_S: f32 = 30.0;
pub const DEFAULT_DURATION_S: f32 = 10.0;
/// Largest photo the server takes, unless configured otherwise (the browser checks too).
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 20 * 1024 * 1024;
/// Photo types the browser may send (checked again from the bytes on the server).
pub const ACCEPTED_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];
/// Seeds stay within what JavaScript numbers hold exactly.
pub const MAX_SEED: u64 = (1 << 53) - 1;
pub const MAX_TITLE_CHARS: usize = 80;

/// The person's choices for one song; every field is optional ("auto").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SongOptions {
    pub genre: Option<String>,
    pub mood: Option<String>,
    pub bpm: Option<u32>,
    pub instruments: Vec<String>,
    /// Seconds, 5–30.
    pub duration: Option<f32>,
    pub text: Option<String>,
    pub seed: Option<u64>,
    /// A prompt written by hand ("edit prompt and regenerate"): used as it is.
    pub prompt: Option<String>,
}

impl SongOptions {
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
        if self.seed.is_some_and(|s| s > MAX_SEED) {
            return Err(format!("seed must be at most {MAX_SEED}"));
        }
        if let Some(p) = &self.prompt {
            if p.trim().is_empty() {
                return Err("the prompt is empty".into());
            }
            if p.chars().count() > 600 {
                return Err("the prompt is longer than 600 characters".into());
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Where a song is: the row's state, pushed live to the song page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub status: Status,
    /// queued | reading | mood | composing | generating | mixing | done
    pub stage: String,
    /// 0–1 over the whole job.
    pub progress: f32,
    /// Decoder steps while generating.
    pub step: u32,
    pub total: u32,
    pub eta_s: Option<f32>,
    /// Jobs ahead of this one while it waits.
    pub queue_position: Option<u32>,
    pub error: Option<String>,
}

impl Progress {
    /// A waiting song with nothing known yet (also the "queue moved" notice).
    pub fn idle() -> Self {
        Progress {
            status: Status::Queued,
            stage: "queued".into(),
            progress: 0.0,
            step: 0,
            total: 0,
            eta_s: None,
            queue_position: None,
            error: None,
        }
    }
}

/// The words the making-it page shows for a stage.
pub fn stage_label(stage: &str) -> &'static str {
    match stage {
        "queued" => "Waiting for its turn",
        "reading" => "Reading the photo",
        "mood" => "Finding the mood",
        "composing" => "Composing the prompt",
        "generating" => "Generating the music",
        "mixing" => "Mixing the audio",
        "done" => "Ready",
        _ => "Working",
    }
}

/// One line of "how it was made".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MadeFrom {
    pub what: String,
    pub value: String,
    /// choice | photo | palette | caption | derived | default
    pub source: String,
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
        format!("/media/{}/song.wav", self.id)
    }
    pub fn cover_path(&self) -> Option<String> {
        self.has_photo
            .then(|| format!("/media/{}/cover.jpg", self.id))
    }
    pub fn share_image_path(&self) -> Option<String> {
        self.has_photo
            .then(|| format!("/media/{}/share.jpg", self.id))
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        for bad in [0.0, 4.9, 30.5, 500.0, f32::NAN] {
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
