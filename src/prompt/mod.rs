//! Words for MusicGen: the curated `vocabulary` (moods, genres, instruments: also shown by
//! the upload page, so it is in every build) and the `composer` that turns photo hints and
//! the person's choices into one prompt (feature `intake`).
pub mod vocabulary;

#[cfg(feature = "intake")]
mod composer;
#[cfg(feature = "intake")]
pub use composer::*;
