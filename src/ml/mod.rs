//! Models, with no knowledge of HTTP. Text → codes → waveform lives in `t5`, `musicgen`,
//! `encodec`, tied together by `generate`; photo → caption in `photo` (intake),
//! `vision_input` (pixels), `blip` + `blip_text`, `clip`, `palette`; photo hints + choices →
//! prompt in `prompt` (words from `vocabulary`); weights are found by `hub`.
pub mod blip;
pub mod blip_text;
pub mod clip;
pub mod clip_model;
pub mod device;
pub mod encodec;
pub mod generate;
pub mod hints;
pub mod host_matmul;
pub mod hub;
pub mod linear;
pub mod musicgen;
pub mod palette;
pub mod photo;
pub mod prompt;
pub mod sampling;
pub mod t5;
pub mod tiny;
pub mod vision_input;
pub use crate::vocabulary;
pub mod wav;
