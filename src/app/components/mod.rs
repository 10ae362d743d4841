//! Pieces the pages share.
pub mod live_listen;
pub mod making;
pub mod player;
pub mod share;
pub mod song_card;
