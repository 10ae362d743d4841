//! Pieces the pages share.

#[cfg(feature = "hydrate")]
mod audio;
pub mod browser;
pub mod making;
pub mod player;
#[cfg(feature = "hydrate")]
mod player_runtime;
pub mod share;
pub mod song_card;
