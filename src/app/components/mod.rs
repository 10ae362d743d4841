//! Pieces the pages share.
pub mod making;
pub mod player;
pub mod share;
pub mod song_card;
