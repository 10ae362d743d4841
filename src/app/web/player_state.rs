//! What the player is doing: set by the player's runtime (browser only), shown by the
//! player component in both builds (`data-state` is what the end-to-end tests read).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlayerState {
    /// Fetching and decoding the audio.
    #[default]
    Loading,
    Paused,
    Playing,
    /// The audio could not be loaded or decoded.
    Error,
}

impl PlayerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PlayerState::Loading => "loading",
            PlayerState::Paused => "paused",
            PlayerState::Playing => "playing",
            PlayerState::Error => "error",
        }
    }
}
