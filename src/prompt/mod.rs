//! Words for MusicGen: the curated `vocabulary` (moods, genres, instruments: also shown by
//! the upload page, so it is in every build), the reader of the person's `words`, and the
//! `composer` that turns choices, words and photo hints into one prompt (feature `intake`).
pub mod vocabulary;

#[cfg(feature = "intake")]
mod composer;
#[cfg(feature = "intake")]
pub mod words;
#[cfg(feature = "intake")]
pub use composer::*;
