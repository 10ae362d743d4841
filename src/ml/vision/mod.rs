//! Photo → words: pixels for each model (`preprocess`), a caption (`blip`), mood and genre
//! scores (`clip`), gathered with the palette into the composer's hints (`hints`).
pub mod blip;
pub mod clip;
pub mod hints;
pub mod preprocess;
