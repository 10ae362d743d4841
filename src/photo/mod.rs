//! A photo from the outside world, made safe and useful: `intake` sniffs, decodes within
//! limits, orients and re-encodes (no EXIF survives); `palette` finds its colours.
//! No models: builds alone under the `intake` feature, for fuzzing.
pub mod intake;
pub mod palette;

pub use intake::*;
