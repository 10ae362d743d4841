//! `snapsong compose`: photo (or words only) + choices → the MusicGen prompt, printed on
//! stdout (or, with `--json`, every part with where it came from).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::api::types::{MAX_LONG_TEXT_CHARS, MAX_TEXT_CHARS};
use crate::ml::hub::ModelChoice;
use crate::ml::text;
use crate::ml::vision::{blip, clip};
use crate::ml::{photo_hints, Captioner, ClipScorer, DeviceChoice, DtypeChoice, WordReader};
use crate::{photo, prompt};

#[derive(Args)]
pub struct ComposeArgs {
    /// The photo; leave out for words-only mode.
    pub image: Option<PathBuf>,
    #[arg(long)]
    pub genre: Option<String>,
    #[arg(long)]
    pub mood: Option<String>,
    /// Tempo in BPM (40–220); automatic when absent.
    #[arg(long)]
    pub bpm: Option<u32>,
    /// Comma-separated instrument ids, e.g. piano,strings.
    #[arg(long, value_delimiter = ',')]
    pub instruments: Vec<String>,
    /// The person's words: read for genre, mood, instruments, tempo and exclusions
    /// ("no drums"); what is left becomes the prompt's scene.
    #[arg(long)]
    pub text: Option<String>,
    /// --text is a long piece (a script, a post; up to 5,000 characters): its key
    /// sentences are picked and only a short scene line reaches the prompt.
    #[arg(long)]
    pub long_text: bool,
    /// Text model (directory or repo id) that reads the words for meaning; "none" keeps
    /// keywords only.
    #[arg(long, default_value = text::DEFAULT_MODEL)]
    pub text_model: ModelChoice,
    /// BLIP model (directory or repo id); "none" skips the caption.
    #[arg(long, default_value = blip::DEFAULT_MODEL)]
    pub caption_model: ModelChoice,
    /// CLIP model (directory or repo id); "none" skips mood/genre scoring.
    #[arg(long, default_value = clip::DEFAULT_MODEL)]
    pub clip_model: ModelChoice,
    /// Print the whole explanation (hints, parts and their sources) as JSON.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

pub fn run(a: ComposeArgs) -> Result<()> {
    let device = a.device.open()?;
    // As the server reads photos: `--dtype auto`'s choice for this device.
    let precision = DtypeChoice::Auto.resolve(&device);
    let choices = prompt::Choices {
        genre: a.genre,
        mood: a.mood,
        bpm: a.bpm,
        instruments: a.instruments,
        text: a.text,
        long_text: a.long_text,
    };
    if let Some(text) = &choices.text {
        let max = match a.long_text {
            true => MAX_LONG_TEXT_CHARS,
            false => MAX_TEXT_CHARS,
        };
        if text.chars().count() > max {
            bail!("the text is longer than {max} characters (--long-text takes up to {MAX_LONG_TEXT_CHARS})");
        }
    }
    let mut hints = match &a.image {
        None => prompt::Hints::default(),
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let photo = photo::decode(&bytes, &photo::Limits::default())
                .with_context(|| format!("{} was refused", path.display()))?;
            let captioner = match a.caption_model.resolve()? {
                None => None,
                Some(files) => Some(Captioner::load(&files, precision, &device)?),
            };
            let clip = match a.clip_model.resolve()? {
                None => None,
                Some(files) => Some(ClipScorer::load(&files, precision, &device)?),
            };
            photo_hints(&photo.image, captioner.as_ref(), clip.as_ref())?
        }
    };
    let words = prompt::words_for_model(&choices);
    if !words.is_empty() {
        if let Some(files) = a.text_model.resolve()? {
            hints.words = WordReader::load(&files, &device)?.sense(&words, a.long_text)?;
        }
    }
    let composed = prompt::compose(&hints, &choices)?;
    if a.json {
        let json = serde_json::json!({ "hints": hints, "choices": choices, "composed": composed });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{}", composed.prompt);
    }
    Ok(())
}
