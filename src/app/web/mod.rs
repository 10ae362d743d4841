//! Browser glue (the hydrate build runs it; the server build only needs `browser`'s types):
//! files, uploads, events and navigation (`browser`), Web Audio (`audio`) and the
//! player's runtime that drives it (`player_runtime`), and the audio of a song heard while
//! it is made (`live_audio`).
#[cfg(feature = "hydrate")]
pub mod audio;
pub mod browser;
#[cfg(feature = "hydrate")]
pub mod live_audio;
#[cfg(feature = "hydrate")]
pub mod player_runtime;
pub mod player_state;
